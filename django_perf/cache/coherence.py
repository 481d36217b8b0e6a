"""Keeping every process's L1 coherent: invalidation messages over Redis pub/sub.

After a write, delete, touch or clear has reached every shared tier, the key
is queued for a publisher thread. A change after a quiet spell is published
at once; while changes keep coming they are sent as at most one message per
2 ms, or per 20 ms once batches grow (``BATCH_WINDOW``), so a burst of writes
costs every process a few messages instead of one per key (and the writing process few thread
switches). Each process runs one listener thread per store that applies
other processes' messages to its L1:

* ``{"o": origin, "k": [keys]}``: drop these keys;
* ``{"o": origin, "p": "glob"}``: drop keys matching a Redis-style glob;
* ``{"o": origin, "c": 1}``: drop everything.

L1 is only read and filled while the listener is subscribed. When the
subscription is lost (Redis down, connection cut, no PONG within three
health intervals), L1 is flushed and bypassed; once subscribed again it is
flushed once more (messages may have been missed) and used again.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import multiprocessing.util
import os
import secrets
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .faults import ErrorLog
from .tiers.memory import MemoryTier, glob_to_regex

__all__ = ["Channel"]

logger = logging.getLogger("django_perf.cache")

STARTING, UP, DOWN = "starting", "up", "down"
MESSAGE_KEYS = 1000  # keys per message
QUEUE_LIMIT = 100_000  # queued keys before "clear" is sent instead
BATCH_WINDOW = 0.02  # while changes keep coming, at most one message per window...
SHORT_WINDOW = 0.002  # ...or per this one, while batches stay small
BUSY_BATCH = 8  # changes in a batch that make the publisher use the longer window
_channels: weakref.WeakSet[Channel] = weakref.WeakSet()
_exit_flush_pid = 0  # the process whose multiprocessing exit runs _flush_at_exit


def _new_origin() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Channel:
    """One store's invalidation channel: builds messages, runs the listener thread."""

    def __init__(
        self,
        *,
        name: str,
        channel: str,
        memory: MemoryTier,
        connect: Callable[[], Any],
        publish: Callable[[str, bytes], Any],
        health_interval: float = 1.0,
        errors: ErrorLog | None = None,
        on_publish_error: Callable[[BaseException], None] | None = None,
        can_publish: Callable[[], bool] = lambda: True,
    ) -> None:
        self.name = name
        self.channel = channel
        self.memory = memory
        self._connect = connect  # returns a redis.Redis for the primary
        self._publish = publish
        self._on_publish_error = on_publish_error
        self._can_publish = can_publish  # False while Redis is known to be unreachable
        self.health_interval = health_interval
        self._errors = errors or ErrorLog()
        self._set_origin(_new_origin())
        self.sent = 0
        # Queued announcements: ("k", key), ("p", glob) or ("c", None) for "clear".
        # deque.append is atomic, so announcing costs the writer no lock.
        self._pending: deque[tuple[str, str | None]] = deque()
        self._wake = threading.Event()
        self._idle = True
        self._publisher: threading.Thread | None = None
        self.state = STARTING
        self.messages = 0
        self.losses = 0
        self.subscribed_at: float | None = None
        self._up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # Called with each message from another process once L1 has applied it.
        self.hooks: list[Callable[[dict[str, Any]], None]] = []
        self.on_up: list[Callable[[], None]] = []
        memory.coherent = False  # until the first subscription is confirmed
        _channels.add(self)

    def _set_origin(self, origin: str) -> None:
        self.origin = origin
        # Messages start with the origin, so the listener skips its own without parsing them.
        self._own_prefix = b'{"o":' + json.dumps(origin).encode() + b","

    # Messages -------------------------------------------------------------------------

    def _message(self, **body: Any) -> bytes:
        return json.dumps({"o": self.origin, **body}, separators=(",", ":")).encode()

    def keys_message(self, keys: Iterable[str]) -> bytes:
        return self._message(k=list(keys))

    def pattern_message(self, pattern: str) -> bytes:
        return self._message(p=pattern)

    def clear_message(self) -> bytes:
        return self._message(c=1)

    def apply(self, data: bytes | str) -> None:
        """Apply a message received from the channel (messages this process sent are skipped)."""
        if isinstance(data, bytes) and data.startswith(self._own_prefix):
            return
        try:
            message = json.loads(data)
            origin = message["o"]
        except (ValueError, TypeError, KeyError) as error:
            self._errors.report(self.name, "the invalidation channel", "a malformed message", error)
            return
        if origin == self.origin:
            return
        self.messages += 1
        if "k" in message:
            self.memory.invalidate(message["k"])
        elif "p" in message:
            self.memory.invalidate_pattern(glob_to_regex(message["p"]))
        elif "c" in message:
            self.memory.flush()
        for hook in self.hooks:
            hook(message)

    # Announcing this process's changes -------------------------------------------------

    def announce_keys(self, keys: list[str]) -> None:
        """Queue "drop these keys" for the other processes (sent within moments, batched)."""
        if len(keys) == 1:
            self._pending.append(("k", keys[0]))
        else:
            self._pending.extend([("k", key) for key in keys])
        if self._idle:
            self._wake_publisher()

    def announce_pattern(self, pattern: str) -> None:
        self._pending.append(("p", pattern))
        if self._idle:
            self._wake_publisher()

    def announce_clear(self) -> None:
        self._pending.append(("c", None))
        if self._idle:
            self._wake_publisher()

    def _wake_publisher(self) -> None:
        thread = self._publisher
        if thread is None or not thread.is_alive():
            self._start_publisher()
        self._wake.set()

    def flush_announcements(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was published (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending or not self._idle:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _start_publisher(self) -> None:
        _flush_at_process_exit()
        with self._lock:
            if self._publisher is None or not self._publisher.is_alive():
                self._publisher = threading.Thread(
                    target=self._publish_loop,
                    name=f"django-perf-cache-publisher[{self.name}]",
                    daemon=True,
                )
                self._publisher.start()

    def _publish_loop(self) -> None:
        pending = self._pending
        last_sent = 0.0
        window = SHORT_WINDOW
        while True:
            self._idle = True
            if not pending:
                self._wake.wait()
            self._wake.clear()
            self._idle = False
            # The first change after a quiet spell goes out at once; while changes keep
            # coming, they gather into at most one message per window (a short one until
            # batches grow), so a burst of writes costs every process a few messages.
            wait = window - (time.monotonic() - last_sent)
            if wait > 0:
                time.sleep(wait)
            items = []
            while pending:
                items.append(pending.popleft())
            window = BATCH_WINDOW if len(items) >= BUSY_BATCH else SHORT_WINDOW
            if len(items) > QUEUE_LIMIT:
                items = [("c", None)]  # too much to name: everyone drops everything
            self._send(items)
            last_sent = time.monotonic()

    def _send(self, items: list[tuple[str, str | None]]) -> None:
        if any(kind == "c" for kind, _ in items):
            messages = [self.clear_message()]
        else:
            keys = list(dict.fromkeys(value for kind, value in items if kind == "k"))
            messages = [
                self.keys_message(keys[start : start + MESSAGE_KEYS])
                for start in range(0, len(keys), MESSAGE_KEYS)
            ]
            messages += [self.pattern_message(value) for kind, value in items if kind == "p"]
        if not self._can_publish():
            # Redis is unreachable from here (its breaker is open): the other processes
            # lost their channel too and bypass L1, or cannot be told anyway.
            return
        for message in messages:
            try:
                self._publish(self.channel, message)
                self.sent += 1
            except Exception as error:
                self._errors.report(self.name, "the invalidation channel", "publishing", error)
                if self._on_publish_error is not None:
                    self._on_publish_error(error)

    # The listener ---------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the listener in this process if it is not running (first use, after fork)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return
        with self._lock:
            thread = self._thread
            if thread is not None and self._pid == os.getpid() and thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"django-perf-cache-coherence[{self.name}]", daemon=True
            )
            self._thread.start()

    def wait_up(self, timeout: float | None = None) -> bool:
        """Block until the channel is subscribed (L1 in use); False on timeout."""
        self.ensure_running()
        return self._up.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        self._went_down(None)

    def _went_up(self) -> None:
        self.memory.flush(coherent=True)
        self.state = UP
        self.subscribed_at = time.time()
        self._up.set()
        for callback in self.on_up:
            callback()

    def _went_down(self, error: BaseException | None) -> None:
        was_up = self.state == UP
        self._up.clear()
        self.memory.flush(coherent=False)
        self.state = DOWN
        if was_up and error is not None:
            self.losses += 1
            logger.warning(
                "Cache %r: lost the invalidation channel %r (%s); L1 is flushed and bypassed "
                "until it is back.",
                self.name,
                self.channel,
                f"{type(error).__name__}: {error}",
            )

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._connect().pubsub()
                pubsub.subscribe(self.channel)
                last_ping = last_pong = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=min(0.25, self.health_interval))
                    now = time.monotonic()
                    if message is not None:
                        kind = message["type"]
                        if kind == "message":
                            self.apply(message["data"])
                        elif kind == "subscribe":
                            # First subscription or a silent reconnect: messages may have
                            # been missed, so start from an empty L1.
                            self._went_up()
                            backoff = 0.05
                            last_pong = now
                        elif kind == "pong":
                            last_pong = now
                    if now - last_ping >= self.health_interval:
                        pubsub.ping()
                        last_ping = now
                    if now - last_pong > 3 * self.health_interval:
                        raise TimeoutError(
                            f"no PONG from Redis for {now - last_pong:.1f} s on the channel"
                        )
            except Exception as error:
                if self._stop.is_set():
                    break
                self._went_down(error)
                self._errors.report(self.name, "the invalidation channel", "listening", error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection may fail
                        pubsub.close()

    def _after_fork(self) -> None:
        # The listener thread does not exist in a forked child: bypass L1 until it runs.
        self.memory._lock = threading.Lock()
        self.memory.flush(coherent=False)
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._thread = None
        self._pending = deque()
        self._wake = threading.Event()
        self._idle = True
        self._publisher = None
        self.state = STARTING
        self._set_origin(_new_origin())

    def stats(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "state": self.state,
            "messages": self.messages,
            "sent": self.sent,
            "losses": self.losses,
        }


def _reset_after_fork() -> None:
    for channel in list(_channels):
        channel._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _flush_at_exit() -> None:
    for channel in list(_channels):
        channel.flush_announcements(1.0)


atexit.register(_flush_at_exit)


def _flush_at_process_exit() -> None:
    """Also flush when a multiprocessing child ends: a forked one leaves by os._exit,
    skipping atexit, but runs multiprocessing's finalizers first. Registered once per
    process when it first announces (its start clears finalizers inherited by fork)."""
    global _exit_flush_pid
    if _exit_flush_pid != os.getpid():
        _exit_flush_pid = os.getpid()
        multiprocessing.util.Finalize(None, _flush_at_exit, exitpriority=10)
