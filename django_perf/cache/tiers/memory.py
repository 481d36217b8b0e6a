"""L1: process memory. An LRU dict with per-entry expiry, bounded by entries and by bytes.

One store is shared by every cache instance (Django makes one per thread) with
the same LOCATION and options, like ``LocMemCache``. Operations hold a lock
only for dict work, never during I/O, so asyncio code calls them directly.

Mutable values are kept as serializer bytes and deserialized per hit, so no
caller ever receives an object another caller can mutate; immutable values
(str, int, bytes, ...) are kept and returned as they are.

Coherence bookkeeping: every local write and every invalidation takes a
sequence number and marks the key. A value read from a lower tier is promoted
into L1 only if nothing marked its key since the read began, and a write puts
its value into L1 only if no other write or invalidation of the key overlapped
it. Either way a racing older value is left out of L1 instead of shadowing a
newer one.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from django_perf.tally import count

from ..codec import Encoded

__all__ = ["MemoryTier"]

FOREVER = float("inf")
ENTRY_OVERHEAD = 120  # bytes of dict slot, list and floats per entry, roughly
MARKS_LIMIT = 10_000  # recent per-key marks kept before falling back to a global floor

HIT, MISS = "cache.memory.hit", "cache.memory.miss"
_now = time.time
_sizeof = sys.getsizeof


class MemoryTier:
    """The L1 store. Entries are ``[expires_at, obj, raw, size]`` lists in LRU order."""

    kind = "memory"
    shared = False

    def __init__(
        self,
        *,
        loads: Callable[[bytes], Any],
        max_entries: int = 10_000,
        max_bytes: int = 64 * 2**20,
        cull_frequency: int | None = None,
        max_timeout: float | None = None,
        coherent: bool = True,
    ) -> None:
        self._loads = loads
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.cull_frequency = cull_frequency
        self.max_timeout = max_timeout
        self._data: OrderedDict[str, list[Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # Whether L1 may be read and filled. Coherence clears it while the
        # invalidation channel is down, so nothing stale is ever served.
        self.coherent = coherent
        # Distinct, increasing numbers for events (writes, invalidations) and read starts.
        self._next = itertools.count(1).__next__
        self._seq = 0  # the last event's number
        self._floor = 0
        self._marks: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self.hits = self.misses = self.promotions = self.evictions = self.expirations = 0
        self.flushes = 0

    # Reads ------------------------------------------------------------------------

    def get(self, key: str, default: Any) -> Any:
        if not self.coherent:
            self.misses += 1
            count(MISS)
            return default
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
            elif entry[0] <= _now():
                self._remove(key, entry)
                self.expirations += 1
                self.misses += 1
                entry = None
            else:
                self._data.move_to_end(key)
                self.hits += 1
        if entry is None:
            count(MISS)
            return default
        count(HIT)
        raw = entry[2]
        return entry[1] if raw is None else self._loads(raw)

    def get_many(self, keys: Iterable[str], missing: Any) -> dict[str, Any]:
        """Found values by key (absent keys are left out)."""
        found: dict[str, list[Any]] = {}
        misses = 0
        if self.coherent:
            now = time.time()
            with self._lock:
                for key in keys:
                    entry = self._data.get(key)
                    if entry is None:
                        misses += 1
                    elif entry[0] <= now:
                        self._remove(key, entry)
                        self.expirations += 1
                        misses += 1
                    else:
                        self._data.move_to_end(key)
                        found[key] = entry
                self.hits += len(found)
                self.misses += misses
        else:
            misses = sum(1 for _ in keys)
            self.misses += misses
        if found:
            count(HIT, len(found))
        if misses:
            count(MISS, misses)
        loads = self._loads
        return {
            key: entry[1] if entry[2] is None else loads(entry[2]) for key, entry in found.items()
        }

    def expires_at(self, key: str) -> float | None:
        """When the live entry for ``key`` expires (None: never); raises KeyError if absent."""
        with self._lock:
            entry = self._data[key]
            if entry[0] <= time.time():
                raise KeyError(key)
            return None if entry[0] == FOREVER else entry[0]

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return self._bytes

    # Writes when L1 is the only tier (atomic under the lock) ------------------------

    def set(self, key: str, encoded: Encoded, expires_at: float | None) -> None:
        with self._lock:
            self._seq = self._next()
            self._mark(key)
            self._store(key, encoded, expires_at)

    def add(self, key: str, encoded: Encoded, expires_at: float | None) -> bool:
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and entry[0] > time.time():
                return False
            self._seq = self._next()
            self._mark(key)
            self._store(key, encoded, expires_at)
            return True

    def incr(self, key: str, delta: int, encode: Callable[[Any], Encoded]) -> Any:
        """Add ``delta`` to the live value; keep its expiry. ValueError if there is none."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] <= time.time():
                raise ValueError(f"Key '{key}' not found")
            old = entry[1] if entry[2] is None else self._loads(entry[2])
            new = old + delta
            self._seq = self._next()
            self._mark(key)
            self._store(key, encode(new), None if entry[0] == FOREVER else entry[0])
        return new

    def touch(self, key: str, expires_at: float | None) -> bool:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] <= time.time():
                return False
            self._seq = self._next()
            self._mark(key)
            entry[0] = self._cap(expires_at)
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            self._seq = self._next()
            self._mark(key)
            entry = self._data.get(key)
            if entry is None:
                return False
            self._remove(key, entry)
            return entry[0] > time.time()

    def clear(self) -> None:
        with self._lock:
            self._clear()

    # Writes in front of shared tiers -------------------------------------------------

    def begin_write(self, key: str) -> int:
        """Mark ``key`` as being written by this process; returns the write's token."""
        with self._lock:
            self._seq = self._next()
            self._mark(key)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return self._seq

    def end_write(
        self,
        key: str,
        token: int,
        encoded: Encoded | None = None,
        expires_at: float | None = None,
        *,
        keep: bool = False,
    ) -> bool:
        """Finish a write: keep ``encoded`` if no other write or invalidation overlapped,
        else drop the key (unless ``keep``). Returns whether a live entry was dropped.
        """
        with self._lock:
            left = self._inflight.get(key, 1) - 1
            if left > 0:
                self._inflight[key] = left
            else:
                self._inflight.pop(key, None)
            fresh = (
                encoded is not None
                and left <= 0
                and self.coherent
                and token >= self._floor
                and self._marks.get(key) == token
            )
            # Mark the key again: a read that began during the write may have found the
            # old value below, and its promote() must see that the key changed after it.
            self._seq = self._next()
            self._mark(key)
            if fresh:
                self._store(key, encoded, expires_at)
                return False
            if keep:
                return False
            entry = self._data.get(key)
            if entry is None:
                return False
            self._remove(key, entry)
            return entry[0] > time.time()

    def contains(self, key: str) -> bool:
        """Whether a live entry exists (no counting, no LRU update)."""
        if not self.coherent:
            return False
        with self._lock:
            entry = self._data.get(key)
            return entry is not None and entry[0] > time.time()

    def read_token(self) -> int:
        """Taken before reading lower tiers; ``promote`` refuses if the key moved since."""
        return self._next()

    def promote(self, key: str, encoded: Encoded, expires_at: float | None, token: int) -> bool:
        """Keep a value found in a lower tier, unless its key changed after ``token``."""
        with self._lock:
            if (
                not self.coherent
                or token < self._floor
                or key in self._inflight
                or self._marks.get(key, 0) > token
            ):
                return False
            if self._store(key, encoded, expires_at):
                self.promotions += 1
                return True
            return False

    # Invalidation (from this process's deletes or other processes' messages) ---------

    def invalidate(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._seq = self._next()
            for key in keys:
                self._mark(key)
                entry = self._data.get(key)
                if entry is not None:
                    self._remove(key, entry)

    def invalidate_pattern(self, pattern: re.Pattern[str]) -> int:
        """Drop every key ``pattern`` matches (a compiled regex, see ``glob_to_regex``)."""
        with self._lock:
            self._seq = self._next()
            self._floor = self._seq
            doomed = [key for key in self._data if pattern.fullmatch(key)]
            for key in doomed:
                self._remove(key, self._data[key])
            return len(doomed)

    def count_pattern(self, pattern: re.Pattern[str]) -> int:
        """How many live entries ``pattern`` matches (a dry run of ``invalidate_pattern``)."""
        now = time.time()
        with self._lock:
            return sum(
                1 for key, entry in self._data.items() if entry[0] > now and pattern.fullmatch(key)
            )

    def flush(self, *, coherent: bool | None = None) -> None:
        """Drop everything (e.g. the invalidation channel was lost); optionally set ``coherent``."""
        with self._lock:
            self._clear()
            self.flushes += 1
            if coherent is not None:
                self.coherent = coherent

    # Internals (lock held) -----------------------------------------------------------

    def _mark(self, key: str) -> None:
        marks = self._marks
        if len(marks) >= MARKS_LIMIT and key not in marks:
            # Forget old marks; refuse every read that began before this event instead.
            marks.clear()
            self._floor = self._seq
        marks[key] = self._seq

    def _cap(self, expires_at: float | None) -> float:
        if self.max_timeout is not None:
            cap = time.time() + self.max_timeout
            if expires_at is None or expires_at > cap:
                return cap
        return FOREVER if expires_at is None else expires_at

    def _store(self, key: str, encoded: Encoded, expires_at: float | None) -> bool:
        data = self._data
        raw = encoded.raw
        # Immutable values are kept as objects: count what they really take (a big int
        # or a non-ASCII str is far larger than its len()); they are all flat scalars.
        size = len(raw) if raw is not None else _sizeof(encoded.obj)
        size += len(key) + ENTRY_OVERHEAD
        old = data.pop(key, None)
        if old is not None:
            self._bytes -= old[3]
        if size > self.max_bytes:
            return False
        now = _now()
        if self.max_timeout is not None and (
            expires_at is None or expires_at > now + self.max_timeout
        ):
            expires_at = now + self.max_timeout
        elif expires_at is None:
            expires_at = FOREVER
        if expires_at <= now:
            return False
        if len(data) >= self.max_entries:
            self._cull()
        data[key] = [expires_at, encoded.obj, raw, size]
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, entry = data.popitem(last=False)
            self._bytes -= entry[3]
            self.evictions += 1
        return True

    def _cull(self) -> None:
        data = self._data
        if self.cull_frequency is None:  # plain LRU: make room for one
            _, entry = data.popitem(last=False)
            self._bytes -= entry[3]
            self.evictions += 1
            return
        if self.cull_frequency == 0:
            self.evictions += len(data)
            data.clear()
            self._bytes = 0
            return
        for _ in range(max(1, len(data) // self.cull_frequency)):
            _, entry = data.popitem(last=False)
            self._bytes -= entry[3]
            self.evictions += 1

    def _remove(self, key: str, entry: list[Any]) -> None:
        del self._data[key]
        self._bytes -= entry[3]

    def _clear(self) -> None:
        self._seq = self._next()
        self._floor = self._seq
        self._marks.clear()
        self._data.clear()
        self._bytes = 0


def glob_class(pattern: str, start: int) -> tuple[bool, list[tuple[str, str]], int] | None:
    """Read the glob class opening at ``pattern[start] == "["`` the way Redis does.

    Returns whether it is negated (``[^...]``), its members as ``(first, last)``
    ranges (a single character ``c`` is ``(c, c)``; ranges keep their written
    order) and the index of its closing ``]``; None if it is never closed. As in
    Redis, a backslash makes the next character a plain member (so ``[\\]]`` is
    a class of one ``]``), ``a-z`` is a range whose end may be any character,
    and a ``]`` right after ``[`` or ``[^`` closes an empty class.
    """
    i, n = start + 1, len(pattern)
    negate = i < n and pattern[i] == "^"
    i += negate
    members: list[tuple[str, str]] = []
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            members.append((pattern[i + 1], pattern[i + 1]))
            i += 2
        elif char == "]":
            return negate, members, i
        elif i + 2 < n and pattern[i + 1] == "-":
            members.append((char, pattern[i + 2]))
            i += 3
        else:
            members.append((char, char))
            i += 1
    return None


def _class_member(first: str, last: str) -> str:
    # Escaped, so that "]", "\\", "^" and "-" are members, not regex syntax. A reversed
    # range stays reversed: re rejects it, and check_pattern() reports it to the user.
    return re.escape(first) if first == last else f"{re.escape(first)}-{re.escape(last)}"


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Redis-style glob (``*``, ``?``, ``[...]``, backslash escapes) to a regex."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[" and (found := glob_class(pattern, i)) is not None:
            negate, members, i = found
            body = "".join(_class_member(first, last) for first, last in members)
            if body:
                out.append(f"[{'^' if negate else ''}{body}]")
            else:  # "[]" matches nothing, "[^]" any one character (as in Redis)
                out.append("." if negate else "(?!)")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)
