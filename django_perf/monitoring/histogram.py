"""Log-linear histograms with fixed buckets: cheap to fill, exact to merge, percentiles within 2%.

Every process uses the same bucket boundaries, so histograms from different
workers (or minutes) merge by adding counts bucket by bucket, with no loss.
Values are non-negative integers (the middleware records microseconds):

* values below 64 get a bucket each (exact);
* above that, each power of two ``[2**e, 2**(e+1))`` is split into 32 equal
  buckets, so a bucket is at most 1/32 as wide as its lower bound.

A percentile is read as the midpoint of the bucket holding the nearest-rank
value, which is therefore within ``1/64`` (about 1.6%) of the exact value.
Storage is sparse: only buckets that were hit take space, and no value can
create more than :data:`MAX_INDEX` + 1 buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "MAX_INDEX",
    "MAX_VALUE",
    "RELATIVE_ERROR",
    "Histogram",
    "bucket_bounds",
    "bucket_index",
    "bucket_value",
]

SUB_BITS = 5
SUB = 1 << SUB_BITS  # buckets per power of two
EXACT_BELOW = 2 * SUB  # values under this have a bucket each
MAX_VALUE = (1 << 40) - 1  # about 12.7 days in microseconds; larger values are clamped
RELATIVE_ERROR = 1 / (2 * SUB)  # worst case of bucket_value() against any value in the bucket


def bucket_index(value: int) -> int:
    """The bucket that ``value`` falls in (values are clamped to ``[0, MAX_VALUE]``)."""
    if value < EXACT_BELOW:
        return value if value > 0 else 0
    if value > MAX_VALUE:
        value = MAX_VALUE
    shift = value.bit_length() - 1 - SUB_BITS
    return ((shift + 1) << SUB_BITS) + (value >> shift) - SUB


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest integer in bucket ``index``."""
    if index < EXACT_BELOW:
        return index, index
    shift = (index >> SUB_BITS) - 1
    lower = ((index & (SUB - 1)) + SUB) << shift
    return lower, lower + (1 << shift) - 1


def bucket_value(index: int) -> float:
    """The value that stands for bucket ``index``: its midpoint."""
    lower, upper = bucket_bounds(index)
    return (lower + upper) / 2


MAX_INDEX = bucket_index(MAX_VALUE)


class Histogram:
    """Counts per bucket and their total; merge with ``+=`` or :meth:`merge`.

    The sum of the values is not kept here: callers that need an exact mean
    keep the sum beside the histogram (bucket midpoints would only approximate it).
    """

    __slots__ = ("buckets", "count")

    def __init__(self, buckets: Mapping[int, int] | None = None) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        if buckets:
            for index, n in buckets.items():
                self._add_bucket(int(index), int(n))

    def _add_bucket(self, index: int, n: int) -> None:
        if not 0 <= index <= MAX_INDEX or n < 0:
            raise ValueError(f"bucket {index} with count {n} is not a valid histogram bucket")
        if n:
            self.buckets[index] = self.buckets.get(index, 0) + n
            self.count += n

    def add(self, value: int, n: int = 1) -> None:
        """Record ``value`` (``n`` times)."""
        index = bucket_index(value)
        self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += n

    def extend(self, values: Iterable[int]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: Histogram | Mapping[int, int]) -> Histogram:
        """Add ``other``'s counts (a histogram, or a bucket -> count mapping) into this one."""
        if isinstance(other, Histogram):
            buckets = self.buckets
            for index, n in other.buckets.items():
                buckets[index] = buckets.get(index, 0) + n
            self.count += other.count
        else:
            for index, n in other.items():
                self._add_bucket(int(index), int(n))
        return self

    __iadd__ = merge

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.buckets == other.buckets

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} buckets={len(self.buckets)}>"

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1) by nearest rank, or None when empty."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles in one pass over the buckets, in the order given."""
        wanted = list(qs)
        for q in wanted:
            if not 0 < q <= 1:
                raise ValueError(f"a quantile must be in (0, 1], not {q!r}")
        if not self.count:
            return [None] * len(wanted)
        ranks = sorted((max(1, math.ceil(q * self.count - 1e-9)), i) for i, q in enumerate(wanted))
        results: list[float | None] = [None] * len(wanted)
        seen = 0
        pending = iter(ranks)
        rank, slot = next(pending)
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            while seen >= rank:
                results[slot] = bucket_value(index)
                try:
                    rank, slot = next(pending)
                except StopIteration:
                    return results
        return results

    def cumulative(self, bounds: Iterable[float]) -> Iterator[tuple[float, int]]:
        """``(bound, count of values at or below it)`` for each bound, as Prometheus buckets.

        A bucket counts toward a bound when its midpoint is at or below it, so a
        count is exact whenever the bound falls on a bucket edge.
        """
        items = sorted(self.buckets.items())
        seen = 0
        position = 0
        for bound in sorted(bounds):
            while position < len(items) and bucket_value(items[position][0]) <= bound:
                seen += items[position][1]
                position += 1
            yield bound, seen

    def to_dict(self) -> dict[str, int]:
        """JSON-friendly form: ``{"<bucket>": count}``."""
        return {str(index): n for index, n in self.buckets.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, int] | Mapping[int, int]) -> Histogram:
        return cls(data)  # type: ignore[arg-type]
