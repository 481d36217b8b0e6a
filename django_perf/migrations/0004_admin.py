"""The admin dashboard's proxy model (its permissions) and the monitoring slow-request log."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_perf", "0003_cache"),
    ]

    operations = [
        migrations.CreateModel(
            name="Dashboard",
            fields=[],
            options={
                "verbose_name": "dashboard",
                "verbose_name_plural": "dashboard",
                "permissions": [
                    (
                        "invalidate_cache",
                        "Can invalidate cache entries from the performance dashboard",
                    ),
                    ("reset_metrics", "Can reset the performance metrics"),
                ],
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("django_perf.metricseries",),
        ),
        migrations.CreateModel(
            name="SlowRequestLog",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.FloatField(help_text="When the request ended, Unix seconds.")),
                ("route", models.CharField(max_length=255)),
                ("duration_ms", models.FloatField()),
                ("payload", models.TextField(help_text="JSON: the SlowRequest fields.")),
            ],
            options={
                "indexes": [models.Index(fields=["route", "at"], name="django_perf_slow_route_at")],
            },
        ),
    ]
