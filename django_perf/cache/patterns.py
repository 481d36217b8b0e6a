"""Glob patterns over cache keys: checking them and placing them in a cache's prefix and version.

A user writes patterns against the keys they pass to ``cache.set()``
(``"article:*"``). Stored keys carry the cache's ``KEY_PREFIX`` and
``VERSION`` (``"prefix:1:article:12"``), so :func:`stored_pattern` wraps the
user's glob in the cache's own key format, with the prefix and version
escaped so that a ``*`` or ``[`` in them is matched literally. The syntax is
Redis's: ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]`` and backslash escapes.
"""

from __future__ import annotations

import re
from typing import Any

from .tiers.memory import glob_class, glob_to_regex

__all__ = ["check_pattern", "escape_glob", "matches_everything", "stored_pattern"]

_SPECIAL = re.compile(r"([*?\[\]\\])")
_PROBE = "\x00django-perf-pattern\x00"


def escape_glob(text: str) -> str:
    """``text`` as a glob that matches exactly ``text``."""
    return _SPECIAL.sub(r"\\\1", text)


def check_pattern(pattern: Any) -> str:
    """``pattern`` if it is a well-formed glob; else a ValueError that says how to fix it."""
    if not isinstance(pattern, str):
        raise ValueError(
            f"A pattern must be a string such as 'article:*'; got {pattern!r} "
            f"({type(pattern).__name__})."
        )
    if not pattern:
        raise ValueError(
            "A pattern cannot be empty. Use 'article:*' for keys starting with 'article:', "
            "or everything=True (--all) to drop every entry."
        )
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 == n:
                raise ValueError(
                    f"The pattern {pattern!r} ends with a lone backslash, which escapes "
                    "nothing; write '\\\\' for a literal backslash."
                )
            i += 2
            continue
        if char == "[":
            # Read as Redis reads it (e.g. "[\\]]" is one class holding "]"), so that every
            # tier agrees on where the class ends.
            found = glob_class(pattern, i)
            if found is None:
                raise ValueError(
                    f"The pattern {pattern!r} has an unclosed '[' at position {i}; close the "
                    "character class (e.g. '[0-9]') or escape a literal bracket as '\\['."
                )
            if not found[1]:
                raise ValueError(
                    f"The pattern {pattern!r} has an empty character class '[]' at position "
                    f"{i}, which matches nothing; list the characters to match (e.g. '[ab]')."
                )
            i = found[2] + 1
            continue
        i += 1
    try:
        glob_to_regex(pattern)
    except re.error as error:
        raise ValueError(
            f"The pattern {pattern!r} is not a valid glob ({error}); a range must go "
            "upwards, e.g. '[a-z]', not '[z-a]'."
        ) from None
    return pattern


def matches_everything(pattern: str) -> bool:
    """Whether ``pattern`` matches every key of the cache: only wildcards, at least one ``*``
    (``*``, ``?*``, ``*?*``; a key is never empty, so ``?`` adds nothing)."""
    return "*" in pattern and set(pattern) <= {"*", "?"}


def key_frame(cache: Any, version: int | None = None) -> tuple[str, str]:
    """What a cache puts before and after a user's key, e.g. ``("prefix:1:", "")``.

    Raises ValueError if the cache's ``KEY_FUNCTION`` does not keep the key
    readable in the stored key (e.g. it hashes it): then no glob can reach it.
    """
    made = cache.make_key(_PROBE, version=version)
    before, found, after = made.partition(_PROBE)
    if not found:
        raise ValueError(
            "Pattern invalidation needs stored keys that contain the key given to "
            "cache.set(); this cache's KEY_FUNCTION changes it (e.g. hashes it). Invalidate "
            "by key or by tag instead, or use a KEY_FUNCTION that keeps the key."
        )
    return before, after


def stored_pattern(cache: Any, pattern: str, version: int | None = None) -> str:
    """The glob over stored keys that matches ``pattern`` within the cache's prefix and version."""
    before, after = key_frame(cache, version)
    return escape_glob(before) + check_pattern(pattern) + escape_glob(after)
