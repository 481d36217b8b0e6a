"""Fixtures for the django_perf.db tests: rows of every field type and a rows_changed recorder."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from django_perf.signals import rows_changed

UTC = datetime.UTC


@dataclass
class Recorder:
    """Every ``rows_changed`` sent while the fixture is active, in order."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **{k: v for k, v in kwargs.items() if k != "signal"}})


@pytest.fixture
def changes() -> Iterator[Recorder]:
    recorder = Recorder()
    rows_changed.connect(recorder, weak=False, dispatch_uid="tests.db.changes")
    yield recorder
    rows_changed.disconnect(dispatch_uid="tests.db.changes")


def kitchen_row(**overrides: Any) -> dict[str, Any]:
    """A Kitchen row with a non-default value in every column."""
    row = {
        "name": "every",
        "text": "long text ü €",
        "small": -32768,
        "integer": 2_147_483_647,
        "big": -9_223_372_036_854_775_808,
        "positive": 42,
        "ratio": 0.125,
        "amount": decimal.Decimal("1234567.125"),
        "flag": True,
        "maybe": False,
        "day": datetime.date(1999, 12, 31),
        "moment": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
        "clock": datetime.time(13, 14, 15, 160000),
        "span": datetime.timedelta(days=3, hours=4, microseconds=5),
        "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "data": {"list": [1, 2.5, None, "x"], "nested": {"ok": True}},
        "blob": b"\x00\xffbytes",
        "email": "cook@example.com",
        "slug": "a-slug",
        "ip": "192.168.0.1",
        "counter": 11,
        "status": "cooked",
    }
    row.update(overrides)
    return row


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Close native pools opened by the tests before the test database is dropped."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for alias in connections:
            if connections[alias].settings_dict["OPTIONS"].get("pool"):
                connections[alias].close_pool()
