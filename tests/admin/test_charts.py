"""The server-side SVG charts: readable with no data, one point, gaps; well-formed markup."""

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from django_perf.dashboard import charts
from django_perf.dashboard.charts import Line

STARTS = list(range(1_800_000_000, 1_800_000_000 + 10 * 60, 60))
SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The chart's <figure> as XML (the SVG must be well-formed to render inline)."""
    markup = markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return ET.fromstring(markup)


def chart(values, *more, **kwargs):
    lines = [Line("a", values), *(Line(f"l{i}", v) for i, v in enumerate(more))]
    return charts.line_chart(
        "c", "Title", starts=STARTS[: len(values)], step=60, lines=lines,
        empty="Nothing was recorded.", **kwargs,
    )  # fmt: skip


def test_no_data_is_an_explanatory_empty_state_not_a_blank_box():
    for markup in (chart([None] * 10), chart([]), chart([None] * 10, [None] * 10)):
        figure = parse(markup)
        assert figure.find(f".//{SVG}svg") is None
        (note,) = figure.iter("div")
        assert note.get("class") == "perf-chart-empty"
        assert "".join(note.itertext()) == "No data to chart. Nothing was recorded."
        assert figure.find("figcaption").text == "Title"


def test_one_point_is_a_labelled_dot():
    figure = parse(chart([None, None, None, 12.5, None, None]))
    svg = figure.find(f"{SVG}svg")
    assert svg.get("data-points") == "1"
    assert svg.find(f"{SVG}path") is None  # nothing to join it to
    (dot,) = svg.iter(f"{SVG}circle")
    assert "perf-lone" in dot.get("class")
    assert dot.find(f"{SVG}title").text.endswith("a: 12.5")
    labels = [t.text for t in svg.iter(f"{SVG}text") if "perf-value" in t.get("class")]
    assert labels == ["12.5"]
    # The dot sits in the middle of its step, on the scale (0 to the nice ceiling 20).
    x, y = float(dot.get("cx")), float(dot.get("cy"))
    assert charts.LEFT < x < charts.WIDTH - charts.RIGHT
    plot_h = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert y == pytest.approx(charts.TOP + plot_h * (1 - 12.5 / 20), abs=0.1)


def test_a_single_step_chart_draws_its_one_point():
    svg = parse(chart([3.0])).find(f"{SVG}svg")
    assert svg.get("data-points") == "1"
    assert len(list(svg.iter(f"{SVG}circle"))) == 1


def test_gaps_break_the_line_into_runs():
    figure = parse(chart([1, 2, 3, None, None, 5, 6, None, 7, 8]))
    svg = figure.find(f"{SVG}svg")
    paths = [p.get("d") for p in svg.iter(f"{SVG}path")]
    assert [d.count("L") + 1 for d in paths] == [3, 2, 2]  # points per run
    assert svg.get("data-points") == "7"
    xs = [float(c.get("cx")) for c in svg.iter(f"{SVG}circle")]
    assert xs == sorted(xs)
    step = (charts.WIDTH - charts.LEFT - charts.RIGHT) / 10
    assert xs[3] - xs[2] == pytest.approx(3 * step, abs=0.2)  # the gap keeps its width


def test_a_lone_point_between_gaps_is_still_drawn():
    svg = parse(chart([1, 2, None, 9, None, 4, 5])).find(f"{SVG}svg")
    assert len(list(svg.iter(f"{SVG}path"))) == 2
    lone = [c for c in svg.iter(f"{SVG}circle") if "perf-lone" in c.get("class")]
    assert len(lone) == 1


def test_lines_get_their_own_colour_and_a_legend_with_the_latest_value():
    figure = parse(chart([1, 2, 3], [4, None, 6], [None, None, None], fmt=charts.format_ms))
    svg = figure.find(f"{SVG}svg")
    assert svg.get("data-lines") == "2"  # the all-None line draws nothing
    classes = {p.get("class") for p in svg.iter(f"{SVG}path")}
    assert classes == {"perf-line perf-s0"}  # l0 has no run of two: dots only
    legend = [" ".join("".join(li.itertext()).split()) for li in figure.iter("li")]
    assert legend == ["a 3 ms", "l0 6 ms"]


def test_scale_uses_nice_ceilings_and_ratios_stay_within_one():
    svg = parse(chart([0.2, 0.97], fmt=charts.format_percent, y_max=1.0)).find(f"{SVG}svg")
    axis = [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert axis[:5] == ["0%", "25%", "50%", "75%", "100%"]
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 3, 7, 12, 240, 999)] == [
        1.0, 0.5, 5, 10, 20, 250, 1000,
    ]  # fmt: skip


def test_all_zero_values_draw_a_flat_line_on_a_unit_scale():
    svg = parse(chart([0, 0, 0])).find(f"{SVG}svg")
    (path,) = svg.iter(f"{SVG}path")
    ys = {float(v) for v in re.findall(r"[ML][\d.]+ ([\d.]+)", path.get("d"))}
    assert ys == {charts.HEIGHT - charts.BOTTOM}


