"""Histograms: fixed buckets, lossless merging, percentiles within 2% of the exact value."""

import math
import random

import pytest

from django_perf.monitoring.histogram import (
    MAX_INDEX,
    MAX_VALUE,
    RELATIVE_ERROR,
    Histogram,
    bucket_bounds,
    bucket_index,
    bucket_value,
)

QUANTILES = (0.5, 0.9, 0.95, 0.99)
RNG = random.Random(1)


def exact_quantile(values, q):
    """Nearest-rank percentile: the smallest value with at least q*n values at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def test_small_values_have_a_bucket_each():
    assert [bucket_index(v) for v in range(64)] == list(range(64))
    assert all(bucket_bounds(i) == (i, i) for i in range(64))


def test_buckets_tile_the_integers_without_gaps_or_overlaps():
    previous_upper = -1
    for index in range(MAX_INDEX + 1):
        lower, upper = bucket_bounds(index)
        assert lower == previous_upper + 1
        assert bucket_index(lower) == index
        assert bucket_index(upper) == index
        assert (upper - lower) / 2 <= RELATIVE_ERROR * max(lower, 1)  # midpoint error bound
        previous_upper = upper
    assert previous_upper == MAX_VALUE


def test_out_of_range_values_are_clamped_not_errors():
    assert bucket_index(-5) == 0
    assert bucket_index(MAX_VALUE * 10) == MAX_INDEX


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            [random.Random(1).lognormvariate(8, 1.2) for _ in range(50_000)], id="lognormal"
        ),
        pytest.param(
            [random.Random(2).expovariate(1 / 3000) for _ in range(20_000)], id="exponential"
        ),
        pytest.param(
            [random.Random(3).uniform(1, 5_000_000) for _ in range(10_000)], id="uniform-wide"
        ),
        pytest.param([1000] * 99 + [250_000], id="one-outlier"),
        pytest.param(list(range(1, 101)), id="1-to-100"),
    ],
)
def test_percentiles_are_within_two_percent_of_the_exact_values(values):
    values = [int(v) for v in values]
    histogram = Histogram()
    histogram.extend(values)
    estimates = histogram.quantiles(QUANTILES)
    for q, estimate in zip(QUANTILES, estimates, strict=True):
        exact = exact_quantile(values, q)
        assert abs(estimate - exact) <= 0.02 * exact, (q, estimate, exact)


def test_known_data_gives_known_percentiles():
    histogram = Histogram()
    histogram.extend(range(1, 61))  # values under 64 have a bucket each: exact
    assert histogram.quantiles(QUANTILES) == [30, 54, 57, 60]
    histogram = Histogram()
    histogram.extend([10_000] * 90 + [200_000] * 10)
    p50, p90, p95, p99 = histogram.quantiles(QUANTILES)
    assert abs(p50 - 10_000) / 10_000 <= RELATIVE_ERROR
    assert abs(p90 - 10_000) / 10_000 <= RELATIVE_ERROR
    assert abs(p95 - 200_000) / 200_000 <= RELATIVE_ERROR
    assert abs(p99 - 200_000) / 200_000 <= RELATIVE_ERROR


def test_merging_parts_equals_recording_everything_in_one():
    rng = random.Random(4)
    values = [int(rng.lognormvariate(9, 1)) for _ in range(30_000)]
    whole = Histogram()
    whole.extend(values)
    parts = [Histogram() for _ in range(7)]
    for i, value in enumerate(values):
        parts[i % 7].add(value)
    merged = Histogram()
    for part in parts:
        merged += part
    assert merged == whole
    assert merged.count == len(values)
    assert merged.quantiles(QUANTILES) == whole.quantiles(QUANTILES)


def test_round_trip_through_json_form_and_merge_from_mapping():
    histogram = Histogram()
    histogram.extend([5, 5, 700, 123_456])
    data = histogram.to_dict()
    assert all(isinstance(k, str) for k in data)
    assert Histogram.from_dict(data) == histogram
    other = Histogram().merge(data).merge(data)
    assert other.count == 8
    assert other.buckets[bucket_index(700)] == 2


def test_bad_buckets_are_refused_when_loading():
    with pytest.raises(ValueError, match="not a valid histogram bucket"):
        Histogram({MAX_INDEX + 1: 1})
    with pytest.raises(ValueError, match="not a valid histogram bucket"):
        Histogram({3: -1})


def test_empty_histogram_and_bad_quantiles():
    assert Histogram().quantiles([0.5, 0.99]) == [None, None]
    with pytest.raises(ValueError, match=r"quantile must be in \(0, 1\]"):
        Histogram().quantile(0)
    with pytest.raises(ValueError, match=r"quantile must be in \(0, 1\]"):
        Histogram().quantile(1.5)


def test_cumulative_counts_for_prometheus_buckets():
    histogram = Histogram()
    histogram.extend([10, 20, 20, 63, 1_000, 1_000_000])
    assert list(histogram.cumulative([10, 20, 64, 1_100, float("inf")])) == [
        (10, 1), (20, 3), (64, 4), (1_100, 5), (float("inf"), 6),
    ]  # fmt: skip


def test_bucket_value_is_inside_its_bucket():
    for index in (0, 63, 64, 500, MAX_INDEX):
        lower, upper = bucket_bounds(index)
        assert lower <= bucket_value(index) <= upper
