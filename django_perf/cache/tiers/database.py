"""L3: a table in the project's database (``django_perf.CacheEntry``), written with plain SQL.

Rows are found by a digest of the store name and the key; expired rows are
never returned and are removed in bounded batches (``CULL_BATCH`` rows per
statement, at most once per ``CULL_INTERVAL`` seconds per process), as are
the rows closest to expiry when the store holds more than ``MAX_ENTRIES``.

A key the ``cache_key`` column cannot hold (a NUL on PostgreSQL, a lone
surrogate anywhere) is never sent to the database: the table treats it as
absent, so a stray ``?q=%00`` in a key cannot fail statements and open the
tier's circuit breaker for every other key.

Inside a transaction (``ATOMIC_REQUESTS``, ``transaction.atomic()``) every
statement runs in a savepoint, so a failing cache statement never breaks
the caller's transaction; cache rows written there become visible to other
processes on commit, like any other row.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

from . import NOT_INTEGER
from .memory import glob_class

__all__ = ["DatabaseTier"]

logger = logging.getLogger("django_perf.cache")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CHUNK = 500  # keys per statement (well under SQLite's parameter limit)
Row = tuple[bytes | int, float | None]  # (payload or integer, expires_at)


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard (backslash escapes resolved)."""
    out = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?[":
            break
        else:
            out.append(char)
    return "".join(out)


def like_escape(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def glob_to_like(pattern: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching a superset of the glob ``pattern``.

    ``*`` becomes ``%``, ``?`` and a ``[...]`` class become ``_``, everything
    else is matched literally (LIKE's own ``%``, ``_`` and ``\\`` escaped);
    callers filter the rows with the glob's exact regex, which also makes the
    match case-sensitive where LIKE is not (SQLite).
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            i += 1
            out.append(like_escape(pattern[i]))
        elif char == "*":
            if not out or out[-1] != "%":
                out.append("%")
        elif char == "?":
            out.append("_")
        elif char == "[" and (found := glob_class(pattern, i)) is not None:
            out.append("_")  # one character; the regex checks which
            i = found[2]
        else:
            out.append(like_escape(char))
        i += 1
    return "".join(out)


class DatabaseTier:
    """Raw-bytes operations on the CacheEntry table of one database alias."""

    kind = "database"
    shared = True

    def __init__(
        self,
        location: str,
        *,
        database: str = "default",
        max_entries: int | None = 100_000,
        cull_batch: int = 1000,
        cull_interval: float = 60.0,
    ) -> None:
        self.location = location
        self.alias = database
        self.max_entries = max_entries
        self.cull_batch = cull_batch
        self.cull_interval = cull_interval
        self._next_cull = 0.0
        self.evictions = 0
        self.expirations = 0
        self._sql: dict[str, str] | None = None
        self._refuses_nul: bool | None = None
        self._refusal_logged = False

    # Plumbing -------------------------------------------------------------------------

    def key_hash(self, key: str) -> str:
        data = f"{self.location}\0{key}".encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=20).hexdigest()

    def holds(self, key: str) -> bool:
        """Whether the table can store ``key``: PostgreSQL's text refuses NUL, UTF-8 surrogates."""
        if key.isascii() and "\0" not in key:
            return True  # nearly every key: no further checks
        held = self._storable(key)
        if not held and not self._refusal_logged:
            self._refusal_logged = True
            logger.debug(
                "Cache %r: the database tier cannot store the key %r; keys like it skip the table.",
                self.location,
                key,
            )
        return held

    def _storable(self, key: str) -> bool:
        if "\0" in key:
            if self._refuses_nul is None:
                self._refuses_nul = connections[self.alias].vendor == "postgresql"
            if self._refuses_nul:
                return False
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    @property
    def sql(self) -> dict[str, str]:
        if self._sql is None:
            from ..models import CacheEntry

            q = connections[self.alias].ops.quote_name
            t = q(CacheEntry._meta.db_table)
            cols = "key_hash, location, cache_key, value, number, expires_at"
            cols = ", ".join(q(c) for c in cols.split(", "))
            live = f"({q('expires_at')} IS NULL OR {q('expires_at')} > %s)"
            upsert = (
                f"INSERT INTO {t} ({cols}) VALUES {{values}} ON CONFLICT ({q('key_hash')}) "
                f"DO UPDATE SET {q('value')} = EXCLUDED.{q('value')}, "
                f"{q('number')} = EXCLUDED.{q('number')}, "
                f"{q('expires_at')} = EXCLUDED.{q('expires_at')}"
            )
            self._sql = {
                "table": t,
                "select": f"SELECT {q('key_hash')}, {q('value')}, {q('number')}, "
                f"{q('expires_at')} FROM {t} WHERE {q('key_hash')} IN ({{marks}})",
                "upsert": upsert,
                "add": upsert.replace("{values}", "(%s, %s, %s, %s, %s, %s)")
                + f" WHERE {t}.{q('expires_at')} IS NOT NULL AND {t}.{q('expires_at')} <= %s",
                "set_if_present": f"UPDATE {t} SET {q('value')} = %s, {q('number')} = %s "
                f"WHERE {q('key_hash')} = %s AND {live}",
                "delete": f"DELETE FROM {t} WHERE {q('key_hash')} IN ({{marks}})",
                "touch": f"UPDATE {t} SET {q('expires_at')} = %s WHERE {q('key_hash')} = %s "
                f"AND {live}",
                "incr": f"UPDATE {t} SET {q('number')} = {q('number')} + %s "
                f"WHERE {q('key_hash')} = %s AND {q('number')} IS NOT NULL "
                f"AND {q('number')} BETWEEN %s AND %s AND {live}",
                "number": f"SELECT {q('number')} FROM {t} WHERE {q('key_hash')} = %s",
                "clear": f"DELETE FROM {t} WHERE {q('location')} = %s",
                "cull_expired": f"DELETE FROM {t} WHERE {q('key_hash')} IN (SELECT "
                f"{q('key_hash')} FROM {t} WHERE {q('location')} = %s AND "
                f"{q('expires_at')} <= %s LIMIT %s)",
                "count": f"SELECT COUNT(*) FROM {t} WHERE {q('location')} = %s",
                "cull_soonest": f"DELETE FROM {t} WHERE {q('key_hash')} IN (SELECT "
                f"{q('key_hash')} FROM {t} WHERE {q('location')} = %s AND "
                f"{q('expires_at')} IS NOT NULL ORDER BY {q('expires_at')} LIMIT %s)",
                "cull_forever": f"DELETE FROM {t} WHERE {q('key_hash')} IN (SELECT "
                f"{q('key_hash')} FROM {t} WHERE {q('location')} = %s AND "
                f"{q('expires_at')} IS NULL LIMIT %s)",
                "scan": f"SELECT {q('key_hash')}, {q('cache_key')} FROM {t} WHERE "
                f"{q('location')} = %s AND {q('cache_key')} LIKE %s ESCAPE '\\' AND "
                f"{q('key_hash')} > %s ORDER BY {q('key_hash')} LIMIT %s",
            }
        return self._sql

    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator[Any]:
        connection = connections[self.alias]
        if connection.in_atomic_block:
            # A savepoint: a failing statement must not doom the caller's transaction.
            with transaction.atomic(using=self.alias), connection.cursor() as cursor:
                yield cursor
        elif write and connection.vendor == "sqlite":
            # Take SQLite's write lock up front, waiting on its busy timeout: a write that
            # starts as a read can find its snapshot stale and fail at once with
            # "database is locked" when another connection wrote meanwhile.
            with connection.cursor() as cursor:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
        else:
            with connection.cursor() as cursor:
                yield cursor

    @staticmethod
    def _row(value: Any, number: int | None, expires_at: float | None) -> Row:
        if number is not None:
            return number, expires_at
        return bytes(value), expires_at

    # Reads ----------------------------------------------------------------------------

    def get(self, key: str) -> Row | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Row]:
        hashes = {self.key_hash(key): key for key in keys if self.holds(key)}
        found: dict[str, Row] = {}
        if not hashes:
            return found
        now = time.time()
        items = list(hashes)
        with self._cursor() as cursor:
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                sql = self.sql["select"].replace("{marks}", ", ".join(["%s"] * len(chunk)))
                cursor.execute(sql, chunk)
                for key_hash, value, number, expires_at in cursor.fetchall():
                    if expires_at is None or expires_at > now:
                        found[hashes[key_hash]] = self._row(value, number, expires_at)
        return found

    # Writes ---------------------------------------------------------------------------

    def _params(self, key: str, data: bytes | int, expires_at: float | None) -> list[Any]:
        if isinstance(data, int):
            return [self.key_hash(key), self.location, key, b"", data, expires_at]
        return [self.key_hash(key), self.location, key, data, None, expires_at]

    def set(self, key: str, data: bytes | int, expires_at: float | None) -> None:
        self.set_many([(key, data, expires_at)])

    def set_many(self, items: Sequence[tuple[str, bytes | int, float | None]]) -> None:
        items = [item for item in items if self.holds(item[0])]
        if not items:
            return
        with self._cursor(write=True) as cursor:
            for start in range(0, len(items), CHUNK // 6):
                chunk = items[start : start + CHUNK // 6]
                params: list[Any] = []
                for key, data, expires_at in chunk:
                    params += self._params(key, data, expires_at)
                values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
                cursor.execute(self.sql["upsert"].replace("{values}", values), params)

    def add(self, key: str, data: bytes | int, expires_at: float | None) -> bool:
        """Insert unless a live row exists (an expired row is taken over); atomic.

        A key the table cannot hold is added as if evicted at once: it was never there.
        """
        if not self.holds(key):
            return True
        with self._cursor(write=True) as cursor:
            cursor.execute(self.sql["add"], [*self._params(key, data, expires_at), time.time()])
            return cursor.rowcount > 0

    def set_if_present(self, key: str, data: bytes | int) -> bool:
        """Replace the value of a live row, keeping its expiry."""
        if not self.holds(key):
            return False
        number = data if isinstance(data, int) else None
        value = b"" if number is not None else data
        with self._cursor(write=True) as cursor:
            cursor.execute(
                self.sql["set_if_present"], [value, number, self.key_hash(key), time.time()]
            )
            return cursor.rowcount > 0

    def delete_many(self, keys: Sequence[str]) -> int:
        hashes = [self.key_hash(key) for key in keys if self.holds(key)]
        deleted = 0
        if not hashes:
            return deleted
        with self._cursor(write=True) as cursor:
            for start in range(0, len(hashes), CHUNK):
                chunk = hashes[start : start + CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(self.sql["delete"].replace("{marks}", marks), chunk)
                deleted += cursor.rowcount
        return deleted

    def touch(self, key: str, expires_at: float | None) -> bool:
        if not self.holds(key):
            return False
        with self._cursor(write=True) as cursor:
            cursor.execute(self.sql["touch"], [expires_at, self.key_hash(key), time.time()])
            return cursor.rowcount > 0

    def incr(self, key: str, delta: int) -> Any:
        """The new value; None if there is no live row; NOT_INTEGER if SQL cannot add to it."""
        if not self.holds(key):
            return None
        low, high = (INT64_MIN, INT64_MAX - delta) if delta >= 0 else (INT64_MIN - delta, INT64_MAX)
        key_hash = self.key_hash(key)
        # The bounds keep the sum inside 64 bits (SQLite would silently turn it into a REAL).
        params = [delta, key_hash, low, high, time.time()]
        if connections[self.alias].features.can_return_columns_from_insert:
            with self._cursor(write=True) as cursor:  # one statement: atomic by itself
                cursor.execute(self.sql["incr"] + " RETURNING " + self._quote("number"), params)
                row = cursor.fetchone()
            if row is not None:
                return row[0]
        else:
            connection = connections[self.alias]
            with transaction.atomic(using=self.alias), connection.cursor() as cursor:
                cursor.execute(self.sql["incr"], params)
                if cursor.rowcount:
                    cursor.execute(self.sql["number"], [key_hash])
                    return cursor.fetchone()[0]
        return NOT_INTEGER if self.get(key) is not None else None

    def _quote(self, name: str) -> str:
        return connections[self.alias].ops.quote_name(name)

    def clear(self) -> None:
        with self._cursor(write=True) as cursor:
            cursor.execute(self.sql["clear"], [self.location])

    def delete_pattern(
        self,
        pattern: str,
        regex: re.Pattern[str],
        *,
        dry_run: bool = False,
        progress: Callable[[int, int | None, int], None] | None = None,
    ) -> int:
        """Delete rows whose key matches the glob ``pattern`` (``regex`` is its compiled form).

        Rows are read ``CULL_BATCH`` at a time in primary-key order, narrowed by an
        escaped LIKE and checked against ``regex``; each page's matches are deleted
        in one statement. ``dry_run`` only counts. ``progress(scanned, None,
        matched)`` is called after each page.
        """
        like = glob_to_like(pattern)
        after = ""
        deleted = scanned = 0
        while True:
            with self._cursor() as cursor:
                cursor.execute(self.sql["scan"], [self.location, like, after, self.cull_batch])
                rows = cursor.fetchall()
            if not rows:
                return deleted
            after = rows[-1][0]
            scanned += len(rows)
            doomed = [key for _, key in rows if regex.fullmatch(key)]
            if doomed:
                deleted += len(doomed) if dry_run else self.delete_many(doomed)
            if progress is not None:
                progress(scanned, None, deleted)

    def count(self) -> int:
        """Rows of this store (what ``clear()`` would drop), expired or not."""
        with self._cursor() as cursor:
            cursor.execute(self.sql["count"], [self.location])
            return cursor.fetchone()[0]

    # Culling --------------------------------------------------------------------------

    def cull_due(self) -> bool:
        return time.monotonic() >= self._next_cull

    def cull(self) -> tuple[int, int]:
        """Delete up to CULL_BATCH expired rows, then rows over MAX_ENTRIES; (expired, evicted)."""
        self._next_cull = time.monotonic() + self.cull_interval
        sql = self.sql
        evicted = 0
        with self._cursor(write=True) as cursor:
            cursor.execute(sql["cull_expired"], [self.location, time.time(), self.cull_batch])
            expired = max(cursor.rowcount, 0)
            if self.max_entries is not None:
                cursor.execute(sql["count"], [self.location])
                excess = min(cursor.fetchone()[0] - self.max_entries, self.cull_batch)
                for statement in ("cull_soonest", "cull_forever"):
                    if excess <= 0:
                        break
                    cursor.execute(sql[statement], [self.location, excess])
                    evicted += max(cursor.rowcount, 0)
                    excess -= max(cursor.rowcount, 0)
        self.expirations += expired
        self.evictions += evicted
        return expired, evicted
