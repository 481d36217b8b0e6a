"""Move each process's buffer to the shared store: every few seconds, and once more at exit.

The flusher is one daemon thread per process. It primes psutil's CPU
counters when it starts, so that its first sample measures a whole tick. Each
tick it takes a psutil sample when one is due, writes the buffered series and
samples to the store in one batch, and now and then runs the store's
maintenance (rollups and retention; the store makes sure only one process at
a time does it). A failed write puts the batch back (within the buffer's
memory bound) and is retried next tick. At interpreter exit (a graceful
worker restart) the thread is stopped and a last flush runs, so nothing
recorded is lost.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from ..conf import perf_settings

if TYPE_CHECKING:
    from .recorder import Recorder
    from .store import MetricsStore

__all__ = ["Flusher", "flush"]

logger = logging.getLogger("django_perf.monitoring")
FORK_WAIT = 10.0  # seconds a fork waits for the flusher's tick in progress


def flush(
    recorder: Recorder | None = None, store: MetricsStore | None = None, *, strict: bool = False
) -> int:
    """Write this process's buffer to the store now; return how many requests it held.

    On failure the batch goes back into the buffer; the error is logged, and
    raised too when ``strict`` or ``DJANGO_PERF['STRICT']`` is on.
    """
    from .recorder import get_recorder
    from .store import get_store

    recorder = recorder or get_recorder()
    store = store or get_store()
    with recorder.flush_lock:
        recorder.fold()
        batch = recorder.buffer.take()
        samples = recorder.take_samples()
        slow = recorder.take_slow()
        if not batch and not samples and not slow:
            return 0
        try:
            store.write(batch, samples, slow)
        except Exception:
            recorder.buffer.put_back(batch)
            recorder.put_back_samples(samples)
            recorder.put_back_slow(slow)
            if strict or perf_settings.STRICT:
                raise
            logger.warning(
                "Could not flush %d series to the %s metrics store; kept them for the next try",
                len(batch),
                store.describe(),
                exc_info=True,
            )
            return 0
    return sum(series.requests for series in batch.values())


class Flusher:
    """The background thread of one process (see the module docstring)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.pid = os.getpid()
        self.interval = float(perf_settings.MONITORING_FLUSH_INTERVAL)
        self.system_interval = float(perf_settings.MONITORING_SYSTEM_INTERVAL)
        self.maintain_interval = max(6 * self.interval, 5.0)
        self._stop = threading.Event()
        # Held for each tick's work, so that a fork can wait for the tick to end (pause()).
        self._tick = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="django-perf-flusher", daemon=True)
        self._sampler = None

    def start(self) -> None:
        self._thread.start()
        atexit.register(self._at_exit)

    def _run(self) -> None:
        if self.system_interval:
            with self._tick:  # an import: a fork must not copy it half done (see pause())
                self._make_sampler()  # primes the CPU counters: the first sample covers a tick
        next_sample = time.monotonic()
        next_maintain = time.monotonic() + self.maintain_interval
        while not self._stop.wait(self.interval):
            # One tick: sample, flush, maintain, then let go of the database connection,
            # so that between ticks the thread holds no connection at all.
            with self._tick:
                try:
                    if self.system_interval and time.monotonic() >= next_sample:
                        next_sample = time.monotonic() + self.system_interval
                        self._sample()
                    flush(self.recorder)
                    if time.monotonic() >= next_maintain:
                        next_maintain = time.monotonic() + self.maintain_interval
                        from .store import get_store

                        get_store().maintain()
                except Exception:
                    logger.warning("Metrics maintenance failed; will retry", exc_info=True)
                finally:
                    _release_connection()

    def pause(self, timeout: float = FORK_WAIT) -> bool:
        """Wait for the current tick to end and hold off the next; True if now paused.

        Called before a fork (gunicorn ``--preload`` forks workers from a process
        whose flusher may be mid-tick): a child forked while this thread is inside
        an import, a database call or a lock would inherit them held and could
        hang on them. ``resume()`` lets the thread go on.
        """
        if self.pid != os.getpid() or threading.current_thread() is self._thread:
            return False
        return self._tick.acquire(timeout=timeout)

    def resume(self) -> None:
        """Let the thread run its next tick (after ``pause()`` returned True)."""
        self._tick.release()

    def _make_sampler(self) -> None:
        """Make the psutil sampler on this thread (psutil keeps host CPU references per thread)."""
        try:
            from .system import SystemSampler

            self._sampler = SystemSampler(perf_settings.MONITORING_DISK_PATH)
        except Exception:
            logger.warning("Could not start sampling system metrics", exc_info=True)

    def _sample(self) -> None:
        try:
            if self._sampler is None:
                self._make_sampler()  # a sample right after priming reports CPU as None
            if self._sampler is not None:
                self.recorder.add_sample(self._sampler.sample())
        except Exception:
            logger.warning("Could not sample system metrics", exc_info=True)

    def stop(self, *, flush_now: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread (after its current flush) and flush what is left."""
        if self.pid != os.getpid():
            return  # inherited across a fork: the thread is not ours
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if flush_now:
            try:
                flush(self.recorder)
            finally:
                _release_connection()

    def _at_exit(self) -> None:
        try:
            self.stop()
        except Exception:
            logger.exception("Last metrics flush at exit failed")


def _release_connection() -> None:
    """Close the store's database connection of this thread per CONN_MAX_AGE, as requests do."""
    if perf_settings.MONITORING_REDIS_URL:
        return
    from django.db import connections

    alias = perf_settings.MONITORING_DATABASE
    for connection in connections.all(initialized_only=True):
        if connection.alias == alias:
            connection.close_if_unusable_or_obsolete()
