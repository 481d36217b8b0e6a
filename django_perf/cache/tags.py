"""Tags: invalidate everything cached under a name in O(1), with generation counters.

Each tag has a generation: a random 62-bit integer kept in the cache itself
under ``djp:tag:<name>`` (so in every tier, and in every process's L1, kept
coherent like any other key). A value cached under tags is stored at a key
that folds in the current generations of its tags. Invalidating a tag writes
a new generation: one ``set``, whatever the number of entries under the tag.
Entries under the old generation are never read again and expire on their
own (or are evicted first by L1's and Redis's LRU).

A lost generation (evicted, culled, Redis flushed) is replaced by a fresh
random one, never by a number that was used before, so it cannot bring old
entries back.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.core.cache import caches

__all__ = [
    "TAG_PREFIX",
    "atagged_key",
    "check_tags",
    "fold",
    "generations",
    "generations_in",
    "invalidate_tags",
    "tag_key",
    "tagged_key",
]

TAG_PREFIX = "djp:tag:"


def _new_generation() -> int:
    return secrets.randbits(62)


def check_tags(tags: Any, what: str = "tags") -> list[str]:
    """Sorted, distinct tag names; ValueError for a bare string or a name that is not one."""
    if isinstance(tags, str | bytes):
        raise ValueError(
            f"{what} must be a list of names, not one string; write {what}=[{tags!r}]."
        )
    names = set()
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(
                f"{what} must be non-empty strings such as 'articles'; got {tag!r} "
                f"({type(tag).__name__})."
            )
        names.add(tag)
    return sorted(names)


def tag_key(tag: str) -> str:
    """The cache key (before prefix and version) holding ``tag``'s generation."""
    return TAG_PREFIX + tag


def fold(key: str, gens: list[int]) -> str:
    """``key`` with its tags' generations folded in: ``key#t<hex>``."""
    if len(gens) == 1:
        return f"{key}#t{gens[0]:x}"
    digest = hashlib.blake2b(b",".join(b"%x" % gen for gen in gens), digest_size=10).hexdigest()
    return f"{key}#t{digest}"


def _resolve(cache: Any, keys: list[str], found: dict[str, Any]) -> list[int]:
    gens = []
    for key in keys:
        gen = found.get(key)
        if not isinstance(gen, int):
            fresh = _new_generation()
            # add(): two processes starting the same tag agree on one generation.
            if cache.add(key, fresh, None):
                gen = fresh
            else:
                gen = cache.get(key)
                if not isinstance(gen, int):
                    gen = fresh  # no tier answers: a key nobody else can have
        gens.append(gen)
    return gens


def generations(tags: Iterable[str], *, alias: str = "default") -> list[int]:
    """Current generations of ``tags`` (sorted by name), starting the missing ones."""
    return generations_in(caches[alias], sorted(set(tags)))


def generations_in(cache: Any, names: list[str]) -> list[int]:
    """Generations of ``names`` (sorted, distinct tag names) in ``cache``."""
    if len(names) == 1:
        key = tag_key(names[0])
        gen = cache.get(key)
        if isinstance(gen, int):
            return [gen]
        return _resolve(cache, [key], {})
    keys = [tag_key(tag) for tag in names]
    return _resolve(cache, keys, cache.get_many(keys))


def tagged_key(key: str, tags: Iterable[str], *, alias: str = "default") -> str:
    """The key to store ``key`` at so that invalidating any of ``tags`` drops it.

    ::

        key = tagged_key("home:articles", ["articles"])
        articles = cache.get(key)
        if articles is None:
            articles = list(Article.objects.published()[:20])
            cache.set(key, articles, 300)
    """
    names = check_tags(tags)
    if not names:
        return key
    return fold(key, generations(names, alias=alias))


async def atagged_key(key: str, tags: Iterable[str], *, alias: str = "default") -> str:
    """``tagged_key`` for async code (reads the generations with the cache's async API)."""
    names = check_tags(tags)
    if not names:
        return key
    cache = caches[alias]
    keys = [tag_key(tag) for tag in names]
    found = await cache.aget_many(keys)
    if len(found) == len(keys) and all(isinstance(v, int) for v in found.values()):
        return fold(key, [found[k] for k in keys])
    from asgiref.sync import sync_to_async

    gens = await sync_to_async(_resolve, thread_sensitive=True)(cache, keys, found)
    return fold(key, gens)


def invalidate_tags(tags: Iterable[str], *, alias: str = "default") -> int:
    """Give each tag a new generation (one write per tag); returns how many tags."""
    names = check_tags(tags)
    if names:
        caches[alias].set_many({tag_key(tag): _new_generation() for tag in names}, None)
    return len(names)
