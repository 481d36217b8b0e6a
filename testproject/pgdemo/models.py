"""PostgreSQL-only models for the bulk helpers' tests: ``Tagged`` (arrays), ``Coded``
(``char(n)``), ``Minted`` (a ``db_default`` primary key). ``required_db_vendor`` keeps
Django from creating their tables anywhere else, so the same migrations apply on SQLite."""

from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.functions import RandomUUID
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


class FixedCharField(models.CharField):
    """A CharField stored as blank-padded ``char(n)``, as some third-party fields are."""

    def db_type(self, connection: Any) -> str:
        return f"char({self.max_length})"


class Coded(models.Model):
    """``char(n)`` columns, a key among them: the bulk helpers must not cut their values."""

    code = FixedCharField(max_length=10, unique=True)
    label = FixedCharField(max_length=10)

    class Meta:
        required_db_vendor = "postgresql"

    def __str__(self) -> str:
        return self.code


class Minted(models.Model):
    """A primary key the database makes with ``db_default``: no sequence to take keys from."""

    id = models.UUIDField(primary_key=True, db_default=RandomUUID())
    name = models.CharField(max_length=20)

    class Meta:
        required_db_vendor = "postgresql"

    def __str__(self) -> str:
        return self.name
