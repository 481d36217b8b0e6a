"""L2: Redis, through django-redis's client and connection pools.

django-redis builds the connections: its ``CLIENT_CLASS`` (the default client
or the Sentinel client), connection factory, pool class and pool kwargs,
replicas (a list of URLs, primary first; reads go to replicas), socket
timeouts, username and password. This tier only issues commands on the raw
``redis.Redis`` objects django-redis hands out, because it stores already
signed payloads and must not let django-redis pickle them again.

Writes are the plain commands django-redis would send (``SET``, ``UNLINK``);
only ``touch`` (which rewrites the payload's expiry), ``incr`` (only if
the key exists) and ``retract`` (delete only if unchanged) are short Lua
scripts. Invalidation messages are published separately, in batches, by the
coherence channel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..codec import FORMAT
from . import NOT_INTEGER

__all__ = ["RedisTier"]

DEFAULT_CLIENT = "django_redis.client.DefaultClient"
UNSUPPORTED_CLIENTS = {
    "django_redis.client.sharded.ShardClient": "client-side sharding",
    "django_redis.client.herd.HerdClient": "the herd client's value wrapping",
}
DELETE_CHUNK = 1000

# KEYS[1] key; ARGV: px (0 = never expire), 8 expiry bytes for the payload header.
# Signed payloads get their header's expiry rewritten in place; integers just get a TTL.
TOUCH_SCRIPT = f"""
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local px = tonumber(ARGV[1])
if string.byte(v, 1) == {FORMAT} then
  v = string.sub(v, 1, 2) .. ARGV[2] .. string.sub(v, 11)
  if px > 0 then redis.call('SET', KEYS[1], v, 'PX', px)
  else redis.call('SET', KEYS[1], v) end
else
  if px > 0 then redis.call('PEXPIRE', KEYS[1], px)
  else redis.call('PERSIST', KEYS[1]) end
end
return 1
"""

# KEYS[1] key; ARGV[1] delta. An existing key only; errors (not an integer) abort the script.
# Returns the stored digits: INCRBY's reply reaches Lua as a double, exact only up to 2**53.
INCR_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""

# KEYS: keys; ARGV: the value each must still hold. Unlinks those that hold it; returns how many.
RETRACT_SCRIPT = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('UNLINK', key)
    n = n + 1
  end
end
return n
"""


def _px(ttl: float | None) -> int | None:
    """Milliseconds for PX (None: keep forever); ``ttl`` is seconds, positive."""
    if ttl is None:
        return None
    return max(1, int(ttl * 1000))


