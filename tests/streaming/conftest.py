"""Fixtures for the streaming tests: seeded events with edge values, a logged-in exporter, servers.

The data is committed once for the whole ``tests/streaming`` package (servers in
other processes must see it) and flushed at the end, so tests here use the
``db`` fixture (rolled back) and never ``transactional_db`` (which would flush it).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from testproject.blog.models import Event
from testproject.blog.seed import SeedSize, seed
from tests.support.env import server_env
from tests.support.http import LiveServer, serve

UTC = dt.UTC
EDGE_TEXTS = [
    "",
    None,
    'quote " and \\ backslash',
    "comma, here",
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\nend",
    "tab\tand\x01control\x1f",
    "ünïcödé ☃ \u2028 𝄞",
    "\x7f del",
    " padded ",
]
EDGE_FLOATS = [
    1e16, 2.0**53 + 2, 9007199254740993.0, 1e15, 1234567890123456.8, 5.396493573139838e16,
    1e-7, 1e-4, 1e-4 / 3, -0.0, 0.0, 100.0, 1.7976931348623157e308, 5e-324, 0.1 + 0.2,
    math.nan, math.inf, -math.inf, -123.456,
]  # fmt: skip
EDGE_DATETIMES = [
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2024, 2, 29, 12, 0, 0, 500, tzinfo=UTC),
    dt.datetime(2024, 2, 29, 12, 0, 0, 7000, tzinfo=UTC),
]
EDGE_TIMES = [dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 500)]
EDGE_DURATIONS = [
    dt.timedelta(0),
    dt.timedelta(microseconds=-1),
    dt.timedelta(days=-1, seconds=5),
    dt.timedelta(days=999999, seconds=86399, microseconds=999999),
    dt.timedelta(hours=-30, microseconds=250),
]
EDGE_AMOUNTS = [Decimal("0"), Decimal("-99999999.9999"), Decimal("0.0001"), Decimal("12.3000")]
EDGE_INTS = [(-(2**31), -(2**63)), (2**31 - 1, 2**63 - 1), (0, 0)]


def edge_events() -> list[Event]:
    """Events whose values are the hard cases for encoders and for SQL formatting."""
    floats = EDGE_FLOATS
    if connection.vendor == "sqlite":
        floats = [f for f in floats if not math.isnan(f)]  # SQLite stores NaN as NULL
    count = max(len(EDGE_TEXTS), len(EDGE_FLOATS), len(EDGE_DATETIMES), len(EDGE_DURATIONS))
    events = []
    for i in range(count):
        at = EDGE_DATETIMES[i % len(EDGE_DATETIMES)]
        count_value, total = EDGE_INTS[i % len(EDGE_INTS)]
        events.append(
            Event(
                uuid=uuid.UUID(int=i + 1),
                kind=("edge,kind", 'edge"kind', "edge")[i % 3],
                occurred_at=at,
                day=at.date(),
                local_time=EDGE_TIMES[i % len(EDGE_TIMES)],
                duration=EDGE_DURATIONS[i % len(EDGE_DURATIONS)],
                score=floats[i % len(floats)],
                amount=EDGE_AMOUNTS[i % len(EDGE_AMOUNTS)],
                count=count_value,
                total=total,
                is_bot=bool(i % 2),
                consented=(None, True, False)[i % 3],
                payload={"i": i, "f": 1.5e-7, "nested": [None, "x", {"k": True}]},
                note=EDGE_TEXTS[i % len(EDGE_TEXTS)],
            )
        )
    return events


@dataclass
class Exports:
    """What the export tests share: who may export, and how to start servers that serve it."""

    cookies: dict[str, str]
    env: dict[str, str]
    events: int

    def client(self, server: LiveServer, **kwargs) -> httpx.Client:
        """An HTTP client logged in as a user allowed to export (no compression asked)."""
        headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=server.url, cookies=self.cookies, headers=headers, **kwargs)


@pytest.fixture(scope="package")
def exports(django_db_setup, django_db_blocker, redis_url) -> Iterator[Exports]:
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
        seed(SeedSize(authors=3, articles=20, comments=0, events=3000))
        Event.objects.bulk_create(edge_events())
        user = User.objects.create_user("exporter", "exporter@example.com", "not-used")
        user.user_permissions.add(Permission.objects.get(codename="view_event"))
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        # DATABASE_POOL=0: these servers prove every database session ends with its request
        # (pg_stat_activity); Django's pool keeps released connections open by design.
        # METRICS_REDIS_URL: the monitoring middleware still wraps every stream, but flushes
        # its metrics to Redis; on SQLite, its writes every few seconds from each server
        # would wait on the long reads these tests make and time out ("database is locked").
        env = server_env(
            DJANGO_PERF_EXPORT_TEST_HOOKS="1",
            DJANGO_PERF_LOG_LEVEL="DEBUG",
            DATABASE_POOL="0",
            METRICS_REDIS_URL=redis_url,
            METRICS_FLUSH_INTERVAL="0.5",  # the first flushes happen during the warm-up
        )
        events = Event.objects.count()
    yield Exports({settings.SESSION_COOKIE_NAME: cookie}, env, events)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="package")
def gunicorn(exports: Exports) -> Iterator[LiveServer]:
    with serve("gunicorn", exports.env, workers=2) as server:
        yield server


@pytest.fixture(scope="package")
def uvicorn(exports: Exports) -> Iterator[LiveServer]:
    with serve("uvicorn", exports.env) as server:
        yield server


@pytest.fixture(scope="package")
def daphne(exports: Exports) -> Iterator[LiveServer]:
    with serve("daphne", exports.env) as server:
        yield server
