"""The Redis store: atomic increments into per-minute and per-hour hashes that expire on their own.

Each flush is one ``MULTI``/``EXEC`` of script calls doing ``HINCRBY`` and
``HINCRBYFLOAT``, so flushes from any number of processes add up and no reader
sees half a batch. Redis does not roll back: a command it refuses inside
``EXEC`` leaves the others applied, so such a batch is logged and dropped
rather than sent again (which would count the applied part twice); a batch
that never reached ``EXEC`` (connection lost) is put back for the next flush.
Every series goes three ways: its minute's hash (kept
``MONITORING_MINUTE_RETENTION``), its hour's hash (the rollup, kept
``MONITORING_HOUR_RETENTION``) and the lifetime totals (for Prometheus
counters). Expiry does the retention; there is nothing to maintain.

Keys (``<p>`` is ``MONITORING_REDIS_PREFIX``)::

    <p>:m:<minute start>   hash  "<route>\\x1f<method>\\x1f<status>\\x1f<b|s><name>" -> number
    <p>:h:<hour start>     hash  same fields
    <p>:total              hash  same fields, no expiry
    <p>:sys:<minute start> hash  "<host>\\x1f<pid>" -> JSON sample
    <p>:slow:<route>       list  JSON slow requests, newest first (trimmed per route)
    <p>:slow               zset  route -> time of its latest slow request (the routes' index)

Values are plain numbers and JSON: nothing is ever unpickled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..series import SUMS, Key, Series, flushed_weight
from .base import SLOW_LOG_MAX, SLOW_LOG_PER_ROUTE, MetricsStore, Row, Sample, SlowRequest

__all__ = ["RedisStore"]

logger = logging.getLogger("django_perf.monitoring")

SEP = "\x1f"
INT_SUMS = tuple(name for name in SUMS if name != "weight")
MINUTE_WINDOW_LIMIT = 6 * 3600  # longer windows read whole hours from the hour hashes

# KEYS: minute hash, hour hash, totals. ARGV: minute expiry, hour expiry, then N = the
# length of the integer part, N items of field/integer pairs, then field/float pairs.
ADD_SCRIPT = """
local n = tonumber(ARGV[3])
for k = 1, 3 do
  local key = KEYS[k]
  for i = 4, 3 + n, 2 do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
  end
  for i = 4 + n, #ARGV, 2 do
    redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1])
  end
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return 1
"""


class RedisStore(MetricsStore):
    """Metrics in Redis (``MONITORING_REDIS_URL``)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "django_perf:metrics",
        minute_retention: int = 86400,
        hour_retention: int = 30 * 86400,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.minute_retention = minute_retention
        self.hour_retention = hour_retention
        self._client: Any = None
        self._script: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"redis ({self.prefix})"

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import redis

                    self._client = redis.Redis.from_url(
                        self.url, socket_timeout=5, socket_connect_timeout=5
                    )
        return self._client

    # --- writing ------------------------------------------------------------------

    def write(
        self,
        batch: Mapping[Key, Series],
        samples: Sequence[Sample] = (),
        slow: Sequence[SlowRequest] = (),
    ) -> None:
        if not batch and not samples and not slow:
            return
        # One script call per minute: the fields are sent once and added to the minute's
        # hash, the hour's hash and the totals inside Redis (fewer, smaller commands).
        by_minute: dict[int, list] = {}
        for key, series in batch.items():
            label = f"{key.route}{SEP}{key.method}{SEP}{key.status}{SEP}"
            fields = by_minute.setdefault(key.start - key.start % 60, [[], []])
            ints, floats = fields
            for index, n in series.buckets.items():
                ints += (f"{label}b{index}", n)
            for name in INT_SUMS:
                value = getattr(series, name)
                if value:
                    ints += (f"{label}s{name}", value)
            floats += (f"{label}sweight", repr(float(flushed_weight(series))))
            for name, value in series.extra.items():
                floats += (f"{label}s{name}", repr(float(value)))
        pipe = self.client.pipeline(transaction=True)
        for minute, (ints, floats) in by_minute.items():
            hour = minute - minute % 3600
            self._add(
                keys=[
                    f"{self.prefix}:m:{minute}",
                    f"{self.prefix}:h:{hour}",
                    f"{self.prefix}:total",
                ],
                args=[
                    minute + 60 + self.minute_retention,
                    hour + 3600 + self.hour_retention,
                    len(ints),
                    *ints,
                    *floats,
                ],
                client=pipe,
            )
        for sample in samples:
            minute = int(sample.taken_at) - int(sample.taken_at) % 60
            name = f"{self.prefix}:sys:{minute}"
            pipe.hset(name, f"{sample.host}{SEP}{sample.pid}", sample.to_json())
            pipe.expireat(name, minute + 60 + self.minute_retention)
        if slow:
            index = f"{self.prefix}:slow"
            routes: dict[str, float] = {}
            for request in slow:
                name = f"{self.prefix}:slow:{request.route}"
                pipe.lpush(name, request.to_json())
                routes[request.route] = max(routes.get(request.route, 0.0), request.at)
            for route in routes:
                name = f"{self.prefix}:slow:{route}"
                pipe.ltrim(name, 0, SLOW_LOG_PER_ROUTE - 1)
                pipe.expire(name, self.minute_retention)
            pipe.zadd(index, routes)
            pipe.zremrangebyscore(index, "-inf", time.time() - self.minute_retention)
            pipe.expire(index, self.minute_retention)
        refused = [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
        if refused:
            logger.error(
                "The Redis metrics store refused %d of a flush's commands and applied the "
                "rest; the refused part is dropped (sending it again would count the rest "
                "twice). First error: %s",
                len(refused),
                refused[0],
            )

    @property
    def _add(self) -> Any:
        if self._script is None:
            self._script = self.client.register_script(ADD_SCRIPT)
        return self._script

    # --- reading ------------------------------------------------------------------

    def _keys_for(self, since: int, until: int) -> list[tuple[str, int, int]]:
        """(hash key, start, resolution) covering [since, until): hours inside, minutes at edges."""
        first_minute = since - since % 60
        if until - since <= MINUTE_WINDOW_LIMIT:
            return [(f"{self.prefix}:m:{m}", m, 60) for m in range(first_minute, until, 60)]
        keys = []
        first_hour = since - since % 3600 + (3600 if since % 3600 else 0)
        last_hour = until - until % 3600
        # The oldest minute hash not yet expired (each expires at its end + retention).
        oldest_minute = int(time.time()) - self.minute_retention - 59
        if first_minute < first_hour:
            if first_minute >= oldest_minute:
                keys += [
                    (f"{self.prefix}:m:{m}", m, 60) for m in range(first_minute, first_hour, 60)
                ]
            else:  # minutes are gone: their hour stands in (the window's edge is approximate)
                keys.append((f"{self.prefix}:h:{first_hour - 3600}", first_hour - 3600, 3600))
        keys += [(f"{self.prefix}:h:{h}", h, 3600) for h in range(first_hour, last_hour, 3600)]
        keys += [
            (f"{self.prefix}:m:{m}", m, 60) for m in range(max(last_hour, first_minute), until, 60)
        ]
        return keys

    def read(self, since: int, until: int, route: str | None = None) -> list[Row]:
        keys = self._keys_for(since, until)
        pipe = self.client.pipeline(transaction=False)
        for name, _, _ in keys:
            pipe.hgetall(name)
        rows: list[Row] = []
        for (_, start, resolution), fields in zip(keys, pipe.execute(), strict=True):
            for key, series in _parse(fields, start):
                if route is None or key.route == route:
                    rows.append(Row(key, resolution, series))
        return rows

    def read_totals(self) -> list[Row]:
        fields = self.client.hgetall(f"{self.prefix}:total")
        return [Row(key, -1, series) for key, series in _parse(fields, 0)]

    def read_samples(self, since: int) -> list[Sample]:
        now = int(time.time())
        minutes = range(since - since % 60, now + 1, 60)
        pipe = self.client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hvals(f"{self.prefix}:sys:{minute}")
        latest: dict[tuple[str, int], Sample] = {}
        for values in pipe.execute():
            for value in values:
                sample = Sample.from_json(value)
                if sample.taken_at >= since:
                    current = latest.get((sample.host, sample.pid))
                    if current is None or current.taken_at < sample.taken_at:
                        latest[(sample.host, sample.pid)] = sample
        return list(latest.values())

    def read_sample_history(self, since: int, until: int) -> list[Sample]:
        oldest = int(time.time()) - self.minute_retention - 60
        first = max(since, oldest)
        minutes = range(first - first % 60, until, 60)
        pipe = self.client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hvals(f"{self.prefix}:sys:{minute}")
        samples = []
        for values in pipe.execute():
            for value in values:
                sample = Sample.from_json(value)
                if since <= sample.taken_at < until:
                    samples.append(sample)
        return sorted(samples, key=lambda s: s.taken_at)

    def read_slow(self, since: float, route: str | None = None) -> list[SlowRequest]:
        client = self.client
        if route is None:
            routes = [name.decode() for name in client.zrange(f"{self.prefix}:slow", 0, -1)]
        else:
            routes = [route]
        pipe = client.pipeline(transaction=False)
        for name in routes:
            pipe.lrange(f"{self.prefix}:slow:{name}", 0, -1)
        found = [
            request
            for values in pipe.execute()
            for request in map(SlowRequest.from_json, values)
            if request.at >= since
        ]
        found.sort(key=lambda r: -r.at)
        return found[:SLOW_LOG_MAX]

    def clear(self) -> None:
        """Delete this store's keys only: the families above, not everything under the prefix.

        A store whose prefix extends this one (``<p>:staging``) and other keys that
        share the prefix are left alone. A slow list is found through the routes'
        index; one whose route left it (its newest request past retention) expires
        on its own.
        """
        client = self.client
        prefix = self.prefix.encode()
        names = [prefix + b":total", prefix + b":slow"]
        names += [prefix + b":slow:" + route for route in client.zrange(names[1], 0, -1)]
        for family in ("m", "h", "sys"):
            names += self._numbered(family)
        for i in range(0, len(names), 500):
            client.delete(*names[i : i + 500])

    def _numbered(self, family: str) -> list[bytes]:
        """The keys ``<p>:<family>:<minute or hour start>`` that exist."""
        head = f"{self.prefix}:{family}:".encode()
        match = _glob_escape(head) + b"[0-9]*"
        return [
            name
            for name in self.client.scan_iter(match=match, count=500)
            if name[len(head) :].isdigit()
        ]


def _glob_escape(text: bytes) -> bytes:
    """``text`` as a SCAN/KEYS pattern that matches only itself."""
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in text)


def _parse(fields: Mapping[bytes, bytes], start: int) -> Iterable[tuple[Key, Series]]:
    found: dict[Key, Series] = {}
    for raw_field, raw_value in fields.items():
        # From the right: a route (a URL pattern, e.g. a re_path regex) may hold SEP itself.
        route, method, status, tag = raw_field.decode().rsplit(SEP, 3)
        key = Key(start, route, method, status)
        series = found.get(key)
        if series is None:
            series = found[key] = Series()
        if tag[0] == "b":
            series.buckets[int(tag[1:])] = int(raw_value)
        else:
            series.add_sum(tag[1:], float(raw_value))
    return found.items()
