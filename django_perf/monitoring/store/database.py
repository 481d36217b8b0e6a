"""The database store: append-only flushes, merged later by one process at a time.

Workers only INSERT raw rows (one per series per flush), so flushes from any
number of processes never wait on each other or lose an increment. A
maintenance pass, serialized by a lease row that it updates first in its
transaction (a row lock on PostgreSQL, the write lock on SQLite), then merges
raw rows into minute rows, hour rows and the lifetime totals (the same three
ways the Redis store writes), deletes minutes past
``MONITORING_MINUTE_RETENTION`` and hours past ``MONITORING_HOUR_RETENTION``.
Every move happens in one transaction, and readers read all resolutions in one
statement, so a request is always counted exactly once, whichever side of a
merge a reader lands on.

Windows up to six hours read minutes; longer ones read the hours inside the
window and minutes at its edges (about 30 times fewer rows for a day), as the
Redis store does. The slow-request log is a table of its own, trimmed by the
same maintenance pass.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence

from django.db import transaction
from django.db.models import Count, Q, Subquery

from ..models import MetricSeries, MetricsLease, SlowRequestLog, SystemSample
from ..series import Key, Series, flushed_weight
from .base import SLOW_LOG_MAX, SLOW_LOG_PER_ROUTE, MetricsStore, Row, Sample, SlowRequest

__all__ = ["DatabaseStore"]

LEASE = "maintain"
MAX_ROWS_PER_PASS = 20_000
MINUTE_WINDOW_LIMIT = 6 * 3600  # longer windows read whole hours from the hour rows


def _dumps(series: Series, weight: float | None = None) -> str:
    payload = series.to_payload()
    if weight is not None:
        payload["s"]["weight"] = weight
    return json.dumps(payload, separators=(",", ":"))


def _label(route: str) -> str:
    """The route as the ``route`` column keeps it: cut to 254 characters and "…" past 255."""
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

    def write(
        self,
        batch: Mapping[Key, Series],
        samples: Sequence[Sample] = (),
        slow: Sequence[SlowRequest] = (),
    ) -> None:
        rows = [
            MetricSeries(
                resolution=MetricSeries.RAW,
                start=key.start,
                route=_label(key.route),
                method=key.method,
                status=key.status,
                payload=_dumps(series, flushed_weight(series)),
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
        slow_rows = [
            SlowRequestLog(
                at=r.at, route=_label(r.route), duration_ms=r.duration_ms, payload=r.to_json()
            )
            for r in slow
        ]
        if not rows and not sample_rows and not slow_rows:
            return
        with transaction.atomic(using=self.alias):
            if rows:
                MetricSeries.objects.using(self.alias).bulk_create(rows, batch_size=500)
            if slow_rows:
                SlowRequestLog.objects.using(self.alias).bulk_create(slow_rows, batch_size=500)
            if sample_rows:
                SystemSample.objects.using(self.alias).bulk_create(
                    sample_rows,
                    update_conflicts=True,
                    unique_fields=["start", "host", "pid"],
                    update_fields=["taken_at", "payload"],
                )

    # --- reading ------------------------------------------------------------------

    def read(self, since: int, until: int, route: str | None = None) -> list[Row]:
        query = MetricSeries.objects.using(self.alias).filter(self._covering(since, until))
        if route is None:
            return list(self._rows(query))
        # A long route is stored cut (see _label): look it up cut, name it as asked.
        rows = self._rows(query.filter(route=_label(route)))
        return [Row(row.key._replace(route=route), row.resolution, row.series) for row in rows]

    def _covering(self, since: int, until: int, now: float | None = None) -> Q:
        """Rows that count every request of ``[since, until)`` once (see the module docstring).

        ``since`` is read from the start of its minute, as the Redis store reads it.
        Raw rows are read wherever they fall: they are in no minute or hour yet.
        Minutes that ended less than ``minute_retention`` ago are all still
        kept (maintenance deletes only older ones); an edge older than that reads its
        whole hour instead, so the window's first hour may reach before ``since``.
        """
        raw, minute, hour = MetricSeries.RAW, MetricSeries.MINUTE, MetricSeries.HOUR
        oldest_minute = int(time.time() if now is None else now) - self.minute_retention - 59
        first_minute = since - since % 60
        if until - since <= MINUTE_WINDOW_LIMIT and first_minute >= oldest_minute:
            return Q(resolution__in=(raw, minute), start__gte=first_minute, start__lt=until)
        first_hour = since + (-since) % hour
        last_hour = max(until - until % hour, first_hour)
        covering = Q(resolution=raw, start__gte=first_minute, start__lt=until)
        covering |= Q(resolution=hour, start__gte=first_hour, start__lt=last_hour)
        if first_minute >= oldest_minute:
            covering |= Q(
                resolution=minute, start__gte=first_minute, start__lt=min(first_hour, until)
            )
        elif since < first_hour:
            covering |= Q(resolution=hour, start=first_hour - hour)
        trailing = max(last_hour, since)
        if trailing < until:
            if trailing - trailing % 60 >= oldest_minute:
                covering |= Q(resolution=minute, start__gte=trailing, start__lt=until)
            else:
                covering |= Q(resolution=hour, start=last_hour)
        return covering

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

    def read_sample_history(self, since: int, until: int) -> list[Sample]:
        query = SystemSample.objects.using(self.alias).filter(
            start__gte=since - since % 60, start__lt=until
        )
        samples = []
        for payload in query.order_by("taken_at").values_list("payload", flat=True):
            sample = Sample.from_json(payload)
            if since <= sample.taken_at < until:
                samples.append(sample)
        return samples

    def read_slow(self, since: float, route: str | None = None) -> list[SlowRequest]:
        query = SlowRequestLog.objects.using(self.alias).filter(at__gte=since)
        if route is not None:
            query = query.filter(route=_label(route))
        payloads = query.order_by("-at").values_list("payload", flat=True)
        return [SlowRequest.from_json(payload) for payload in payloads[:SLOW_LOG_MAX]]

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
            self._drop_old_minutes(int(now))
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
        hours: dict[Key, Series] = {}
        totals: dict[Key, Series] = {}
        for _, start, route, method, status, payload in raw:
            data = json.loads(payload)
            _add(minutes, Key(start - start % 60, route, method, status), Series.from_payload(data))
            _add(hours, Key(start - start % 3600, route, method, status), Series.from_payload(data))
            _add(totals, Key(0, route, method, status), Series.from_payload(data))
        self._fold_into(MetricSeries.MINUTE, minutes)
        self._fold_into(MetricSeries.HOUR, hours)
        self._fold_into(MetricSeries.TOTAL, totals)
        self._delete([row[0] for row in raw])

    def _drop_old_minutes(self, now: int) -> None:
        """Delete minutes that ended over ``minute_retention`` ago (their hours hold them)."""
        cutoff = now - self.minute_retention - 59  # gone when its end + retention has come
        objects = MetricSeries.objects.using(self.alias)
        old = list(
            objects.filter(resolution=MetricSeries.MINUTE, start__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:MAX_ROWS_PER_PASS]
        )
        self._delete(old)

    def _expire(self, now: int) -> None:
        MetricSeries.objects.using(self.alias).filter(
            resolution=MetricSeries.HOUR, start__lt=now - self.hour_retention - 3599
        ).delete()
        SystemSample.objects.using(self.alias).filter(
            start__lt=now - self.minute_retention
        ).delete()
        self._trim_slow_log(now)

    def _trim_slow_log(self, now: int) -> None:
        """Keep the slow log within retention, SLOW_LOG_PER_ROUTE per route and SLOW_LOG_MAX."""
        log = SlowRequestLog.objects.using(self.alias)
        log.filter(at__lt=now - self.minute_retention).delete()
        newest = log.order_by("-id").values_list("id", flat=True)
        cut = list(newest[SLOW_LOG_MAX : SLOW_LOG_MAX + 1])
        if cut:
            log.filter(id__lte=cut[0]).delete()
        crowded = (
            log.values("route")
            .annotate(n=Count("id"))
            .filter(n__gt=SLOW_LOG_PER_ROUTE)
            .values_list("route", flat=True)
        )
        for route in list(crowded):
            keep = newest.filter(route=route)[SLOW_LOG_PER_ROUTE - 1 : SLOW_LOG_PER_ROUTE]
            log.filter(route=route, id__lt=Subquery(keep)).delete()

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
            SlowRequestLog.objects.using(self.alias).all().delete()


def _add(target: dict[Key, Series], key: Key, series: Series) -> None:
    mine = target.get(key)
    if mine is None:
        target[key] = series
    else:
        mine.merge(series)
