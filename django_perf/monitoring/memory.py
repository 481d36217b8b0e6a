"""Memory tools: tracemalloc snapshots and diffs, ``@monitor_memory``, sampled request profiling,
and memory-profiler's line-by-line report. All of it is off until you call it.

Overhead (measured on the development machine, see docs/monitoring.rst): an
allocation-heavy function ran about 5-6x slower while tracemalloc traced it
(one frame; deeper tracebacks cost more), so ``monitor_memory`` and request
profiling trace only while a monitored call runs, and stop tracing afterwards
unless something else had started it; nothing is paid when they are unused.
memory-profiler's line report reads the process's memory at every line: the
same function ran about 200x slower. It is for one-off investigations.

>>> from django_perf.monitoring.memory import monitor_memory, take_snapshot, diff
>>> @monitor_memory(limit=5)
... def build_report(): ...
>>> before = take_snapshot(); data = [bytes(1000) for _ in range(1000)]
>>> for line in format_diff(diff(before, take_snapshot(), limit=3)): print(line)
"""

from __future__ import annotations

import functools
import inspect
import io
import logging
import os
import threading
import tracemalloc
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

__all__ = [
    "diff",
    "format_diff",
    "line_profile",
    "monitor_memory",
    "take_snapshot",
    "tracing",
]

logger = logging.getLogger("django_perf.monitoring.memory")

F = TypeVar("F", bound=Callable[..., Any])
Report = Callable[[tracemalloc.Snapshot], None]  # logs a monitored call's differences
KEY_TYPES = ("filename", "lineno", "traceback")  # tracemalloc's ways to group statistics
MAX_FRAMES = 65535  # the deepest traceback tracemalloc.start() accepts

_lock = threading.Lock()
_scopes: dict[object, int] = {}  # open tracing() blocks: a token each -> the thread that opened it
_started_by_us = False


@contextmanager
def tracing(frames: int = 1) -> Iterator[None]:
    """Trace allocations inside the block; stop afterwards if nobody else was tracing.

    Nested and concurrent blocks share one tracing session (tracemalloc is
    process-wide): it stops when the last block ends.
    """
    global _started_by_us
    token = object()
    with _lock:
        if not _scopes and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
            _started_by_us = True
        _scopes[token] = threading.get_ident()
    try:
        yield
    finally:
        with _lock:
            _scopes.pop(token, None)  # already gone if a fork dropped it (see below)
            _stop_if_unused()


def _stop_if_unused() -> None:
    """Stop tracemalloc if we started it and no tracing() block is open (call under _lock)."""
    global _started_by_us
    if not _scopes and _started_by_us:
        tracemalloc.stop()
        _started_by_us = False


def _after_fork_in_child() -> None:
    """Forget the blocks of threads a fork did not copy, so tracing does not outlive them.

    Only the forking thread lives on in the child: its own open blocks are kept.
    """
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    forking_thread = threading.get_ident()
    for token, thread in list(_scopes.items()):
        if thread != forking_thread:
            del _scopes[token]
    _stop_if_unused()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def take_snapshot() -> tracemalloc.Snapshot:
    """A tracemalloc snapshot, with tracemalloc's own allocations filtered out.

    Raises RuntimeError if tracemalloc is not tracing (use :func:`tracing`, or
    ``python -X tracemalloc``, or ``tracemalloc.start()``).
    """
    if not tracemalloc.is_tracing():
        raise RuntimeError(
            "tracemalloc is not tracing: wrap the code in django_perf.monitoring.memory.tracing(), "
            "or start Python with -X tracemalloc"
        )
    return tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
        )
    )


def diff(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    *,
    limit: int = 10,
    key_type: str = "lineno",
) -> list[tracemalloc.StatisticDiff]:
    """The ``limit`` biggest changes from ``before`` to ``after``, grouped by ``key_type``."""
    stats = after.compare_to(before, key_type)
    return [s for s in stats if s.size_diff or s.count_diff][:limit]


def _size(n: float) -> str:
    sign = "+" if n >= 0 else "-"
    n = abs(n)
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{sign}{n:.1f} {unit}" if unit != "B" else f"{sign}{n:.0f} B"
        n /= 1024
    return f"{sign}{n:.1f} GiB"


def format_diff(stats: list[tracemalloc.StatisticDiff]) -> list[str]:
    """One line per difference: ``+12.3 KiB (+120 blocks) path/to/file.py:42``.

    The place named is the allocating line; for ``key_type="traceback"`` its
    callers follow, most recent first: ``file.py:42 <- caller.py:7``.
    """
    return [
        f"{_size(stat.size_diff)} ({stat.count_diff:+d} blocks) {_where(stat.traceback)}"
        for stat in stats
    ]


def _where(traceback: tracemalloc.Traceback) -> str:
    """``file:line`` of each frame, most recent (the allocating line) first.

    A Traceback is ordered oldest frame first (since Python 3.7), hence reversed.
    """
    return " <- ".join(f"{frame.filename}:{frame.lineno}" for frame in reversed(traceback))


def _report(label: str, before: tracemalloc.Snapshot, limit: int, key_type: str) -> str:
    after = take_snapshot()
    stats = diff(before, after, limit=limit, key_type=key_type)
    net = sum(s.size_diff for s in after.compare_to(before, "filename"))
    lines = format_diff(stats)
    return f"Memory of {label}: {_size(net)} net; top {len(lines)} differences:" + "".join(
        f"\n  {line}" for line in lines
    )


