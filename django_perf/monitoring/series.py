"""One series of request metrics: a duration histogram and sums, for one minute x labels.

A series is keyed by ``(minute, route, method, status_class)``; everything in
it is a count or a sum, so two series with the same key merge by addition, in
any order, on any process. The payload form (``to_payload``) is what the
stores keep: ``{"h": {bucket: count}, "s": {name: sum}}``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, NamedTuple

from .histogram import Histogram

__all__ = [
    "METHODS",
    "QUERY_COUNT_BOUNDS",
    "STATUS_CLASSES",
    "SUMS",
    "Key",
    "Series",
    "flushed_weight",
    "query_count_name",
    "request_weight",
    "status_name",
]


METHODS = {m: m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")}
STATUS_CLASSES = {status: f"{status // 100}xx" for status in range(100, 600)}


class Key(NamedTuple):
    """What a series is about: the minute it started (epoch seconds) and its labels."""

    start: int
    route: str
    method: str
    status: str  # status class: "2xx", "4xx", ...


# Sums every series carries, by payload name -> meaning (the stable part of the schema).
SUMS = {
    "requests": "requests recorded (sampled)",
    "weight": "requests they stand for (requests / sample rate)",
    "duration_us": "total duration, microseconds",
    "request_bytes": "request body bytes",
    "response_bytes": "response body bytes (streamed bodies counted as they pass)",
    "queries": "database queries, all aliases",
    "query_us": "database time, all aliases, microseconds",
    "slow": "requests slower than MONITORING_SLOW_REQUEST_MS",
    "n_plus_one": "requests flagged as N+1 (repeated identical SQL)",
}
# Other sums are named "queries.<alias>", "query_us.<alias>", "cache.<tier>.<event>",
# "qcount.<bound>" (requests that ran up to <bound> queries, and more than the bound
# before it; "qcount.inf" past the last bound; requests with no query are not counted
# here: they are ``requests`` minus the qcount sums) and "status.<code>" (requests
# answered with that exact status; 200 is not counted: it is the 2xx series' requests
# minus its other status sums). Both count recorded requests, like ``requests``.
QUERY_COUNT_BOUNDS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
_QUERY_COUNT_NAMES = (*(f"qcount.{b}" for b in QUERY_COUNT_BOUNDS), "qcount.inf")
_STATUS_NAMES = {status: f"status.{status}" for status in range(100, 600)}


def query_count_name(queries: int) -> str:
    """The sum that counts a request which ran ``queries`` (> 0) database queries."""
    return _QUERY_COUNT_NAMES[bisect_left(QUERY_COUNT_BOUNDS, queries)]


def status_name(status: int) -> str | None:
    """The sum that counts a request answered with ``status`` (None for 200 and odd codes)."""
    return None if status == 200 else _STATUS_NAMES.get(status)


_FIXED = tuple(SUMS)

# Weights are kept in steps of 1/4096 request: sums of such numbers (below 2**41) are exact
# in a float, so the stores add them in any order and get the same total, and a total
# of N requests at one sample rate divided by N is exactly their weight (see flushed_weight).
WEIGHT_STEPS = 4096


def request_weight(rate: float) -> float:
    """What one request recorded at sample ``rate`` stands for: ``1 / rate``, in weight steps."""
    steps = WEIGHT_STEPS / rate
    return round(steps) / WEIGHT_STEPS if steps < 2**52 else 1 / rate


def flushed_weight(series: Series) -> float:
    """The weight a store keeps for a flushed series: its requests times their weight, in steps.

    Equal to ``series.weight`` when each request's weight was in steps already (as the
    middleware records them); otherwise it puts the series' average weight in steps.
    """
    if not series.requests:
        return round(series.weight * WEIGHT_STEPS) / WEIGHT_STEPS
    return series.requests * (round(series.weight / series.requests * WEIGHT_STEPS) / WEIGHT_STEPS)


class Series:
    """Histogram buckets of durations (microseconds) plus the sums above and extras."""

    __slots__ = (
        "buckets",
        "duration_us",
        "extra",
        "n_plus_one",
        "queries",
        "query_us",
        "request_bytes",
        "requests",
        "response_bytes",
        "slow",
        "weight",
    )

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.requests = 0
        self.weight = 0.0
        self.duration_us = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.queries = 0
        self.query_us = 0
        self.slow = 0
        self.n_plus_one = 0
        self.extra: dict[str, float] = {}

    def merge(self, other: Series) -> Series:
        buckets = self.buckets
        for index, n in other.buckets.items():
            buckets[index] = buckets.get(index, 0) + n
        for name in _FIXED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        extra = self.extra
        for name, value in other.extra.items():
            extra[name] = extra.get(name, 0) + value
        return self

    def histogram(self) -> Histogram:
        histogram = Histogram()
        histogram.merge(Histogram(self.buckets))
        return histogram

    def sums(self) -> dict[str, float]:
        """Every sum by name, the fixed ones first."""
        return {**{name: getattr(self, name) for name in _FIXED}, **self.extra}

    def to_payload(self) -> dict[str, Any]:
        return {"h": {str(k): v for k, v in self.buckets.items()}, "s": self.sums()}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Series:
        series = cls()
        series.buckets = {int(k): int(v) for k, v in payload.get("h", {}).items()}
        for name, value in payload.get("s", {}).items():
            series.add_sum(name, value)
        return series

    def add_sum(self, name: str, value: float) -> None:
        if name in SUMS:
            current = getattr(self, name)
            setattr(self, name, current + (value if name == "weight" else int(value)))
        else:
            self.extra[name] = self.extra.get(name, 0) + value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Series) and self.to_payload() == other.to_payload()

    def __repr__(self) -> str:
        return f"<Series requests={self.requests} buckets={len(self.buckets)}>"
