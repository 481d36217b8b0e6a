"""The tiered cache's database tier (L3): one table, indexed for expiry."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_perf", "0002_monitoring"),
    ]

    operations = [
        migrations.CreateModel(
            name="CacheEntry",
            fields=[
                ("key_hash", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("location", models.CharField(default="", max_length=200)),
                ("cache_key", models.TextField()),
                ("value", models.BinaryField(default=b"")),
                ("number", models.BigIntegerField(blank=True, null=True)),
                ("expires_at", models.FloatField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "cache entry",
                "verbose_name_plural": "cache entries",
                "db_table": "django_perf_cache_entry",
                "indexes": [
                    models.Index(fields=["location", "expires_at"], name="django_perf_cache_expiry")
                ],
            },
        ),
    ]
