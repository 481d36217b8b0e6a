"""The benchmark harness: medians, ratios against the baseline, and goal verdicts."""

import itertools

import pytest

from tests.benchmarks.harness import Case, Comparison, Goal, Report, per_op, run_comparison


def samples_from(values):
    it = iter(values)
    return lambda: next(it)


def test_ratios_are_medians_over_the_baseline_median():
    comparison = Comparison(
        "demo",
        baseline=Case("base", samples_from([9.0, 2.0, 2.0, 3.0, 100.0])),
        candidates=[
            Case("fast", samples_from([0.0, 1.0, 1.0, 50.0, 0.5]), Goal("<=", 1.0)),
            Case("slow", samples_from([0.0, 4.0, 6.0, 6.0, 6.0]), Goal("<=", 1.5)),
        ],
        repeat=4,
        warmup=1,
    )
    base, fast, slow = run_comparison(comparison)
    assert base.median == 2.5  # warm-up sample 9.0 discarded; median of 2, 2, 3, 100
    assert base.ratio is None
    assert fast.median == 1.0
    assert fast.ratio == pytest.approx(0.4)
    assert fast.verdict == "met: ratio <= 1"
    assert slow.ratio == pytest.approx(2.4)
    assert slow.verdict == "MISSED: ratio <= 1.5"


def test_higher_is_better_goals():
    assert Goal(">=", 5).met(5.2)
    assert not Goal(">=", 5).met(4.9)
    with pytest.raises(ValueError, match="Goal op must be"):
        Goal("<", 1).met(1)


def test_per_op_divides_by_the_number_of_calls():
    ticks = itertools.count(0, 10)  # each clock read advances 10 "seconds"
    calls = []
    sample = per_op(lambda: calls.append(1), number=5, clock=lambda: next(ticks))
    assert sample() == 2.0  # (10 - 0) / 5
    assert len(calls) == 5


def test_interleaving_and_teardown():
    order, torn_down = [], []
    comparison = Comparison(
        "order",
        baseline=Case("a", lambda: order.append("a") or 1.0),
        candidates=[Case("b", lambda: order.append("b") or 1.0)],
        repeat=3,
        warmup=0,
        teardown=lambda: torn_down.append(True),
    )
    run_comparison(comparison)
    assert order == ["a", "b"] * 3
    assert torn_down == [True]


def test_report_table_and_json_shapes():
    base_samples = iter([9e-6, 2e-6, 3e-6, 2.5e-6])  # the first is the warm-up, not reported
    rows = run_comparison(
        Comparison(
            "t", Case("base", lambda: next(base_samples)), [Case("new", lambda: 1.25e-6)], repeat=3
        )
    )
    report = Report(rows)
    table = report.table()
    assert "2.5 us/op" in table
    assert "[2 us/op .. 3 us/op]" in table
    assert "baseline" in table
    assert "x0.500" in table
    assert "[1.25 us/op .. 1.25 us/op]" in table
    data = report.as_dicts()
    assert [d["case"] for d in data] == ["base", "new"]
    assert data[1]["ratio"] == 0.5
