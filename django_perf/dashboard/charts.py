"""Charts as inline SVG, drawn on the server: no JavaScript library, no network at page load.

:func:`line_chart` draws time series: ``None`` values are gaps (the line
breaks), a point with no neighbour is drawn as a dot with its value written
next to it, and a chart with no value at all is an explanatory empty state
instead of a blank box. :func:`bar_chart` draws distributions (histograms).
Colours come from CSS classes (``perf-s0`` ...) in ``django_perf/dashboard.css``,
which follow the admin's light and dark themes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

__all__ = [
    "Line",
    "bar_chart",
    "format_bytes",
    "format_ms",
    "format_number",
    "format_percent",
    "format_rate",
    "line_chart",
    "nice_ceiling",
]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 12, 26
TICK_INTERVALS = (60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
MAX_X_TICKS = 7
Y_TICKS = 4


@dataclass(frozen=True)
class Line:
    """One series of a line chart: a name for the legend and one value (or None) per step."""

    name: str
    values: Sequence[float | None]


# --- number formats ------------------------------------------------------------------


def format_number(value: float) -> str:
    """Short and readable: 0, 0.25, 3.5, 42, 1.2k, 3.4M; 0.000075, never 7.5e-05."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    if size < 1e-3:  # a week's rare requests per second: two significant digits
        decimals = 1 - math.floor(math.log10(size))
        return f"{value:.{decimals}f}".rstrip("0")
    return f"{value:.3g}"


def format_rate(value: float) -> str:
    return f"{format_number(value)}/s"


def format_ms(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.3g} s"
    return f"{format_number(value)} ms"


def format_percent(value: float) -> str:
    percent = value * 100
    if percent == int(percent):
        return f"{percent:.0f}%"
    return f"{percent:.2g}%" if percent < 10 else f"{percent:.3g}%"


def format_bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value`` (1 for nothing above 0)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        candidate = factor * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    raise AssertionError("unreachable")


def _time_label(t: float, span: float) -> str:
    moment = _local(t)
    if span > 2 * 86400:
        return moment.strftime("%a %H:%M")
    return moment.strftime("%H:%M")


def _time_ticks(t0: float, t1: float, interval: int) -> list[float]:
    """The times in ``[t0, t1]`` that are round multiples of ``interval`` on the local clock.

    Rounded in the current time zone, not in UTC, so that a 6-hour axis ticks at
    00:00, 06:00, ... where the site is (UTC multiples fall on 19:00 in New York).
    """
    if interval < 3600:
        return _even_ticks(t0, t1, interval)
    return _wall_clock_ticks(t0, t1, interval)


def _even_ticks(t0: float, t1: float, interval: int) -> list[float]:
    # Sub-hour steps stay evenly spaced across a DST change (it shifts by whole
    # intervals), so only the first tick needs the local offset.
    offset = _local(t0).utcoffset().total_seconds()  # type: ignore[union-attr]
    first = t0 + (-(t0 + offset)) % interval
    count = max(math.floor((t1 - first) / interval) + 1, 0)
    return [first + n * interval for n in range(count)]


