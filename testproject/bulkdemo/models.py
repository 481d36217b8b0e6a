"""Tables the bulk write, loader and benchmark code of ``django_perf.db`` is exercised on.

``Item`` is the benchmark table (six columns); ``Kitchen`` has one column of
every portable field type, Python defaults and database defaults; ``Account``
has the unique keys upserts match on; ``Token`` has a primary key the
application chooses. ``Tagged`` (PostgreSQL arrays) is in ``testproject.pgdemo``:
declaring an array field needs psycopg, which the demo does not.
"""

import uuid

from django.db import models
from django.db.models.functions import Now


class Item(models.Model):
    qty = models.IntegerField()
    name = models.CharField(max_length=100)
    body = models.TextField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    ts = models.DateTimeField()
    active = models.BooleanField()

    def __str__(self) -> str:
        return self.name


class Kitchen(models.Model):
    """One column per field type, nullable where NULL must round-trip."""

    name = models.CharField(max_length=20)
    text = models.TextField(blank=True, default="")
    small = models.SmallIntegerField(null=True)
    integer = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    ratio = models.FloatField(null=True)
    amount = models.DecimalField(max_digits=10, decimal_places=3, null=True)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    ident = models.UUIDField(default=uuid.uuid4)
    data = models.JSONField(null=True)
    blob = models.BinaryField(null=True)
    email = models.EmailField(blank=True, default="")
    slug = models.SlugField(blank=True, default="")
    ip = models.GenericIPAddressField(null=True)
    token = models.ForeignKey("Token", null=True, on_delete=models.SET_NULL)
    counter = models.IntegerField(default=7)
    status = models.CharField(max_length=10, db_default="new")
    created = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    tenant = models.CharField(max_length=20)
    code = models.CharField(max_length=20)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100)
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    visits = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="bulkdemo_account_tenant_code")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.code}"


class Token(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.label


class Stamped(models.Model):
    """Timestamps Django fills in on save, which a bulk write keeps when a row gives them."""

    code = models.CharField(max_length=20, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.code