class RedisTier:
    """Raw-bytes operations on Redis with django-redis's connections."""

    kind = "redis"
    shared = True

    def __init__(self, location: str | Sequence[str], options: dict[str, Any]) -> None:
        try:
            import django_redis  # noqa: F401
            from redis.exceptions import ResponseError
        except ImportError as error:
            raise ImproperlyConfigured(
                'The Redis tier needs django-redis: pip install "django-perf[redis]".'
            ) from error
        self._response_error = ResponseError
        options = dict(options)
        # A cache must fail fast: bounded waits unless the user chose others.
        options.setdefault("SOCKET_CONNECT_TIMEOUT", 1.0)
        options.setdefault("SOCKET_TIMEOUT", 1.0)
        client_path = options.get("CLIENT_CLASS", DEFAULT_CLIENT)
        client_cls = import_string(client_path) if isinstance(client_path, str) else client_path
        for path, what in UNSUPPORTED_CLIENTS.items():
            with contextlib.suppress(ImportError):
                if issubclass(client_cls, import_string(path)):
                    raise ImproperlyConfigured(
                        f"The Redis tier cannot use {path} ({what}); use "
                        f"{DEFAULT_CLIENT} or django_redis.client.SentinelClient."
                    )
        self.location = location
        servers = list(location) if isinstance(location, list | tuple) else location
        self._client = client_cls(servers, {"OPTIONS": options}, None)
        self._scripts: dict[str, Any] = {}
        self.scan_count = 1000

    # Connections ----------------------------------------------------------------------

    def writer(self) -> Any:
        """The primary's ``redis.Redis`` (django-redis caches it and its pool)."""
        return self._client.get_client(write=True)

    def reader(self) -> Any:
        """A replica's ``redis.Redis`` when replicas are configured, else the primary's."""
        return self._client.get_client(write=False)

    def connection_pools(self) -> list[Any]:
        """The redis-py pools behind this tier, one per server URL (primary first)."""
        factory = self._client.connection_factory
        return [
            factory.get_or_create_connection_pool(factory.make_connection_params(url))
            for url in self._client._server
        ]

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            from redis.commands.core import Script

            script = self._scripts[source] = Script(self.writer(), source)
        return script

    def _run(self, source: str, keys: list[Any], args: list[Any]) -> Any:
        return self._script(source)(keys=keys, args=args, client=self.writer())

    # Reads ----------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self.reader().get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.reader().mget(keys)

    def pttl(self, key: str) -> float | None:
        """Seconds left for ``key``: None if it never expires, 0.0 if it is gone."""
        left = self.reader().pttl(key)
        if left == -1:
            return None
        return max(left, 0) / 1000

    # Writes ----------------------------------------------------------------------------

    def set(self, key: str, data: bytes | int, ttl: float | None, *, nx: bool = False) -> bool:
        return bool(self.writer().set(key, data, px=_px(ttl), nx=nx))

    def set_many(
        self, items: Iterable[tuple[str, bytes | int, float | None]], *, nx: bool = False
    ) -> list[bool]:
        pipe = self.writer().pipeline(transaction=False)
        for key, data, ttl in items:
            pipe.set(key, data, px=_px(ttl), nx=nx)
        return [bool(result) for result in pipe.execute()]

    def promote_many(self, items: Iterable[tuple[str, bytes | int, float | None]]) -> list[bool]:
        """SET NX each item (values found in a lower tier), in one round trip."""
        return self.set_many(items, nx=True)

    def retract(self, items: Sequence[tuple[str, bytes | int]]) -> int:
        """Unlink each key that still holds the given data (a promotion taken back)."""
        if not items:
            return 0
        keys, data = zip(*items, strict=True)
        return int(self._run(RETRACT_SCRIPT, list(keys), list(data)))

    def delete_many(self, keys: Sequence[str]) -> int:
        client = self.writer()
        return sum(
            client.unlink(*keys[start : start + DELETE_CHUNK])
            for start in range(0, len(keys), DELETE_CHUNK)
        )

    def touch(self, key: str, ttl: float | None, header_expiry: bytes) -> bool:
        return bool(self._run(TOUCH_SCRIPT, [key], [_px(ttl) or 0, header_expiry]))

    def incr(self, key: str, delta: int) -> Any:
        """The new value; None if ``key`` is absent; NOT_INTEGER if Redis cannot add to it."""
        try:
            value = self._run(INCR_SCRIPT, [key], [delta])
        except self._response_error as error:
            text = str(error)
            if "not an integer" in text or "overflow" in text:
                return NOT_INTEGER
            raise
        return None if value is None else int(value)

    def clear(self) -> None:
        self.writer().flushdb()

    def delete_pattern(
        self,
        pattern: str,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int | None, int], None] | None = None,
    ) -> int:
        """UNLINK every key matching the glob ``pattern``; never KEYS.

        SCAN walks the keyspace ``scan_count`` keys per call; each page's
        matches are unlinked in the same pipeline as the next SCAN, so a page
        costs one round trip and Redis never blocks for longer than one page.
        ``dry_run`` only counts. ``progress(scanned, total, matched)`` is
        called after each page (``total``: DBSIZE when the scan began).
        """
        client = self.writer()
        total = client.dbsize() if progress is not None else None
        cursor: int | bytes = 0
        found: list[bytes] = []
        matched = scanned = deleted = 0
        while True:
            pipe = client.pipeline(transaction=False)
            if found and not dry_run:
                for start in range(0, len(found), DELETE_CHUNK):
                    pipe.unlink(*found[start : start + DELETE_CHUNK])
            pipe.scan(cursor, match=pattern, count=self.scan_count)
            *unlinked, (cursor, found) = pipe.execute()
            deleted += sum(unlinked)
            matched += len(found)
            scanned += self.scan_count
            if progress is not None:
                progress(min(scanned, total) if total else scanned, total, matched)
            if not int(cursor):
                break
        if found and not dry_run:
            for start in range(0, len(found), DELETE_CHUNK):
                deleted += client.unlink(*found[start : start + DELETE_CHUNK])
        # SCAN may return a key twice (while Redis rehashes); UNLINK counts it once.
        return matched if dry_run else deleted

    def count(self) -> int:
        """Keys in the Redis database (what ``clear()`` would drop)."""
        return self.writer().dbsize()

    def publish(self, channel: str, message: bytes) -> int:
        return self.writer().publish(channel, message)