def _wall_clock_ticks(t0: float, t1: float, interval: int) -> list[float]:
    # Steps of hours walk the local clock from midnight: across a DST change the
    # ticks stay on round hours (a missing hour is skipped, a repeated one drawn once).
    start = _local(t0)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    since_midnight = (start.replace(tzinfo=None) - midnight).total_seconds()
    wall = midnight + timedelta(seconds=since_midnight // interval * interval)
    ticks = []
    while True:
        tick = _timestamp(wall, start.tzinfo)
        if tick is not None and tick > t1:
            return ticks
        if tick is not None and tick >= t0:
            ticks.append(tick)
        wall += timedelta(seconds=interval)


def _timestamp(wall: datetime, zone: tzinfo | None) -> float | None:
    """The moment the local clock reads ``wall``; None for a time a DST change skips."""
    moment = wall.replace(tzinfo=zone)
    back = datetime.fromtimestamp(moment.timestamp(), zone).replace(tzinfo=None)
    return moment.timestamp() if back == wall else None


def _local(t: float) -> datetime:
    return timezone.localtime(datetime.fromtimestamp(t, UTC))


def _svg_number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


# --- charts --------------------------------------------------------------------------


def _figure(chart_id: str, title: str, body: str, legend: str = "") -> SafeString:
    return format_html(
        '<figure class="perf-chart" id="{}"><figcaption>{}</figcaption>{}{}</figure>',
        chart_id,
        title,
        mark_safe(body),  # built from format_html parts
        mark_safe(legend),
    )


def empty_state(chart_id: str, title: str, message: str) -> SafeString:
    """What a chart shows with nothing to draw: a sentence saying why, not a blank box."""
    body = format_html(
        '<div class="perf-chart-empty" role="note"><p><strong>No data to chart.</strong> {}</p>'
        "</div>",
        message,
    )
    return _figure(chart_id, title, body)


def line_chart(
    chart_id: str,
    title: str,
    *,
    starts: Sequence[int],
    step: int,
    lines: Sequence[Line],
    fmt: Callable[[float], str] = format_number,
    empty: str,
    y_max: float | None = None,
) -> SafeString:
    """A time-series chart of ``lines`` over the steps that begin at ``starts``.

    ``y_max`` fixes the top of the scale (1.0 for ratios); otherwise it is the
    nice ceiling of the largest value. ``empty`` explains an empty chart.
    """
    present = [(line, [v for v in line.values if v is not None]) for line in lines]
    if not starts or not any(values for _, values in present):
        return empty_state(chart_id, title, empty)
    top = y_max or nice_ceiling(max(max(values) for _, values in present if values))
    t0, t1 = starts[0], starts[-1] + step
    span = t1 - t0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - min(max(value / top, 0.0), 1.0) * plot_h

    parts = []
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        parts.append(
            format_html(
                '<line class="perf-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="perf-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _svg_number(y(value)),
                _svg_number(y(value)),
                LEFT - 6,
                _svg_number(y(value) + 4),
                fmt(value),
            )
        )
    interval = next((i for i in TICK_INTERVALS if span / i <= MAX_X_TICKS), TICK_INTERVALS[-1])
    for tick in _time_ticks(t0, t1, interval):
        parts.append(
            format_html(
                '<line class="perf-tick" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>'
                '<text class="perf-axis" x="{0}" y="{3}" text-anchor="middle">{4}</text>',
                _svg_number(x(tick)),
                TOP + plot_h,
                TOP + plot_h + 4,
                HEIGHT - 8,
                _time_label(tick, span),
            )
        )
    points = 0
    legend = []
    for n, (line, values) in enumerate(present):
        css = f"perf-s{n % 6}"
        if values:
            legend.append(
                format_html(
                    '<li><span class="perf-swatch {}"></span>{} <span class="perf-latest">{}</span>'
                    "</li>",
                    css,
                    line.name,
                    fmt(values[-1]),
                )
            )
        run: list[tuple[float, float, int]] = []
        for i, value in enumerate([*line.values, None]):
            if value is not None and i < len(starts):
                run.append((x(starts[i] + step / 2), y(value), i))
                continue
            if len(run) > 1:
                d = " ".join(
                    f"{'M' if k == 0 else 'L'}{_svg_number(px)} {_svg_number(py)}"
                    for k, (px, py, _) in enumerate(run)
                )
                parts.append(format_html('<path class="perf-line {}" d="{}"/>', css, d))
            elif len(run) == 1:
                px, py, j = run[0]
                parts.append(
                    format_html(
                        '<text class="perf-value {}" x="{}" y="{}" text-anchor="{}">{}</text>',
                        css,
                        _svg_number(px + (6 if px < WIDTH / 2 else -6)),
                        _svg_number(max(py - 6, TOP + 10)),
                        "start" if px < WIDTH / 2 else "end",
                        fmt(line.values[j]),  # type: ignore[arg-type]
                    )
                )
            for px, py, j in run:
                points += 1
                parts.append(
                    format_html(
                        '<circle class="perf-dot {}{}" cx="{}" cy="{}" r="{}"><title>{} {}: {}'
                        "</title></circle>",
                        css,
                        " perf-lone" if len(run) == 1 else "",
                        _svg_number(px),
                        _svg_number(py),
                        4 if len(run) == 1 else 3,
                        _time_label(starts[j], span),
                        line.name,
                        fmt(line.values[j]),  # type: ignore[arg-type]
                    )
                )
            run = []
    svg = format_html(
        '<svg class="perf-svg" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'data-points="{}" data-lines="{}">{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        points,
        sum(1 for _, values in present if values),
        mark_safe("".join(parts)),  # every part is format_html output
    )
    legend_html = '<ul class="perf-legend">' + "".join(legend) + "</ul>"
    return _figure(chart_id, title, svg, legend_html)


def bar_chart(
    chart_id: str,
    title: str,
    *,
    bars: Sequence[tuple[str, float]],
    fmt: Callable[[float], str] = format_number,
    empty: str,
    axis_label: str = "",
) -> SafeString:
    """Vertical bars, one per ``(label, value)``, with each non-zero value written above its bar."""
    if not bars or not any(value for _, value in bars):
        return empty_state(chart_id, title, empty)
    top = nice_ceiling(max(value for _, value in bars))
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / len(bars)
    # Labels wider than their bar's slot are slanted, below a shorter plot.
    slant = max(len(label) for label, _ in bars) * 6.5 > slot - 2
    plot_h = HEIGHT - TOP - BOTTOM - (30 if slant else 6)
    width = max(slot * 0.7, 1.0)
    parts = []
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        py = TOP + plot_h - value / top * plot_h
        parts.append(
            format_html(
                '<line class="perf-grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="perf-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _svg_number(py),
                _svg_number(py),
                LEFT - 6,
                _svg_number(py + 4),
                fmt(value),
            )
        )
    drawn = 0
    for i, (label, value) in enumerate(bars):
        bx = LEFT + i * slot + (slot - width) / 2
        height = value / top * plot_h
        cx = bx + width / 2
        if value:
            drawn += 1
            parts.append(
                format_html(
                    '<rect class="perf-bar" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {}</title></rect>"
                    '<text class="perf-value" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _svg_number(bx),
                    _svg_number(TOP + plot_h - height),
                    _svg_number(width),
                    _svg_number(max(height, 0.5)),
                    label,
                    fmt(value),
                    _svg_number(cx),
                    _svg_number(TOP + plot_h - height - 3),
                    fmt(value),
                )
            )
        if slant:
            ly = TOP + plot_h + 12
            parts.append(
                format_html(
                    '<text class="perf-axis perf-bar-label" x="{0}" y="{1}" text-anchor="end" '
                    'transform="rotate(-35 {0} {1})">{2}</text>',
                    _svg_number(cx + 3),
                    _svg_number(ly),
                    label,
                )
            )
        else:
            parts.append(
                format_html(
                    '<text class="perf-axis perf-bar-label" x="{}" y="{}" text-anchor="middle">'
                    "{}</text>",
                    _svg_number(cx),
                    _svg_number(TOP + plot_h + 14),
                    label,
                )
            )
    caption = (
        format_html('<text class="perf-axis" x="{}" y="{}">{}</text>', LEFT, HEIGHT - 1, axis_label)
        if axis_label
        else ""
    )
    svg = format_html(
        '<svg class="perf-svg" viewBox="0 0 {} {}" role="img" aria-label="{}" data-bars="{}">'
        "{}{}</svg>",
        WIDTH,
        HEIGHT,
        title,
        drawn,
        mark_safe("".join(parts)),  # every part is format_html output
        caption,
    )
    return _figure(chart_id, title, svg)
