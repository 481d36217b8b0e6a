"""A small benchmark harness: interleaved repeats, medians, and ratios against a baseline.

Machines are noisy, so a benchmark never reports one absolute time: each case
is sampled ``repeat`` times, baseline and candidates interleaved (so drift hits
them alike), and the report gives each median and its ratio to the baseline's
median measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Sample = Callable[[], float]  # returns one measurement in the comparison's unit


def per_op(fn: Callable[[], object], number: int, *, clock=time.perf_counter) -> Sample:
    """A sampler returning the mean seconds per call of ``fn`` over ``number`` calls."""

    def sample() -> float:
        start = clock()
        for _ in range(number):
            fn()
        return (clock() - start) / number

    return sample


@dataclass(frozen=True)
class Goal:
    """A target for the ratio candidate / baseline, e.g. ``Goal("<=", 1.0)``."""

    op: str
    ratio: float

    def met(self, ratio: float) -> bool:
        if self.op == "<=":
            return ratio <= self.ratio
        if self.op == ">=":
            return ratio >= self.ratio
        raise ValueError(f"Goal op must be '<=' or '>=', not {self.op!r}")

    def __str__(self) -> str:
        return f"ratio {self.op} {self.ratio:g}"


@dataclass
class Case:
    name: str
    sample: Sample
    goal: Goal | None = None


@dataclass
class Comparison:
    """Candidates measured against one baseline, in one unit (e.g. "s/op", "ops/s", "MB")."""

    title: str
    baseline: Case
    candidates: Sequence[Case]
    unit: str = "s/op"
    repeat: int = 7
    warmup: int = 1
    teardown: Callable[[], None] | None = None


@dataclass
class Row:
    title: str
    name: str
    unit: str
    median: float
    samples: list[float]
    ratio: float | None = None  # None for the baseline row
    goal: Goal | None = None

    @property
    def verdict(self) -> str:
        if self.goal is None or self.ratio is None:
            return ""
        return ("met: " if self.goal.met(self.ratio) else "MISSED: ") + str(self.goal)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def as_dicts(self) -> list[dict]:
        return [
            {
                "comparison": r.title,
                "case": r.name,
                "unit": r.unit,
                "median": r.median,
                "ratio": r.ratio,
                "goal": str(r.goal) if r.goal else None,
                "verdict": r.verdict or None,
                "samples": r.samples,
            }
            for r in self.rows
        ]

    def table(self) -> str:
        lines = []
        title = None
        for row in self.rows:
            if row.title != title:
                title = row.title
                lines.append(f"\n{title}")
            ratio = "baseline" if row.ratio is None else f"x{row.ratio:.3f}"
            value = format_value(row.median, row.unit)
            # The samples' range beside the median: how far one sample strays on this machine.
            low, high = (format_value(v, row.unit) for v in (min(row.samples), max(row.samples)))
            spread = f"[{low} .. {high}]"
            lines.append(f"  {row.name:<40} {value:>14}  {ratio:>9}  {spread:<32} {row.verdict}")
        return "\n".join(lines)


def format_value(value: float, unit: str) -> str:
    if unit == "s/op":
        for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if value >= scale:
                return f"{value / scale:.3g} {suffix}/op"
        return f"{value / 1e-9:.3g} ns/op"
    return f"{value:.4g} {unit}"


def run_comparison(comparison: Comparison) -> list[Row]:
    """Sample every case ``repeat`` times, interleaved, and compare medians with the baseline's."""
    cases = [comparison.baseline, *comparison.candidates]
    for _ in range(comparison.warmup):
        for case in cases:
            case.sample()
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    try:
        for _ in range(comparison.repeat):
            for case in cases:
                samples[case.name].append(case.sample())
    finally:
        if comparison.teardown is not None:
            comparison.teardown()
    base = statistics.median(samples[comparison.baseline.name])
    rows = [
        Row(
            comparison.title,
            comparison.baseline.name,
            comparison.unit,
            base,
            samples[comparison.baseline.name],
        )
    ]
    for case in comparison.candidates:
        median = statistics.median(samples[case.name])
        ratio = median / base if base else float("inf")
        rows.append(
            Row(
                comparison.title,
                case.name,
                comparison.unit,
                median,
                samples[case.name],
                ratio,
                case.goal,
            )
        )
    return rows
