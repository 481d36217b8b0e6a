"""Failing tiers: a circuit breaker per tier and error logs that say why, without flooding.

A tier that raises is skipped for that call (a read becomes a miss there, a
write goes to the other tiers). After ``BREAKER_FAILURES`` failures in a row
the breaker *opens*: the tier is skipped without being called, so a dead
Redis costs nothing per request. After a cooldown (doubling up to a cap
while the tier stays down) one call is let through as a probe; if it
succeeds the breaker closes and the tier serves again, without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["Breaker", "ErrorLog", "describe"]

logger = logging.getLogger("django_perf.cache")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def describe(error: BaseException) -> str:
    """``Type: message``, followed by the chain of causes, for a log line."""
    parts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return " <- caused by ".join(parts)


class Breaker:
    """Closed (calls go through), open (skipped), half-open (one probe call in flight)."""

    def __init__(self, failures: int = 3, cooldown: float = 2.0, max_cooldown: float = 30.0):
        self.threshold = failures
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.opened = 0  # times it opened
        self._cooldown = cooldown
        self._retry_at = 0.0
        self._probe_deadline = 0.0
        self._lock = threading.Lock()

    def allow(self) -> str | None:
        """CLOSED: call normally; HALF_OPEN: this call is the probe; None: skip the tier."""
        if self.state == CLOSED:
            return CLOSED
        now = time.monotonic()
        with self._lock:
            if self.state == CLOSED:
                return CLOSED
            if self.state == OPEN and now >= self._retry_at:
                self.state = HALF_OPEN
                self._probe_deadline = now + self._cooldown
                return HALF_OPEN
            if self.state == HALF_OPEN and now >= self._probe_deadline:
                # The probe never reported back (it may hang on a timeout): allow another.
                self._probe_deadline = now + self._cooldown
                return HALF_OPEN
            return None

    def success(self) -> bool:
        """Record a successful call; True if this closed an open breaker (the tier recovered)."""
        if self.state == CLOSED and not self.failures:
            return False
        with self._lock:
            recovered = self.state != CLOSED
            self.state = CLOSED
            self.failures = 0
            self._cooldown = self.base_cooldown
            return recovered

    def failure(self) -> bool:
        """Record a failed call; True if this opened the breaker."""
        now = time.monotonic()
        with self._lock:
            if self.state == HALF_OPEN:
                self.state = OPEN
                self._cooldown = min(self._cooldown * 2, self.max_cooldown)
                self._retry_at = now + self._cooldown
                return False
            self.failures += 1
            if self.state == CLOSED and self.failures >= self.threshold:
                self.state = OPEN
                self.opened += 1
                self._retry_at = now + self._cooldown
                return True
            return False

    def probe_now(self) -> None:
        """Let the next call probe at once (e.g. another connection just reached the server)."""
        with self._lock:
            if self.state == OPEN:
                self._retry_at = 0.0

    def retry_in(self) -> float:
        return max(0.0, self._retry_at - time.monotonic()) if self.state == OPEN else 0.0


class ErrorLog:
    """Logs a tier's errors with their cause at most once per ``interval`` per error type."""

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, type], float] = {}
        self._suppressed: dict[tuple[str, type], int] = {}
        self._lock = threading.Lock()

    def report(
        self, cache: str, component: str, operation: str, error: BaseException, note: str = ""
    ) -> None:
        """Log (or count as suppressed) a failure of ``component`` during ``operation``."""
        slot = (component, type(error))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(slot)
            if last is not None and now - last < self.interval:
                self._suppressed[slot] = self._suppressed.get(slot, 0) + 1
                return
            self._last[slot] = now
            suppressed = self._suppressed.pop(slot, 0)
        repeat = (
            f" ({suppressed} more like it in the last {self.interval:g} s were not logged)"
            if suppressed
            else ""
        )
        logger.warning(
            "Cache %r: %s failed on %s: %s%s%s",
            cache,
            component,
            operation,
            describe(error),
            f"; {note}" if note else "",
            repeat,
            exc_info=error if logger.isEnabledFor(logging.DEBUG) else None,
        )

    def event(self, cache: str, tier: str, message: str, *args: Any, level=logging.WARNING):
        """Log a tier's state change (breaker opened or closed, replay); not rate-limited."""
        logger.log(level, f"Cache %r, {tier} tier: {message}", cache, *args)
