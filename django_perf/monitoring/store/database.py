"""The database store: append-only flushes, merged later by one process at a time.

Workers only INSERT raw rows (one per series per flush), so flushes from any
number of processes never wait on each other or lose an increment. A
maintenance pass, serialized by a lease row that it updates first in its
transaction (a row lock on PostgreSQL, the write lock on SQLite), then merges
raw rows into minute rows and the lifetime totals, rolls minutes past
``MONITORING_MINUTE_RETENTION`` up into hours, and deletes hours past
``MONITORING_HOUR_RETENTION``. Every move happens in one transaction, and
readers read all resolutions in one statement, so a request is always counted
exactly once, whichever side of a merge a reader lands on.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence

from django.db import transaction
from django.db.models import Q

from ..models import MetricSeries, MetricsLease, SystemSample
from ..series import Key, Series
from .base import MetricsStore, Row, Sample

__all__ = ["DatabaseStore"]

LEASE = "maintain"
MAX_ROWS_PER_PASS = 20_000


def _dumps(series: Series) -> str:
    return json.dumps(series.to_payload(), separators=(",", ":"))


def _label(route: str) -> str:
    return route if len(route) <= 255 else route[:254] + "…"


class DatabaseStore(MetricsStore):
    """Metrics in the project's database (``MONITORING_DATABASE``), SQLite or PostgreSQL."""

    name = "database"

    def __init__(
        self,
        alias: str = "default",
        minute_retention: int = 86400,
        hour_retention: int = 30 * 86400,
        lease_seconds: float = 10.0,
    ) -> None:
        self.alias = alias
        self.minute_retention = minute_retention
        self.hour_retention = hour_retention
        self.lease_seconds = lease_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def describe(self) -> str:
        return f"database ({self.alias!r})"

    # --- writing ------------------------------------------------------------------

    def write(self, batch: Mapping[Key, Series], samples: Sequence[Sample] = ()) -> None:
        rows = [
            MetricSeries(
                resolution=MetricSeries.RAW,
                start=key.start,
                route=_label(key.route),
                method=key.method,
                status=key.status,
                payload=_dumps(series),
            )
            for key, series in batch.items()
        ]
        sample_rows = [
            SystemSample(
                start=int(s.taken_at) - int(s.taken_at) % 60,
                host=s.host[:255],
                pid=s.pid,
                taken_at=s.taken_at,
                payload=s.to_json(),
            )
            for s in samples
        ]
        if not rows and not sample_rows:
            return
        with transaction.atomic(using=self.alias):
            if rows:
                MetricSeries.objects.using(self.alias).bulk_create(rows, batch_size=500)
            if sample_rows:
                SystemSample.objects.using(self.alias).bulk_create(
                    sample_rows,
                    update_conflicts=True,
                    unique_fields=["start", "host", "pid"],
                    update_fields=["taken_at", "payload"],
                )

    # --- reading ------------------------------------------------------------------

    def read(self, since: int, until: int, route: str | None = None) -> list[Row]:
        fine = Q(resolution__in=(MetricSeries.RAW, MetricSeries.MINUTE), start__gte=since)
        coarse = Q(resolution=MetricSeries.HOUR, start__gt=since - MetricSeries.HOUR)
        query = MetricSeries.objects.using(self.alias).filter(fine | coarse, start__lt=until)
        if route is not None:
            query = query.filter(route=route)
        return list(self._rows(query))

    def read_totals(self) -> list[Row]:
        # Totals and the raw rows not yet merged into them, in one statement (one snapshot).
        query = MetricSeries.objects.using(self.alias).filter(
            resolution__in=(MetricSeries.TOTAL, MetricSeries.RAW)
        )
        merged: dict[Key, Series] = {}
        for row in self._rows(query):
            key = Key(0, row.key.route, row.key.method, row.key.status)
            if key in merged:
                merged[key].merge(row.series)
            else:
                merged[key] = row.series
        return [Row(key, MetricSeries.TOTAL, series) for key, series in merged.items()]

    def read_samples(self, since: int) -> list[Sample]:
        latest: dict[tuple[str, int], Sample] = {}
        query = SystemSample.objects.using(self.alias).filter(start__gte=since - since % 60)
        for payload in query.order_by("taken_at").values_list("payload", flat=True):
            sample = Sample.from_json(payload)
            if sample.taken_at >= since:
                latest[(sample.host, sample.pid)] = sample
        return list(latest.values())

    @staticmethod
    def _rows(query) -> Iterable[Row]:
        fields = ("resolution", "start", "route", "method", "status", "payload")
        for resolution, start, route, method, status, payload in query.values_list(*fields):
            series = Series.from_payload(json.loads(payload))
            yield Row(Key(start, route, method, status), resolution, series)

    # --- maintenance --------------------------------------------------------------

    def maintain(self, now: float | None = None, *, force: bool = False) -> bool:
        now = time.time() if now is None else now
        leases = MetricsLease.objects.using(self.alias)
        leases.get_or_create(name=LEASE)
        with transaction.atomic(using=self.alias):
            # First statement is a write: it serializes maintainers (row lock on PostgreSQL,
            # the database write lock on SQLite) before anything is read.
            claim = leases.filter(name=LEASE)
            if not force:
                claim = claim.filter(until__lt=now)
            if not claim.update(until=now + self.lease_seconds, holder=self.holder):
                return False
            self._merge_raw()
            self._roll_up(int(now))
            self._expire(int(now))
        return True

    def _merge_raw(self) -> None:
        objects = MetricSeries.objects.using(self.alias)
        raw = list(
            objects.filter(resolution=MetricSeries.RAW)
            .order_by("id")
            .values_list("id", "start", "route", "method", "status", "payload")[:MAX_ROWS_PER_PASS]
        )
        if not raw:
            return
        minutes: dict[Key, Series] = {}
        totals: dict[Key, Series] = {}
        for _, start, route, method, status, payload in raw:
            series = Series.from_payload(json.loads(payload))
            _add(minutes, Key(start - start % 60, route, method, status), series)
            _add(totals, Key(0, route, method, status), Series.from_payload(json.loads(payload)))
        self._fold_into(MetricSeries.MINUTE, minutes)
        self._fold_into(MetricSeries.TOTAL, totals)
        self._delete([row[0] for row in raw])

    def _roll_up(self, now: int) -> None:
        cutoff = now - self.minute_retention
        objects = MetricSeries.objects.using(self.alias)
        old = list(
            objects.filter(resolution=MetricSeries.MINUTE, start__lt=cutoff)
            .order_by("id")
            .values_list("id", "start", "route", "method", "status", "payload")[:MAX_ROWS_PER_PASS]
        )
        if not old:
            return
        hours: dict[Key, Series] = {}
        for _, start, route, method, status, payload in old:
            key = Key(start - start % 3600, route, method, status)
            _add(hours, key, Series.from_payload(json.loads(payload)))
        self._fold_into(MetricSeries.HOUR, hours)
        self._delete([row[0] for row in old])

    def _expire(self, now: int) -> None:
        MetricSeries.objects.using(self.alias).filter(
            resolution=MetricSeries.HOUR, start__lt=now - self.hour_retention
        ).delete()
        SystemSample.objects.using(self.alias).filter(
            start__lt=now - self.minute_retention
        ).delete()

    def _fold_into(self, resolution: int, merged: dict[Key, Series]) -> None:
        """Add ``merged`` to the rows at ``resolution``: read, delete and rewrite them."""
        objects = MetricSeries.objects.using(self.alias)
        existing = objects.filter(resolution=resolution, start__in={k.start for k in merged})
        stale = []
        for row_id, start, route, method, status, payload in existing.values_list(
            "id", "start", "route", "method", "status", "payload"
        ):
            key = Key(start, route, method, status)
            if key in merged:
                merged[key].merge(Series.from_payload(json.loads(payload)))
                stale.append(row_id)
        self._delete(stale)
        objects.bulk_create(
            [
                MetricSeries(
                    resolution=resolution,
                    start=key.start,
                    route=key.route,
                    method=key.method,
                    status=key.status,
                    payload=_dumps(series),
                )
                for key, series in merged.items()
            ],
            batch_size=500,
        )

    def _delete(self, ids: list[int]) -> None:
        # By id, never by range: a row a concurrent flush has not committed yet must stay.
        objects = MetricSeries.objects.using(self.alias)
        for i in range(0, len(ids), 500):
            objects.filter(id__in=ids[i : i + 500]).delete()

    def clear(self) -> None:
        with transaction.atomic(using=self.alias):
            MetricSeries.objects.using(self.alias).all().delete()
            SystemSample.objects.using(self.alias).all().delete()


def _add(target: dict[Key, Series], key: Key, series: Series) -> None:
    mine = target.get(key)
    if mine is None:
        target[key] = series
    else:
        mine.merge(series)
