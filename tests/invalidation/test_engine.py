"""invalidate(): keys, patterns, tags and everything, tier by tier, with per-tier counts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.core.cache import caches

from django_perf.cache.invalidation import InvalidationReport, invalidate, tagged_key

pytestmark = pytest.mark.django_db


def where(cache: Any, key: str, version: int | None = None) -> set[str]:
    """The tiers holding a live ``key``, looked up in each tier directly."""
    made = cache.make_key(key, version=version)
    store = cache._store
    found = set()
    if store.memory is not None and store.memory.contains(made):
        found.add("memory")
    if store.redis is not None and store.redis.get(made) is not None:
        found.add("redis")
    if store.database is not None and store.database.get(made) is not None:
        found.add("database")
    return found


def test_keys_are_dropped_from_every_tier_and_counted(configure_cache, layout):
    cache = configure_cache(*layout)
    cache.set_many({"a": 1, "b": {"x": [2]}, "c": "kept"})
    assert where(cache, "a") == where(cache, "b") == set(layout)

    report = invalidate(keys=["a", "b", "never-set"])

    assert isinstance(report, InvalidationReport)
    assert report.per_tier == dict.fromkeys(layout, 2)
    assert list(report.per_tier) == list(layout)  # tier order
    assert report.total == 2 * len(layout)
    assert not report.dry_run
    assert not report.errors
    assert where(cache, "a") == where(cache, "b") == set()
    assert cache.get_many(["a", "b", "c"]) == {"c": "kept"}


def test_a_dry_run_counts_what_would_go_and_changes_nothing(configure_cache, layout):
    cache = configure_cache(*layout)
    cache.set_many({"user:1": 1, "user:2": 2, "post:1": 3})

    by_key = invalidate(keys=["user:1", "nope"], dry_run=True)
    by_pattern = invalidate(patterns=["user:*"], dry_run=True)
    everything = invalidate(everything=True, dry_run=True)

    assert by_key.dry_run
    assert by_key.per_tier == dict.fromkeys(layout, 1)
    assert by_pattern.per_tier == dict.fromkeys(layout, 2)
    assert {k: v for k, v in everything.per_tier.items() if k != "redis"} == {
        kind: 3 for kind in layout if kind != "redis"
    }
    if "redis" in layout:
        assert everything.per_tier["redis"] >= 3  # DBSIZE: the whole Redis database
    assert cache.get_many(["user:1", "user:2", "post:1"]) == {"user:1": 1, "user:2": 2, "post:1": 3}
    assert where(cache, "user:1") == set(layout)


@pytest.mark.redis
def test_tiers_limits_the_work_to_the_named_tiers(configure_cache):
    cache = configure_cache("memory", "redis", "database")
    cache.set("a", "v")

    report = invalidate(keys=["a"], tiers=["redis"])

    assert report.per_tier == {"redis": 1}
    assert where(cache, "a") == {"memory", "database"}
    assert any("memory tier was left out" in note for note in report.notes)

    report = invalidate(keys=["a"], tiers=["database", "memory"])
    assert report.per_tier == {"memory": 1, "database": 1}  # in tier order
    assert where(cache, "a") == set()


def test_patterns_drop_matching_keys_within_the_prefix_and_version(configure_cache, layout):
    cache = configure_cache(*layout, location="patterns-here")
    # Same store (same LOCATION and tiers), another key prefix: must not be touched.
    other = configure_cache(*layout, alias="other", location="patterns-here", KEY_PREFIX="other")
    assert other._store is cache._store
    store = cache._store
    if store.redis is not None:
        store.redis.scan_count = 7  # many SCAN pages
    if store.database is not None:
        store.database.cull_batch = 7  # many table pages
    users = {f"user:{i}": i for i in range(30)}
    cache.set_many({**users, "user:x:1": "x", "User:1": "case", "user_1": "_", "post:1": "p"})
    cache.set("user:1", "version 2", version=2)
    other.set_many({"user:1": "other", "user:2": "other"})

    report = invalidate(patterns=["user:*"])

    assert report.per_tier == dict.fromkeys(layout, 31)
    assert cache.get_many([*users, "user:x:1"]) == {}
    assert cache.get_many(["User:1", "user_1", "post:1"]) == {
        "User:1": "case",
        "user_1": "_",
        "post:1": "p",
    }
    assert cache.get("user:1", version=2) == "version 2"
    assert other.get_many(["user:1", "user:2"]) == {"user:1": "other", "user:2": "other"}


def test_glob_classes_single_characters_and_escapes(configure_cache, layout):
    cache = configure_cache(*layout)
    cache.set_many({"a1": 1, "a2": 2, "a3": 3, "ab": 4, "a*": 5, "a[1]": 6, "a%": 7, "a_": 8})
    per_tier = len(layout)

    assert invalidate(patterns=["a[12]"]).total == 2 * per_tier
    assert invalidate(patterns=["a[^3b]"]).total == 3 * per_tier  # a*, a%, a_
    assert invalidate(patterns=[r"a\[1]"]).total == per_tier  # the literal key a[1]
    assert cache.get_many(["a3", "ab"]) == {"a3": 3, "ab": 4}
    cache.set_many({"a*": 5, "ax": 9})
    assert invalidate(patterns=[r"a\*"]).total == per_tier  # the literal key a*, not ax
    assert invalidate(patterns=["a?"]).total == 3 * per_tier  # a3, ab, ax
    assert invalidate(everything=True, dry_run=True).per_tier["memory"] == 0


def test_a_prefix_with_glob_characters_is_matched_literally(configure_cache, layout):
    cache = configure_cache(*layout, location="literal-prefix", KEY_PREFIX="a*")
    other = configure_cache(*layout, alias="other", location="literal-prefix", KEY_PREFIX="abc")
    cache.set("k1", 1)
    other.set("k1", 2)

    assert invalidate(patterns=["k*"]).per_tier == dict.fromkeys(layout, 1)
    assert cache.get("k1") is None
    assert other.get("k1") == 2


def test_everything_clears_every_tier(configure_cache, layout):
    cache = configure_cache(*layout)
    cache.set_many({"a": 1, "b": 2})

    report = invalidate(everything=True)

    assert report.per_tier["memory"] == 2
    if "database" in layout:
        assert report.per_tier["database"] == 2
    if "redis" in layout:
        assert report.per_tier["redis"] >= 2
        assert any("FLUSHDB" in note for note in report.notes)
    assert where(cache, "a") == where(cache, "b") == set()


def test_a_tag_is_invalidated_with_one_write_whatever_lies_under_it(configure_cache, layout):
    cache = configure_cache(*layout)
    key = tagged_key("home", ["articles"])
    cache.set(key, "page")
    assert cache.get(tagged_key("home", ["articles"])) == "page"

    report = invalidate(tags=["articles"])

    assert report.tags == 1
    assert report.total == 0  # entries are not visited: they became unreachable
    assert tagged_key("home", ["articles"]) != key
    assert cache.get(tagged_key("home", ["articles"])) is None


@pytest.mark.redis
def test_a_failing_tier_is_reported_and_the_others_are_still_done(configure_cache, redis_server):
    cache = configure_cache("memory", "redis", "database", STRICT=False)
    cache.set_many({"a": 1, "b": 2})
    redis_server.stop()
    try:
        report = invalidate(keys=["a"])
    finally:
        redis_server.start()

    assert "ConnectionError" in report.errors["redis"]
    # (L1 may already have been flushed by the lost channel, so its count is 0 or 1.)
    assert report.per_tier["redis"] == 0
    assert report.per_tier["database"] == 1
    # The failed delete is remembered and replayed before Redis serves again.
    store = cache._store
    store.breakers["redis"].probe_now()
    assert cache.get("a") is None
    assert store.redis.get(cache.make_key("a")) is None
    assert cache.get("b") == 2


def test_a_backend_without_tiers_is_invalidated_through_the_cache_api(configure_cache, settings):
    configure_cache("memory")
    settings.CACHES = {
        **settings.CACHES,
        "plain": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "p"},
    }
    plain = caches["plain"]
    plain.set_many({"a": 1, "b": 2})

    report = invalidate(keys=["a", "c"], alias="plain")

    assert report.per_tier == {"cache": 1}
    assert plain.get_many(["a", "b"]) == {"b": 2}
    assert invalidate(tags=["t"], alias="plain").tags == 1
    with pytest.raises(ValueError, match="cannot delete by pattern"):
        invalidate(patterns=["a*"], alias="plain")
    with pytest.raises(ValueError, match="has no tiers"):
        invalidate(keys=["a"], alias="plain", tiers=["memory"])
    invalidate(everything=True, alias="plain")
    assert plain.get("b") is None


def test_patterns_on_a_cache_that_hashes_its_keys_fail_before_anything_is_dropped(
    configure_cache,
):
    def hashed_key(key: str, key_prefix: str, version: int) -> str:
        return hashlib.sha1(f"{key_prefix}:{version}:{key}".encode()).hexdigest()

    cache = configure_cache("memory", "database", KEY_FUNCTION=hashed_key)
    cache.set("a", 1)
    with pytest.raises(ValueError, match="KEY_FUNCTION changes it"):
        invalidate(keys=["a"], patterns=["a*"])
    assert cache.get("a") == 1


def test_the_report_is_json_serializable(configure_cache):
    configure_cache("memory", "database")
    caches["default"].set("a", 1)
    data = invalidate(keys=["a"], tags=["t"], dry_run=True).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "alias": "default",
        "dry_run": True,
        "per_tier": {"memory": 1, "database": 1},
        "total": 2,
        "tags": 1,
        "notified": None,
        "rows": None,
        "missing_pks": [],
        "errors": {},
        "notes": [
            "There is no Redis invalidation channel, so only this process's L1 was cleared; "
            "other processes keep their L1 copies until they expire (at most 30 s, the "
            "memory tier's MAX_TIMEOUT)."
        ],
    }


BAD_ARGUMENTS = [
    ({}, ValueError, "Nothing to invalidate: pass keys="),
    ({"keys": "abc"}, ValueError, r"not one string; write keys=\['abc'\]"),
    ({"keys": [1]}, ValueError, "keys must hold non-empty strings; got 1"),
    ({"keys": [""]}, ValueError, "non-empty strings"),
    ({"patterns": ["user:["]}, ValueError, r"unclosed '\[' at position 5"),
    ({"patterns": [""]}, ValueError, "cannot be empty"),
    ({"patterns": ["a\\"]}, ValueError, "lone backslash"),
    ({"patterns": ["[]x"]}, ValueError, r"empty character class"),
    ({"patterns": ["[z-a]"]}, ValueError, "a range must go upwards"),
    ({"tags": "articles"}, ValueError, r"write tags=\['articles'\]"),
    ({"tags": [None]}, ValueError, "non-empty strings"),
    ({"keys": ["a"], "tiers": ["disk"]}, ValueError, "Unknown tier 'disk'; tiers are named"),
    ({"keys": ["a"], "tiers": ["redis"]}, ValueError, "has no redis tier; its tiers are memory"),
    ({"keys": ["a"], "tiers": []}, ValueError, "tiers is empty"),
    ({"keys": ["a"], "tiers": "memory"}, ValueError, r"write tiers=\['memory'\]"),
    ({"keys": ["a"], "alias": "nope"}, LookupError, "No cache alias 'nope'.*'default'"),
    ({"model": "blog.Nope"}, LookupError, "No installed model 'blog.Nope'"),
    ({"model": "Article"}, ValueError, "'app_label.ModelName'"),
    ({"model": 42}, ValueError, "a model class or 'app_label.ModelName'"),
    ({"model": "blog.Comment"}, ValueError, "blog.Comment has no invalidation registrations"),
    ({"pks": [1]}, ValueError, "pks need a model"),
    ({"everything": True, "keys": ["a"]}, ValueError, "pass it alone"),
    ({"tags": ["t"], "tiers": ["memory"]}, ValueError, "leave tiers out when passing tags"),
]


@pytest.mark.parametrize(("arguments", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments_say_what_to_pass_instead(configure_cache, arguments, error, message):
    configure_cache("memory", "database")
    with pytest.raises(error, match=message):
        invalidate(**arguments)
