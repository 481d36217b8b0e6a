"""What every metrics store does: take batches from workers, give back rows for a period."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..series import Key, Series

__all__ = ["MetricsStore", "Row", "Sample", "SlowRequest"]

SLOW_LOG_PER_ROUTE = 100  # slow requests kept per route (the most recent ones)
SLOW_LOG_MAX = 10_000  # and at most this many in all


@dataclass(frozen=True)
class Row:
    """One stored series: its key, the length of its period in seconds, and its numbers."""

    key: Key
    resolution: int
    series: Series


@dataclass(frozen=True)
class Sample:
    """A psutil sample of one process and its host (see :mod:`..system`)."""

    host: str
    pid: int
    taken_at: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "t": self.taken_at, **self.data})

    @classmethod
    def from_json(cls, text: str | bytes) -> Sample:
        data = json.loads(text)
        return cls(data.pop("host"), int(data.pop("pid")), float(data.pop("t")), data)


@dataclass(frozen=True)
class SlowRequest:
    """One request slower than ``MONITORING_SLOW_REQUEST_MS``, as the slow log keeps it.

    ``path`` is the request path without its query string; ``message`` is the line
    that was logged (with the database/cache breakdown and any N+1 suspects).
    """

    at: float
    route: str
    method: str
    status: int
    path: str
    duration_ms: float
    queries: int = 0
    db_ms: float = 0.0
    host: str = ""
    pid: int = 0
    message: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SlowRequest:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricsStore(ABC):
    """The shared store every worker flushes to and every reader (perf_stats, /metrics) reads."""

    name = "store"

    @abstractmethod
    def write(
        self,
        batch: Mapping[Key, Series],
        samples: Sequence[Sample] = (),
        slow: Sequence[SlowRequest] = (),
    ) -> None:
        """Add a batch of series (merged with what is there), system samples and slow requests."""

    @abstractmethod
    def read(self, since: int, until: int, route: str | None = None) -> list[Row]:
        """Series of the periods that overlap ``[since, until)``, at the finest resolution kept.

        Each request is in exactly one row; the minute ``since`` falls in is read
        whole, and so is an hour at an edge whose minutes are past retention.
        """

    @abstractmethod
    def read_totals(self) -> list[Row]:
        """Lifetime totals per (route, method, status class), for monotonic counters."""

    @abstractmethod
    def read_samples(self, since: int) -> list[Sample]:
        """The latest system sample of each process seen since ``since`` (Unix seconds)."""

    @abstractmethod
    def read_sample_history(self, since: int, until: int) -> list[Sample]:
        """Every kept sample taken in ``[since, until)``: one per process and minute, oldest first.

        Samples are kept ``MONITORING_MINUTE_RETENTION`` seconds.
        """

    @abstractmethod
    def read_slow(self, since: float, route: str | None = None) -> list[SlowRequest]:
        """The slow requests logged since ``since`` (one route, or all), newest first.

        The log keeps the latest :data:`SLOW_LOG_PER_ROUTE` per route (at most
        :data:`SLOW_LOG_MAX` in all) for ``MONITORING_MINUTE_RETENTION`` seconds.
        """

    def maintain(self, now: float | None = None) -> bool:
        """Roll up and expire old data; True if this call did the work (one process at a time)."""
        return False

    @abstractmethod
    def clear(self) -> None:
        """Delete every metric (tests, ``perf_stats --clear``)."""

    def describe(self) -> str:
        return self.name