def test_text_is_escaped():
    figure = parse(
        charts.line_chart(
            "c", "<b>x</b>", starts=STARTS[:2], step=60, lines=[Line("<i>", [1, 2])], empty="e"
        )
    )
    assert figure.find("figcaption").text == "<b>x</b>"
    assert [" ".join("".join(li.itertext()).split()) for li in figure.iter("li")] == ["<i> 2"]


@override_settings(TIME_ZONE="Europe/Paris")
def test_time_axis_labels_use_the_current_time_zone():
    svg = parse(chart([1, 2, 3])).find(f"{SVG}svg")
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert labels[0] == "09:00"  # 1_800_000_000 is 2027-01-15 08:00 UTC: 09:00 in Paris


def axis_labels(end: int, span: int, step: int) -> list[str]:
    """The time axis labels of a chart with a value in every step of ``span`` before ``end``."""
    starts = list(range(end - span, end, step))
    markup = charts.line_chart(
        "c", "T", starts=starts, step=step, lines=[Line("a", [1.0] * len(starts))], empty="e"
    )
    svg = parse(markup).find(f"{SVG}svg")
    return [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]


def utc(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Asia/Kathmandu"])
def test_time_ticks_fall_on_round_times_of_the_sites_clock(zone):
    end = utc(2027, 1, 15, 9)
    with override_settings(TIME_ZONE=zone):
        week = axis_labels(end, 7 * 86400, 3 * 3600)  # ticks a day apart
        day = axis_labels(end, 86400, 3600)  # 6 hours apart
        hour = axis_labels(end, 3600, 60)  # 10 minutes apart
    assert len(week) == 7
    assert all(label.endswith(" 00:00") for label in week), week
    assert len(day) >= 4
    assert all(label in ("00:00", "06:00", "12:00", "18:00") for label in day), day
    assert len(hour) >= 6
    assert all(label.endswith("0") for label in hour), hour


@override_settings(TIME_ZONE="America/New_York")
def test_time_ticks_stay_on_round_hours_across_daylight_saving_changes():
    fall_back, spring_forward = utc(2026, 11, 1, 6), utc(2026, 3, 8, 7)  # 01:00 EST, 03:00 EDT
    for change in (fall_back, spring_forward):
        week = axis_labels(change + 3 * 86400, 7 * 86400, 3 * 3600)
        assert week == [f"{day} 00:00" for day in ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")]
        assert axis_labels(change + 12 * 3600, 86400, 3600) == ["18:00", "00:00", "06:00", "12:00"]
    # Hourly ticks draw a repeated hour once and skip a missing one.
    assert axis_labels(fall_back + 3 * 3600, 6 * 3600, 300) == [
        "23:00", "00:00", "01:00", "02:00", "03:00", "04:00",
    ]  # fmt: skip
    assert axis_labels(spring_forward + 3 * 3600, 6 * 3600, 300) == [
        "23:00", "00:00", "01:00", "03:00", "04:00", "05:00", "06:00",
    ]  # fmt: skip


def test_bar_chart_with_values_with_zeros_and_with_nothing():
    bars = [("0", 5), ("1", 0), ("2-3", 12)]
    svg = parse(charts.bar_chart("b", "Bars", bars=bars, empty="none")).find(f"{SVG}svg")
    assert svg.get("data-bars") == "2"
    rects = list(svg.iter(f"{SVG}rect"))
    assert [r.find(f"{SVG}title").text for r in rects] == ["0: 5", "2-3: 12"]
    assert float(rects[1].get("height")) > float(rects[0].get("height"))
    labels = [t.text for t in svg.iter(f"{SVG}text") if "perf-bar-label" in t.get("class")]
    assert labels == ["0", "1", "2-3"]
    empty = parse(charts.bar_chart("b", "Bars", bars=[("0", 0)], empty="No requests."))
    assert "No requests." in "".join(empty.itertext())


def test_formats():
    assert [charts.format_ms(v) for v in (0.25, 12, 1500)] == ["0.25 ms", "12 ms", "1.5 s"]
    assert [charts.format_percent(v) for v in (0, 0.0041, 0.5, 0.123)] == [
        "0%", "0.41%", "50%", "12.3%",
    ]  # fmt: skip
    assert [charts.format_bytes(v) for v in (12, 2048, 64.6 * 2**20)] == [
        "12 B", "2 KB", "64.6 MB",
    ]  # fmt: skip
    assert [charts.format_number(v) for v in (0, 0.0675, 42, 12_345, 3_400_000)] == [
        "0", "0.0675", "42", "12.3k", "3.4M",
    ]  # fmt: skip
    # One request in a few hours of a 7-day chart: a plain decimal, not 7.5e-05.
    assert [charts.format_number(v) for v in (0.00075, 7.5e-05, 1.65e-06, -2e-05)] == [
        "0.00075", "0.000075", "0.0000017", "-0.00002",
    ]  # fmt: skip
    assert charts.format_rate(7.5e-05) == "0.000075/s"
