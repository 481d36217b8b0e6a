"""``Tagged``: PostgreSQL arrays for the bulk helpers' tests (``required_db_vendor`` keeps
Django from creating its table anywhere else, so the same migration applies on SQLite)."""

from django.contrib.postgres.fields import ArrayField
from django.db import models


class Tagged(models.Model):
    """PostgreSQL arrays, one and two dimensional."""

    name = models.CharField(max_length=50, unique=True)
    tags = ArrayField(models.CharField(max_length=20), default=list)
    scores = ArrayField(models.IntegerField(), null=True)
    grid = ArrayField(ArrayField(models.IntegerField()), null=True)
    seen_at = models.DateTimeField(null=True)
    stamps = ArrayField(models.DateTimeField(), null=True)

    class Meta:
        required_db_vendor = "postgresql"

    def __str__(self) -> str:
        return self.name
