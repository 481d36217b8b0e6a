"""The L3 table: one row per cached key, written and read with plain SQL by the database tier."""

from __future__ import annotations

from django.db import models

from .config import LOCATION_MAX_LENGTH


class CacheEntry(models.Model):
    """A value of the tiered cache's database tier (L3).

    ``key_hash`` (a digest of the store name and the full cache key) is the
    primary key, so keys of any length and alphabet fit a fixed-width index;
    ``cache_key`` keeps the key itself for pattern deletes and inspection.
    ``value`` holds the signed payload; exact 64-bit integers live in
    ``number`` instead so that ``incr`` is one atomic UPDATE. ``expires_at``
    is Unix time in seconds (NULL: never) and is indexed for culling.
    """

    key_hash = models.CharField(max_length=40, primary_key=True)
    location = models.CharField(max_length=LOCATION_MAX_LENGTH, default="")
    cache_key = models.TextField()
    value = models.BinaryField(default=b"")
    number = models.BigIntegerField(null=True, blank=True)
    expires_at = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "django_perf_cache_entry"
        verbose_name = "cache entry"
        verbose_name_plural = "cache entries"
        indexes = [
            models.Index(fields=["location", "expires_at"], name="django_perf_cache_expiry"),
        ]

    def __str__(self) -> str:
        return self.cache_key
