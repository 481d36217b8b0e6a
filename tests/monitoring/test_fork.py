"""A fork (gunicorn ``--preload``) waits for the flusher's tick in progress, never splits one.

A child forked while the flusher thread is inside an import, a database call
or a lock would inherit them held. The tick here is a stand-in that sleeps
(the real flush is exercised by test_servers.py's preloaded gunicorn test);
what is under test is the fork hook's wait and the parent's flusher resuming.
Likewise a child does not go on tracing memory for monitored calls of threads
the fork did not copy.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest

from django_perf.monitoring import flusher as flusher_module
from django_perf.monitoring.flusher import Flusher
from django_perf.monitoring.memory import monitor_memory, tracing

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def test_a_fork_waits_for_the_tick_in_progress_and_the_parent_flusher_goes_on(perf, monkeypatch):
    recorder = perf(MONITORING_FLUSH_INTERVAL=0.01, MONITORING_SYSTEM_INTERVAL=0)
    in_tick = threading.Event()
    state = {"ticks": 0, "inside": False}

    def slow_flush(recorder):
        state["inside"] = True
        in_tick.set()
        time.sleep(0.3)
        state["ticks"] += 1
        state["inside"] = False
        return 0

    monkeypatch.setattr(flusher_module, "flush", slow_flush)
    flusher = Flusher(recorder)
    recorder.flusher = flusher
    flusher.start()
    try:
        assert in_tick.wait(5)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what the fork copied, and leave at once
            os.write(write_end, b"inside" if state["inside"] else b"between")
            os._exit(0)
        os.close(write_end)
        copied = os.read(read_end, 16)
        os.close(read_end)
        os.waitpid(pid, 0)
        ticks_at_fork = state["ticks"]
        deadline = time.monotonic() + 5
        while state["ticks"] < ticks_at_fork + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        flusher.stop(flush_now=False)
    assert copied == b"between"
    assert ticks_at_fork >= 1
    assert state["ticks"] >= ticks_at_fork + 2  # resumed after the fork


def test_the_flusher_thread_itself_is_never_made_to_wait_for_its_own_tick(perf):
    recorder = perf(MONITORING_FLUSH_INTERVAL=0.01, MONITORING_SYSTEM_INTERVAL=0)
    flusher = Flusher(recorder)
    results = []
    thread = threading.Thread(target=lambda: results.append(flusher.pause(timeout=0.1)))
    flusher._thread = thread  # pause() called on the flusher's own thread (a fork from a tick)
    thread.start()
    thread.join(5)
    assert results == [False]
    assert flusher.pause(timeout=0.1) is True  # from any other thread it takes the tick lock
    flusher.resume()


def _fork_and_report(child: Callable[[], bytes]) -> bytes:
    """Fork; the child runs ``child()``, sends back what it returns, and leaves at once."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, child())
        finally:
            os._exit(0)
    return _child_answer(pid, read_end, write_end)


def _child_answer(pid: int, read_end: int, write_end: int) -> bytes:
    """In the parent: what the child ``pid`` wrote to the pipe, once it has exited."""
    os.close(write_end)
    answer = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    return answer


def _tracing_now() -> bytes:
    return b"tracing" if tracemalloc.is_tracing() else b"stopped"


def test_a_child_forked_during_another_threads_monitored_call_stops_tracing():
    inside, done = threading.Event(), threading.Event()

    @monitor_memory
    def long_job():
        inside.set()
        done.wait(10)

    job = threading.Thread(target=long_job)
    job.start()
    try:
        assert inside.wait(5)

        def child() -> bytes:
            at_fork = _tracing_now()  # the job's thread was not copied: nothing is monitored
            with tracing():
                pass
            return at_fork + b" " + _tracing_now()

        answer = _fork_and_report(child)
        assert tracemalloc.is_tracing()  # the parent's job goes on being traced
    finally:
        done.set()
        job.join(5)
    assert answer == b"stopped stopped"
    assert not tracemalloc.is_tracing()


def test_a_child_forked_inside_its_own_tracing_block_traces_until_the_block_ends():
    read_end, write_end = os.pipe()
    states = []
    with tracing():
        pid = os.fork()
        states.append(_tracing_now())
    states.append(_tracing_now())
    if pid == 0:  # the child left the block it was forked in, as the parent did
        try:
            os.write(write_end, b" ".join(states))
        finally:
            os._exit(0)
    answer = _child_answer(pid, read_end, write_end)
    assert answer == b"tracing stopped"
    assert states == [b"tracing", b"stopped"]


@pytest.mark.postgres
def test_a_child_opens_database_pools_of_its_own_instead_of_sharing_the_parents(
    django_db_setup, django_db_blocker
):
    # Under gunicorn --preload the master's flusher leaves its connection idle in Django's
    # native pool after each tick; a worker forked later (recycling, a reload) took that
    # very connection, and the two processes' queries crossed on one socket.
    from django.db import connections

    def backend_pid() -> int:
        try:
            with connections["pooled"].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                return cursor.fetchone()[0]
        finally:
            connections["pooled"].close()  # back to the pool, idle, as after a flusher tick

    def pool_pids() -> set[int]:
        """The server pids of every connection in this process's pool (all taken at once)."""
        pool = connections["pooled"].pool
        held = [pool.getconn(timeout=10) for _ in range(pool.get_stats()["pool_size"])]
        try:
            return {conn.info.backend_pid for conn in held}
        finally:
            for conn in held:
                pool.putconn(conn)

    with django_db_blocker.unblock():
        backend_pid()  # the pool open, its connections idle
        parents = pool_pids()
        child = int(_fork_and_report(lambda: str(backend_pid()).encode()))
        assert child not in parents  # a connection of its own, not one of the parent's sockets
        assert backend_pid() in parents  # and the parent's connections still work
