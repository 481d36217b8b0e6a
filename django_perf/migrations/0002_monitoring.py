"""Tables of the monitoring store: metric series, system samples, the maintenance lease."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_perf", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricsLease",
            fields=[
                ("name", models.CharField(max_length=50, primary_key=True, serialize=False)),
                ("holder", models.CharField(default="", max_length=100)),
                ("until", models.FloatField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="MetricSeries",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("resolution", models.SmallIntegerField()),
                ("start", models.BigIntegerField(help_text="Start of the period, Unix seconds.")),
                ("route", models.CharField(max_length=255)),
                ("method", models.CharField(max_length=8)),
                ("status", models.CharField(max_length=5)),
                (
                    "payload",
                    models.TextField(help_text='JSON: {"h": {bucket: count}, "s": {sum: value}}'),
                ),
            ],
            options={
                "verbose_name": "metric series",
                "verbose_name_plural": "metric series",
                "permissions": [("view_metrics", "Can view performance metrics")],
                "indexes": [
                    models.Index(fields=["start", "resolution"], name="django_perf_series_start")
                ],
            },
        ),
        migrations.CreateModel(
            name="SystemSample",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("start", models.BigIntegerField(help_text="Minute of the sample, Unix seconds.")),
                ("host", models.CharField(max_length=255)),
                ("pid", models.IntegerField()),
                ("taken_at", models.FloatField()),
                ("payload", models.TextField(help_text="JSON: host and process metrics.")),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("start", "host", "pid"), name="django_perf_sample_uniq"
                    )
                ],
            },
        ),
    ]
