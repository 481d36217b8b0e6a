"""Single-flight: concurrent callers of one key in a process share one computation.

The first caller of a key (the leader) computes; callers that arrive while it
runs wait for its result, whether they are threads or asyncio tasks on any
event loop. A flight is a ``concurrent.futures.Future``: threads block on
it, tasks await it through ``asyncio.wrap_future``. If the leader raises,
every waiter gets the same exception. If the leader is cancelled or
interrupted, waiters are not: they start over, and one of them leads.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = ["Flight", "Flights", "LeaderGone", "flights"]


class LeaderGone(Exception):
    """The leader stopped without a result (cancelled, interrupted): start over."""


def _caller() -> tuple[int, int | None]:
    """This thread, and the asyncio task running in it if any (to spot re-entry)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), None if task is None else id(task)


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
        try:
            return self.future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"waited {timeout:g} s for another caller computing {self.key!r}"
            ) from None

    async def await_(self, timeout: float | None = None) -> Any:
        """The same for asyncio tasks, on any event loop."""
        wrapped = asyncio.wrap_future(self.future)
        try:
            if timeout is None:
                return await asyncio.shield(wrapped)
            return await asyncio.wait_for(asyncio.shield(wrapped), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout:g} s for another caller computing {self.key!r}"
            ) from None


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
