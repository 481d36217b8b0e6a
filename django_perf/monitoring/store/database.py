"""The database store: append-only flushes, merged later by one process at a time.

Workers only INSERT raw rows (one per series per flush), so flushes from any
number of processes never wait on each other or lose an increment. A
maintenance pass, held by a lease row, merges raw rows into minute rows, hour
rows and the lifetime totals (the same three ways the Redis store writes),
deletes minutes past ``MONITORING_MINUTE_RETENTION`` and hours past
``MONITORING_HOUR_RETENTION``. It works in short transactions (about
BATCH_SECONDS each, so that SQLite's one write lock is free again long before
a writer's busy timeout), each renewing the lease first (a row lock on
PostgreSQL, the write lock on SQLite: maintainers' transactions never
overlap). A transaction deletes the raw rows it merges and rolls back if any
was gone, and readers read all resolutions in one statement, so a request is
always counted exactly once, whichever side of a merge a reader lands on.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from django.db import connections, transaction
from django.db.models import Count, Q, Subquery

from ..models import MetricSeries, MetricsLease, SlowRequestLog, SystemSample
from ..series import Key, Series, flushed_weight
from .base import SLOW_LOG_MAX, SLOW_LOG_PER_ROUTE, MetricsStore, Row, Sample, SlowRequest

__all__ = ["DatabaseStore"]

LEASE = "maintain"
MAX_ROWS_PER_PASS = 20_000
# A pass works in short transactions, each holding SQLite's one write lock for about
# BATCH_SECONDS (far under its 5 s busy timeout), sized from the last one's pace, with a
# pause between them on SQLite long enough for a waiting writer's busy handler (which
# retries every 100 ms at most) to take the lock.
BATCH_SECONDS = 0.25
BATCH_ROWS = (50, 300, 5000)  # fewest, first, most rows one transaction writes
SQLITE_PAUSE = 0.12
RAW_CHUNK = 5000  # raw rows read (outside any transaction) and added up at a time
MINUTE_WINDOW_LIMIT = 6 * 3600  # longer windows read whole hours from the hour rows
T = TypeVar("T")


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
        started = time.monotonic()
        leases = MetricsLease.objects.using(self.alias)
        leases.get_or_create(name=LEASE)
        with transaction.atomic(using=self.alias):
            claim = leases.filter(name=LEASE)
            if not force:
                claim = claim.filter(until__lt=now)
            if not claim.update(until=now + self.lease_seconds, holder=self.holder):
                return False

        def pass_now() -> float:
            return now + time.monotonic() - started

        # Each step in short transactions (see BATCH_SECONDS); a lost lease ends the pass.
        if not self._merge_raw(pass_now):
            return True
        if not self._in_batches(pass_now, lambda limit: self._drop_old_minutes(int(now), limit)):
            return True
        self._in_lease(pass_now, lambda: self._expire(int(now)))
        return True

    def _in_batches(self, now: Callable[[], float], step: Callable[[int], int]) -> bool:
        """Run ``step(limit)`` (rows done) in short transactions until it runs out of rows.

        Stops at MAX_ROWS_PER_PASS rows, or when the lease is lost (then returns False).
        """
        limit, done = BATCH_ROWS[1], 0
        while done < MAX_ROWS_PER_PASS:
            limit = min(limit, MAX_ROWS_PER_PASS - done)
            started = time.monotonic()
            rows = self._in_lease(now, lambda: step(limit))  # noqa: B023 (called at once)
            if rows is None:
                return False
            done += rows
            if rows:
                self._let_writers_in()
            if rows < limit:
                return True
            limit = _next_limit(limit, time.monotonic() - started)
        return True

    def _in_lease(self, now: Callable[[], float], work: Callable[[], T]) -> T | None:
        """``work()`` in a transaction that first renews this process's lease (None if lost).

        Renewing is a write, so it serializes maintainers before anything is read: rows
        a batch merges and deletes cannot be merged by another process too.
        """
        with transaction.atomic(using=self.alias):
            renewed = (
                MetricsLease.objects.using(self.alias)
                .filter(name=LEASE, holder=self.holder)
                .update(until=now() + self.lease_seconds)
            )
            return work() if renewed else None

    def _let_writers_in(self) -> None:
        if connections[self.alias].vendor == "sqlite":
            time.sleep(SQLITE_PAUSE)

    def _merge_raw(self, now: Callable[[], float]) -> bool:
        """Merge raw rows into minutes, hours and totals; False if the lease was lost.

        Rows are read and added up outside any transaction (that is most of the work);
        each transaction then deletes the raw rows of a few labels and folds their sums
        in, and rolls back if another maintainer merged any of them first.
        """
        objects = MetricSeries.objects.using(self.alias)
        fields = ("id", "start", "route", "method", "status", "payload")
        done, after, limit = 0, 0, BATCH_ROWS[1]
        while done < MAX_ROWS_PER_PASS:
            chunk = min(RAW_CHUNK, MAX_ROWS_PER_PASS - done)
            raw = list(
                objects.filter(resolution=MetricSeries.RAW, id__gt=after)
                .order_by("id")
                .values_list(*fields)[:chunk]
            )
            if not raw:
                return True
            limit = self._fold_in_batches(now, _by_label(raw), limit)
            if not limit:
                return False
            done, after = done + len(raw), raw[-1][0]
            if len(raw) < chunk:
                return True
        return True

    def _fold_in_batches(self, now: Callable[[], float], labels: list[_Merge], limit: int) -> int:
        """Fold ``labels`` in, a few labels (about BATCH_SECONDS of work) per transaction.

        ``limit`` is the rows the first transaction may write; returns the next one's, or 0
        if the lease was lost.
        """
        while labels:
            batch, size = [], 0
            while labels and (not batch or size + labels[-1].size <= limit):
                batch.append(labels.pop())
                size += batch[-1].size
            started = time.monotonic()
            try:
                if self._in_lease(now, lambda: self._fold(batch)) is None:  # noqa: B023
                    return 0
            except _MergedElsewhere:
                return 0
            self._let_writers_in()
            limit = _next_limit(limit, time.monotonic() - started)
        return limit

    def _fold(self, batch: list[_Merge]) -> int:
        """Delete the batch's raw rows and add their sums to minutes, hours and totals."""
        ids = [row_id for merge in batch for row_id in merge.ids]
        if self._delete(ids) != len(ids):
            raise _MergedElsewhere  # rolls the transaction back: each row is merged once
        for resolution in (MetricSeries.MINUTE, MetricSeries.HOUR, MetricSeries.TOTAL):
            self._fold_into(
                resolution, {k: v for m in batch for k, v in m.sums[resolution].items()}
            )
        return len(ids)

    def _drop_old_minutes(self, now: int, limit: int) -> int:
        """Delete up to ``limit`` minutes that ended over ``minute_retention`` ago (their hours
        hold them); return how many."""
        cutoff = now - self.minute_retention - 59  # gone when its end + retention has come
        objects = MetricSeries.objects.using(self.alias)
        old = list(
            objects.filter(resolution=MetricSeries.MINUTE, start__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        self._delete(old)
        return len(old)

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
        existing = objects.filter(
            resolution=resolution,
            start__in={k.start for k in merged},
            route__in={k.route for k in merged},  # not every route's totals for a few routes
        )
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

    def _delete(self, ids: list[int]) -> int:
        # By id, never by range: a row a concurrent flush has not committed yet must stay.
        objects = MetricSeries.objects.using(self.alias)
        return sum(
            objects.filter(id__in=ids[i : i + 500]).delete()[0] for i in range(0, len(ids), 500)
        )

    def clear(self) -> None:
        with transaction.atomic(using=self.alias):
            MetricSeries.objects.using(self.alias).all().delete()
            SystemSample.objects.using(self.alias).all().delete()
            SlowRequestLog.objects.using(self.alias).all().delete()


class _MergedElsewhere(Exception):
    """Another maintainer merged some of the raw rows this transaction was merging."""


class _Merge:
    """The raw rows of one label (route, method, status) and their sums per resolution."""

    __slots__ = ("ids", "size", "sums")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.sums: dict[int, dict[Key, Series]] = {
            MetricSeries.MINUTE: {},
            MetricSeries.HOUR: {},
            MetricSeries.TOTAL: {},
        }

    def add(self, row_id: int, start: int, label: tuple[str, str, str], payload: str) -> None:
        self.ids.append(row_id)
        data = json.loads(payload)
        for resolution, period in ((MetricSeries.MINUTE, 60), (MetricSeries.HOUR, 3600)):
            key = Key(start - start % period, *label)
            _add(self.sums[resolution], key, Series.from_payload(data))
        _add(self.sums[MetricSeries.TOTAL], Key(0, *label), Series.from_payload(data))


def _by_label(raw: list[tuple]) -> list[_Merge]:
    """Raw rows ``(id, start, route, method, status, payload)`` added up per label."""
    merges: dict[tuple[str, str, str], _Merge] = {}
    for row_id, start, route, method, status, payload in raw:
        label = (route, method, status)
        merge = merges.get(label)
        if merge is None:
            merge = merges[label] = _Merge()
        merge.add(row_id, start, label, payload)
    for merge in merges.values():
        merge.size = sum(map(len, merge.sums.values()))  # rows its fold rewrites
    return list(merges.values())


def _next_limit(limit: int, seconds: float) -> int:
    """The next transaction's rows: this one's, scaled to take BATCH_SECONDS (at most 2x)."""
    fewest, _, most = BATCH_ROWS
    paced = int(limit * BATCH_SECONDS / seconds) if seconds > 0 else most
    return max(fewest, min(paced, 2 * limit, most))


def _add(target: dict[Key, Series], key: Key, series: Series) -> None:
    mine = target.get(key)
    if mine is None:
        target[key] = series
    else:
        mine.merge(series)
