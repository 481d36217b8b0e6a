"""Single-flight: concurrent callers of one key in a process share one computation.

The first caller of a key (the leader) computes; callers that arrive while it
runs wait for its result, whether they are threads or asyncio tasks on any
event loop. A flight is a ``concurrent.futures.Future``: threads block on
it, tasks await it through ``asyncio.wrap_future``. If the leader raises,
every waiter gets the same exception. If the leader is cancelled or
interrupted, waiters are not: one of them takes over with a new flight, and
the others wait for that one. A waiter given a time limit raises
``WaitedTooLong`` (a ``TimeoutError``) when its leader outlasts it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from typing import Any

__all__ = ["Flight", "Flights", "LeaderGone", "WaitedTooLong", "flights"]


class LeaderGone(Exception):
    """The leader stopped without a result (cancelled, interrupted): start over."""


class WaitedTooLong(TimeoutError):
    """The leader did not finish in the waiter's time (not a TimeoutError the leader raised)."""

    def __init__(self, key: str, timeout: float) -> None:
        super().__init__(f"waited {timeout:g} s for another caller computing {key!r}")


def _caller() -> tuple[int, int | None]:
    """This thread, and the asyncio task running in it if any (to spot re-entry)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), None if task is None else id(task)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Flight:
    """One computation of one key, and the callers waiting for it."""

    __slots__ = ("future", "key", "leader", "waiters")

    def __init__(self, key: str) -> None:
        self.key = key
        self.future: Future[Any] = Future()
        self.leader = _caller()
        self.waiters = 0

    def succeed(self, value: Any) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        if self.future.done():
            return
        if isinstance(error, Exception):
            self.future.set_exception(error)
        else:  # cancelled, KeyboardInterrupt, SystemExit: the waiters were not
            self.future.set_exception(LeaderGone(f"the computation of {self.key!r} stopped"))

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the leader is done; its value, or its exception raised here."""
        if not wait_for_futures([self.future], timeout).done:
            raise WaitedTooLong(self.key, timeout or 0)
        return self.future.result()

    async def await_(self, timeout: float | None = None) -> Any:
        """The same for asyncio tasks, on any event loop (cancelling one never cancels it)."""
        wrapped = asyncio.wrap_future(self.future)
        wrapped.add_done_callback(_retrieved)  # a waiter that gave up logs no "never retrieved"
        done, _ = await asyncio.wait({wrapped}, timeout=timeout)
        if not done:
            raise WaitedTooLong(self.key, timeout or 0)
        return wrapped.result()


class Flights:
    """The flights in progress in this process, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def join(self, key: str) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether the caller leads it (starts it).

        A caller already leading ``key`` (a recursive call from the same thread or
        task) gets a flight of its own, so it cannot wait for itself.
        """
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and flight.leader != _caller():
                flight.waiters += 1
                return flight, False
            flight = Flight(key)
            if key not in self._flights:
                self._flights[key] = flight
            return flight, True

    def take_over(self, gone: Flight) -> tuple[Flight, bool]:
        """After ``gone``'s leader stopped or seems stuck: a new flight for its key.

        The first waiter to ask leads it (True); later ones join it, so at most
        one waiter takes over from a leader.
        """
        with self._lock:
            current = self._flights.get(gone.key)
            if current is not None and current is not gone:
                current.waiters += 1
                return current, False
            flight = Flight(gone.key)
            self._flights[gone.key] = flight
            return flight, True

    def leave(self, flight: Flight) -> None:
        """The leader is done: later callers start a new flight (after reading the cache)."""
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]

    def running(self, key: str) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)


#: The process's flights (shared by every cached function: keys include the function).
flights = Flights()
