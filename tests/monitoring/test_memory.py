"""Memory tools: snapshots and diffs, @monitor_memory (sync and async), request profiling, lines."""

import asyncio
import contextlib
import inspect
import logging
import tracemalloc

import pytest
from django.test import AsyncClient, Client

from django_perf.monitoring import memory
from tests.monitoring import memory_targets


@pytest.fixture(autouse=True)
def _no_tracing_left():
    assert not tracemalloc.is_tracing()
    yield
    memory_targets.kept.clear()
    assert not tracemalloc.is_tracing()  # every tool stops what it started


def test_snapshot_needs_tracing_and_says_how():
    with pytest.raises(
        RuntimeError, match=r"wrap the code in django_perf\.monitoring\.memory\.tracing"
    ):
        memory.take_snapshot()


def test_diff_names_the_line_that_allocated():
    with memory.tracing():
        before = memory.take_snapshot()
        memory_targets.leak(500)
        stats = memory.diff(before, memory.take_snapshot(), limit=3)
    top = stats[0]
    assert top.traceback[0].filename == memory_targets.__file__
    assert top.size_diff >= 500 * 1024
    [line] = memory.format_diff(stats[:1])
    assert line.startswith("+5")
    assert "KiB" in line
    assert "memory_targets.py:" in line


LEAK_LINE = f"memory_targets.py:{memory_targets.leak.__code__.co_firstlineno + 1}"


def _leak_through_a_caller(n):
    return memory_targets.leak(n)


def test_a_traceback_diff_names_the_allocating_line_then_its_callers():
    with memory.tracing(frames=5):
        before = memory.take_snapshot()
        _leak_through_a_caller(500)
        stats = memory.diff(before, memory.take_snapshot(), limit=1, key_type="traceback")
    [line] = memory.format_diff(stats)
    places = [place.rsplit("/", 1)[-1] for place in line.split(" blocks) ")[1].split(" <- ")]
    assert places[0] == LEAK_LINE  # the generator expression that allocates, then leak()
    callers = [place for place in places if place != LEAK_LINE]
    assert callers[0].startswith("test_memory.py:")  # _leak_through_a_caller
    assert len(places) == 5


def test_monitor_memory_with_tracebacks_logs_the_allocating_line(caplog):
    monitored = memory.monitor_memory(
        _leak_through_a_caller, limit=1, key_type="traceback", frames=3
    )
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        monitored(300)
    [record] = caplog.records
    top = record.getMessage().splitlines()[1]
    assert f"/{LEAK_LINE} <- " in top


def test_tracing_blocks_nest_and_respect_someone_elses_session():
    with memory.tracing():
        with memory.tracing():
            assert tracemalloc.is_tracing()
        assert tracemalloc.is_tracing()
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        with memory.tracing():
            pass
        assert tracemalloc.is_tracing()  # not ours to stop
    finally:
        tracemalloc.stop()


def test_monitor_memory_logs_top_differences_of_sync_calls(caplog):
    monitored = memory.monitor_memory(memory_targets.leak, limit=2)
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        assert monitored(300) == 300
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith("Memory of tests.monitoring.memory_targets.leak: +3")
    assert "net; top 1 differences:" in message  # limit=2, and only one line allocated
    assert "memory_targets.py:" in message.splitlines()[1]


def test_monitor_memory_works_on_coroutines(caplog):
    monitored = memory.monitor_memory(limit=1, level=logging.WARNING)(memory_targets.aleak)
    assert asyncio.iscoroutinefunction(monitored)
    with caplog.at_level(logging.WARNING, logger="django_perf.monitoring.memory"):
        assert asyncio.run(monitored(200)) == 200
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("Memory of tests.monitoring.memory_targets.aleak: +4")
    )


def _get(client, path):
    if isinstance(client, AsyncClient):
        return asyncio.run(client.get(path))
    return client.get(path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("client_class", [Client, AsyncClient], ids=["wsgi", "asgi"])
def test_a_sampled_fraction_of_requests_is_profiled_and_still_recorded(perf, caplog, client_class):
    recorder = perf(MONITORING_MEMORY_PROFILE_RATE=1.0)
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        assert _get(client_class(), "/monitoring/async/").status_code == 200
    [record] = caplog.records
    assert record.getMessage().startswith("Memory of request GET /monitoring/async/:")
    recorder.fold()
    [(key, series)] = recorder.buffer.series.items()
    assert (key.route, key.method, key.status, series.requests) == (
        "/monitoring/async/", "GET", "2xx", 1
    )  # fmt: skip

    recorder = perf(MONITORING_MEMORY_PROFILE_RATE=0.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        _get(client_class(), "/monitoring/async/")
    assert caplog.records == []
    assert recorder.fold() == 1


def test_line_by_line_report_of_a_named_function():
    result, report = memory.line_profile("tests.monitoring.memory_targets.allocate", 2000)
    assert result == 2000
    assert "Mem usage" in report
    assert "Increment" in report
    assert "blocks = [bytes(1024) for _ in range(n)]" in report


def test_line_profile_errors_name_the_problem():
    with pytest.raises(ImportError, match=r"could not import 'tests\.monitoring\.nope\.f'"):
        memory.line_profile("tests.monitoring.nope.f")
    with pytest.raises(TypeError, match="needs a function or its dotted path"):
        memory.line_profile(42)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key_type": "line"}, r"key_type must be one of .*'lineno'.*, not 'line'"),
        ({"frames": 0}, r"frames must be an int from 1 to 65535, not 0"),
        ({"frames": "5"}, r"frames must be an int from 1 to 65535, not '5'"),
    ],
)
def test_bad_options_are_refused_when_decorating_not_after_each_call(options, message):
    calls = []
    with pytest.raises(ValueError, match=message):

        @memory.monitor_memory(**options)
        def transfer():
            calls.append("money moved")

    with pytest.raises(ValueError, match=message):
        memory.monitor_memory(memory_targets.leak, **options)
    assert calls == []


