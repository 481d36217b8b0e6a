"""What every metrics store does: take batches from workers, give back rows for a period."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..series import Key, Series

__all__ = ["MetricsStore", "Row", "Sample"]


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


class MetricsStore(ABC):
    """The shared store every worker flushes to and every reader (perf_stats, /metrics) reads."""

    name = "store"

    @abstractmethod
    def write(self, batch: Mapping[Key, Series], samples: Sequence[Sample] = ()) -> None:
        """Add a batch of series (merged with what is there) and record system samples."""

    @abstractmethod
    def read(self, since: int, until: int, route: str | None = None) -> list[Row]:
        """Series whose period starts in ``[since, until)`` at the finest resolution kept."""

    @abstractmethod
    def read_totals(self) -> list[Row]:
        """Lifetime totals per (route, method, status class), for monotonic counters."""

    @abstractmethod
    def read_samples(self, since: int) -> list[Sample]:
        """The latest system sample of each process seen since ``since`` (Unix seconds)."""

    def maintain(self, now: float | None = None) -> bool:
        """Roll up and expire old data; True if this call did the work (one process at a time)."""
        return False

    @abstractmethod
    def clear(self) -> None:
        """Delete every metric (tests, ``perf_stats --clear``)."""

    def describe(self) -> str:
        return self.name