def _log_report(
    target: logging.Logger,
    level: int,
    label: str,
    before: tracemalloc.Snapshot,
    limit: int,
    key_type: str,
) -> None:
    """Log the report of a monitored call; a failing report is logged, never raised.

    It runs after the call: raising would replace the call's result or its own exception.
    """
    try:
        target.log(level, _report(label, before, limit, key_type))
    except Exception:
        logger.warning("Could not report the memory of %s", label, exc_info=True)


def _check_options(key_type: str, frames: int) -> None:
    """Refuse bad options when decorating, not on every call after the function ran."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"monitor_memory key_type must be one of {KEY_TYPES}, not {key_type!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ValueError(
            f"monitor_memory frames must be an int from 1 to {MAX_FRAMES}, not {frames!r}"
        )


def monitor_memory(
    func: F | None = None,
    *,
    limit: int = 10,
    key_type: str = "lineno",
    frames: int = 1,
    level: int = logging.INFO,
    log: logging.Logger | None = None,
) -> Any:
    """Decorator: log the top allocation differences of each call (sync, async, generators).

    ``@monitor_memory`` or ``@monitor_memory(limit=5, key_type="filename")``.
    Logged to ``django_perf.monitoring.memory`` (or ``log``) at ``level``. A
    generator is measured from its first item until it is exhausted or closed.
    A bad ``key_type`` or ``frames`` raises ValueError here, when decorating; a
    report that fails is logged and leaves the call's result or exception as it was.
    """
    _check_options(key_type, frames)

    def decorate(fn: F) -> F:
        label = f"{fn.__module__}.{fn.__qualname__}"
        target = log or logger

        def report(before: tracemalloc.Snapshot) -> None:
            _log_report(target, level, label, before, limit, key_type)

        if inspect.isasyncgenfunction(fn):
            return _monitor_async_generator(fn, frames, report)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return _monitor_generator(fn, frames, report)  # type: ignore[return-value]
        if iscoroutinefunction(fn):
            return _monitor_coroutine(fn, frames, report)  # type: ignore[return-value]
        return _monitor_function(fn, frames, report)  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


@contextmanager
def _monitored(frames: int, report: Report) -> Iterator[None]:
    """Trace the block and report its differences when it ends, however it ends."""
    with tracing(frames):
        before = take_snapshot()
        try:
            yield
        finally:
            report(before)


def _monitor_function(fn: Callable[..., Any], frames: int, report: Report) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _monitored(frames, report):
            return fn(*args, **kwargs)

    return wrapper


def _monitor_coroutine(fn: Callable[..., Any], frames: int, report: Report) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        with _monitored(frames, report):
            return await fn(*args, **kwargs)

    return markcoroutinefunction(async_wrapper)


def _monitor_generator(fn: Callable[..., Any], frames: int, report: Report) -> Callable[..., Any]:
    """The whole iteration is traced: from the first ``next()`` to exhaustion or ``close()``."""

    @functools.wraps(fn)
    def generator_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        with _monitored(frames, report):
            return (yield from fn(*args, **kwargs))

    return generator_wrapper


def _monitor_async_generator(
    fn: Callable[..., Any], frames: int, report: Report
) -> Callable[..., Any]:
    """As :func:`_monitor_generator`; values sent and exceptions thrown in are passed on."""

    @functools.wraps(fn)
    async def async_generator_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        with _monitored(frames, report):
            agen = fn(*args, **kwargs)
            async with aclosing(agen):
                sent, thrown = None, None
                while True:
                    try:
                        item = await (
                            agen.athrow(thrown) if thrown is not None else agen.asend(sent)
                        )
                    except StopAsyncIteration:
                        return
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise  # closed: aclosing() closes the monitored generator too
                    except BaseException as error:  # athrow() into the wrapper
                        thrown = error

    return async_generator_wrapper


def _request_label(request: Any) -> str:
    match = getattr(request, "resolver_match", None)
    route = (
        ("/" + match.route if match.route is not None else match.view_name)
        if match
        else "<unmatched>"
    )
    return f"request {request.method} {route}"


def profile_request(request: Any, call: Callable[[Any], Any], limit: int = 10) -> Any:
    """Run ``call(request)`` under tracemalloc and log its top allocation differences."""
    with tracing():
        before = take_snapshot()
        try:
            return call(request)
        finally:
            _log_report(logger, logging.INFO, _request_label(request), before, limit, "lineno")


async def aprofile_request(request: Any, call: Callable[[Any], Any], limit: int = 10) -> Any:
    """The async twin of :func:`profile_request`."""
    with tracing():
        before = take_snapshot()
        try:
            return await call(request)
        finally:
            _log_report(logger, logging.INFO, _request_label(request), before, limit, "lineno")


def line_profile(target: str | Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Call ``target(*args, **kwargs)`` under memory-profiler; return (result, line report).

    ``target`` is a function or its dotted path (``"myapp.reports.build"``).
    The report is memory-profiler's: memory in use and the increment at each
    line of the function. Needs the ``memory`` extra (``pip install
    "django-perf[memory]"``).
    """
    try:
        from memory_profiler import LineProfiler, show_results
    except ImportError as error:
        raise ImportError(
            'line_profile needs memory-profiler: pip install "django-perf[memory]"'
        ) from error
    if isinstance(target, str):
        from django.utils.module_loading import import_string

        try:
            target = import_string(target)
        except ImportError as error:
            raise ImportError(f"line_profile could not import {target!r}: {error}") from error
    if not callable(target):
        raise TypeError(f"line_profile needs a function or its dotted path, not {target!r}")
    profiler = LineProfiler(backend="psutil")
    result = profiler(target)(*args, **kwargs)
    stream = io.StringIO()
    show_results(profiler, stream=stream)
    return result, stream.getvalue()