def _stops_tracing(error: Exception | None) -> str:
    tracemalloc.stop()  # some library resetting tracemalloc: the report cannot be made
    if error is not None:
        raise error
    return "result"


@pytest.mark.parametrize("wrap", ["sync", "async"])
def test_a_failing_report_is_logged_and_leaves_the_call_as_it_was(caplog, wrap):
    async def astops_tracing(error):
        return _stops_tracing(error)

    fn = _stops_tracing if wrap == "sync" else astops_tracing
    monitored = memory.monitor_memory(fn)

    def call(error):
        return monitored(error) if wrap == "sync" else asyncio.run(monitored(error))

    with caplog.at_level(logging.WARNING, logger="django_perf.monitoring.memory"):
        assert call(None) == "result"
        with pytest.raises(KeyError, match="the real error"):
            call(KeyError("the real error"))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all(m.startswith("Could not report the memory of tests.monitoring.") for m in messages)
    assert "tracemalloc is not tracing" in caplog.records[0].exc_text
    with memory.tracing():  # the shared session is still consistent afterwards
        assert tracemalloc.is_tracing()


def _rows(seen):
    for _ in range(3):
        seen.append(tracemalloc.is_tracing())
        yield bytes(200_000)  # the rows' allocation


async def _arows(seen):
    for _ in range(3):
        seen.append(tracemalloc.is_tracing())
        yield bytes(200_000)  # the rows' allocation
        await asyncio.sleep(0)


def _rows_report(caplog, name):
    [record] = caplog.records
    lines = record.getMessage().splitlines()
    assert lines[0].startswith(f"Memory of tests.monitoring.test_memory.{name}: +")
    return lines[1]


def test_monitor_memory_traces_a_generator_until_it_is_exhausted(caplog):
    monitored = memory.monitor_memory(_rows, limit=1)
    assert inspect.isgeneratorfunction(monitored)
    seen = []
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        rows = monitored(seen)
        assert caplog.records == []  # nothing ran yet
        kept = list(rows)
    assert len(kept) == 3
    assert seen == [True, True, True]
    assert "KiB (+3 blocks)" in _rows_report(caplog, "_rows")


def test_a_generator_closed_early_is_reported_when_closed(caplog):
    seen = []
    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        rows = memory.monitor_memory(_rows, limit=1)(seen)
        first = next(rows)
        assert tracemalloc.is_tracing()
        assert caplog.records == []
        rows.close()
    assert len(first) == 200_000
    assert seen == [True]
    assert "(+1 blocks)" in _rows_report(caplog, "_rows")


def test_monitor_memory_traces_an_async_generator_until_it_is_exhausted_or_closed(caplog):
    monitored = memory.monitor_memory(_arows, limit=1)
    assert inspect.isasyncgenfunction(monitored)
    seen = []

    async def take(n):
        rows, kept = monitored(seen), []
        async with contextlib.aclosing(rows):
            async for row in rows:
                kept.append(row)
                if len(kept) == n:
                    break
        return kept

    with caplog.at_level(logging.INFO, logger="django_perf.monitoring.memory"):
        assert len(asyncio.run(take(3))) == 3
        assert "KiB (+3 blocks)" in _rows_report(caplog, "_arows")
        caplog.clear()
        assert len(asyncio.run(take(1))) == 1
        assert "(+1 blocks)" in _rows_report(caplog, "_arows")
    assert seen == [True] * 4


def test_a_monitored_async_generator_passes_sent_values_and_thrown_exceptions_on():
    async def echo():
        received = []
        while True:
            try:
                received.append((yield received[-1] if received else None))
            except KeyError as error:
                received.append(f"caught {error}")

    async def talk():
        talker = memory.monitor_memory(echo)()
        assert await talker.asend(None) is None
        assert await talker.asend("hello") == "hello"
        assert await talker.athrow(KeyError("k")) == "caught 'k'"
        await talker.aclose()

    asyncio.run(talk())
