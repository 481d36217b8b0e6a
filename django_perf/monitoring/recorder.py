"""The process-wide recorder: route labels, the buffer, and the flusher that empties it.

A request only appends one :data:`Finished` tuple to :attr:`Recorder.pending`
(a deque: atomic, no lock); :meth:`Recorder.fold` turns pending requests into
series later, in a loop whose code and data stay warm in the CPU's caches.
Folded in the request, the same work costs several times more: it runs cold,
after the rest of Django. The flusher folds before every flush, and a request
folds when the queue reaches :data:`FOLD_AT`, so the queue stays bounded.

There is one recorder per process. After a fork (gunicorn's ``--preload``)
the child starts with an empty buffer of its own, and its own flusher if the
parent had one, so no request is counted twice and none is left unflushed.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ..conf import perf_settings
from ..lifespan import on_shutdown
from .buffer import OTHER_ROUTE, Buffer, Finished
from .series import METHODS, STATUS_CLASSES

if TYPE_CHECKING:
    from .flusher import Flusher
    from .store import Sample, SlowRequest

__all__ = [
    "FOLD_AT",
    "METHODS",
    "STATUS_CLASSES",
    "UNMATCHED_ROUTE",
    "Finished",
    "Recorder",
    "get_recorder",
]

SLOW_BUFFER = 100  # slow requests held between two flushes; older ones are dropped
FOLD_AT = 2000  # pending requests past which the request that adds one folds them all

UNMATCHED_ROUTE = "<unmatched>"


def status_class(status: int) -> str:
    return STATUS_CLASSES.get(status, "other")


class Recorder:
    """Holds what this process recorded until the flusher moves it to the shared store."""

    def __init__(self) -> None:
        # One deque for the recorder's life: middleware keep a reference to it.
        self.pending: deque[Finished] = deque()
        self._reinit()

    def _reinit(self) -> None:
        self.pid = os.getpid()
        self.max_routes = perf_settings.MONITORING_MAX_ROUTES
        self.buffer = Buffer(perf_settings.MONITORING_MAX_SERIES)
        self.pending.clear()
        self.routes: set[str] = {UNMATCHED_ROUTE, OTHER_ROUTE}
        self.labels: dict[str, str] = {}  # ResolverMatch.route -> label, for the hot path
        self.flusher: Flusher | None = None
        self.flush_lock = threading.Lock()
        self.samples: list[Sample] = []  # the latest system sample, until flushed
        self.slow: deque[SlowRequest] = deque(maxlen=SLOW_BUFFER)  # until flushed
        self._lock = threading.Lock()

    def fold(self) -> int:
        """Move every pending request into the buffer's series; return how many moved.

        Safe from any thread at any time: each request is popped exactly once.
        """
        return self.buffer.fold(self.pending)

    def discard(self) -> None:
        """Forget everything recorded and not yet flushed (pending requests and series)."""
        self.pending.clear()
        self.buffer.take()

    def add_sample(self, sample: Sample) -> None:
        """Keep ``sample`` for the next flush (only the latest one: bounded)."""
        self.samples = [sample]

    def take_samples(self) -> list[Sample]:
        samples, self.samples = self.samples, []
        return samples

    def put_back_samples(self, samples: list[Sample]) -> None:
        if not self.samples:
            self.samples = samples[-1:]

    def add_slow(self, request: SlowRequest) -> None:
        """Keep a slow request for the next flush (the latest :data:`SLOW_BUFFER`: bounded)."""
        self.slow.append(request)

    def take_slow(self) -> list[SlowRequest]:
        taken = []
        while self.slow:
            try:
                taken.append(self.slow.popleft())
            except IndexError:  # emptied by another thread meanwhile
                break
        return taken

    def put_back_slow(self, requests: list[SlowRequest]) -> None:
        """Return requests whose flush failed, ahead of newer ones; the oldest go if full."""
        for request in reversed(requests):
            if len(self.slow) >= SLOW_BUFFER:
                break
            self.slow.appendleft(request)

    def label(self, route: str) -> str:
        """``route`` if it is known or there is room for it, else ``<other>`` (bounded labels)."""
        if route in self.routes:
            return route
        if len(self.routes) >= self.max_routes + 2:
            return OTHER_ROUTE
        self.routes.add(route)
        return route

    def label_for(self, match: Any) -> str:
        """The label of a resolved request: its URL pattern, else its view name (bounded)."""
        route = match.route
        label = self.label("/" + route if route is not None else (match.view_name or "<view>"))
        if route is not None and len(self.labels) < 4 * self.max_routes:
            self.labels[route] = label
        return label

    def start_flusher(self) -> None:
        """Start the background flusher once per process (no-op if the interval is 0)."""
        if self.flusher is not None or not perf_settings.MONITORING_FLUSH_INTERVAL:
            return
        with self._lock:
            if self.flusher is None:
                from .flusher import Flusher

                self.flusher = Flusher(self)
                self.flusher.start()
                on_shutdown(flush_at_shutdown)


_recorder: Recorder | None = None
_lock = threading.Lock()


def get_recorder() -> Recorder:
    """This process's recorder, made on first use."""
    global _recorder
    recorder = _recorder
    if recorder is None:
        with _lock:
            if _recorder is None:
                _recorder = Recorder()
            recorder = _recorder
    return recorder


def reset_recorder() -> None:
    """Forget this process's recorder (tests, and the child side of a fork)."""
    global _recorder
    recorder, _recorder = _recorder, None
    if recorder is not None and recorder.flusher is not None and recorder.pid == os.getpid():
        recorder.flusher.stop(flush_now=False)


def _before_fork() -> None:
    # Fork between the flusher's ticks, never in the middle of one (see Flusher.pause()).
    global _paused
    recorder = _recorder
    flusher = recorder.flusher if recorder is not None else None
    _paused = flusher if flusher is not None and flusher.pause() else None


def _after_fork_in_parent() -> None:
    global _paused
    flusher, _paused = _paused, None
    if flusher is not None:
        flusher.resume()


#: Database pools a fork child copied from its parent: never used (their sockets are the
#: parent's), only kept referenced so that no finalizer in the child touches them.
_inherited_pools: list[Any] = []


def _forget_inherited_database_pools() -> None:
    """In a fork child: let Django open pools of its own instead of sharing the parent's.

    Under gunicorn ``--preload`` the master's flusher returns its connection to Django's
    native psycopg pool after each tick; workers forked later (recycling, reloads) would
    take those very connections, and two processes' queries would cross on one socket.
    """
    wrapper = sys.modules.get("django.db.backends.postgresql.base")
    pools = getattr(getattr(wrapper, "DatabaseWrapper", None), "_connection_pools", None)
    if pools:
        _inherited_pools.extend(pools.values())
        pools.clear()


def _after_fork_in_child() -> None:
    # Same object (middleware instances hold it), fresh state: the parent's buffer is its own.
    global _lock, _paused
    _forget_inherited_database_pools()
    _lock = threading.Lock()
    _paused = None  # the parent's flusher: its lock was copied held, and is dropped with it
    recorder = _recorder
    if recorder is not None:
        had_flusher = recorder.flusher is not None
        recorder._reinit()
        if had_flusher:
            recorder.start_flusher()


_paused: Flusher | None = None  # the flusher held by _before_fork(), until the fork is done
os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def flush_at_shutdown() -> None:
    """Stop this process's flusher and flush what is left (ASGI servers may skip ``atexit``)."""
    recorder = _recorder
    if recorder is not None and recorder.flusher is not None:
        recorder.flusher.stop()
