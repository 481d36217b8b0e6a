"""L3: the cache table, its culling in bounded batches, and its manners inside transactions."""

from __future__ import annotations

import time
import warnings

import pytest
from django.core.cache import CacheKeyWarning
from django.db import connection, transaction

from django_perf.cache.models import CacheEntry
from django_perf.cache.tiers.database import DatabaseTier, literal_prefix
from django_perf.cache.tiers.memory import glob_to_regex
from testproject.blog.models import Tag
from tests.cache.conftest import DATABASE, MEMORY

pytestmark = pytest.mark.django_db


def test_rows_hold_the_key_the_signed_payload_and_the_expiry(make_cache):
    cache = make_cache(DATABASE, location="rows")
    cache.set("k", ["v"], timeout=60)
    cache.set("n", 7, timeout=None)
    rows = {row.cache_key: row for row in CacheEntry.objects.all()}
    assert set(rows) == {":1:k", ":1:n"}
    assert rows[":1:k"].location == "rows"
    assert rows[":1:k"].expires_at == pytest.approx(time.time() + 60, abs=1)
    assert bytes(rows[":1:k"].value)[:1] == b"\x9d"  # a signed payload, not a bare pickle
    assert (rows[":1:n"].number, rows[":1:n"].expires_at) == (7, None)


def test_keys_of_any_length_and_alphabet(make_cache):
    cache = make_cache(DATABASE)
    key = "ключ/🔑 " * 200
    with pytest.warns(CacheKeyWarning):  # Django's portability warning, as for every backend
        cache.set(key, "v")
    with pytest.warns(CacheKeyWarning):
        assert cache.get(key) == "v"
    assert len(CacheEntry.objects.get().key_hash) == 40


@pytest.mark.django_db(transaction=True)
def test_keys_the_table_cannot_hold_skip_it_without_counting_as_faults(make_cache, caplog):
    # A NUL (PostgreSQL's text refuses it) or a lone surrogate (not UTF-8) from a request
    # must not fail statements: failures in a row would open the breaker for every key.
    cache = make_cache(MEMORY, DATABASE, location="unholdable", STRICT=True)
    other = make_cache(DATABASE, location="unholdable", STRICT=True)  # another process: no L1
    nul_kept = connection.vendor != "postgresql"  # SQLite keeps a NUL in TEXT
    caplog.set_level("DEBUG", logger="django_perf.cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        for i in range(5):
            cache.set(f"search:\x00{i}", "v", 60)
            cache.set(f"search:\ud800{i}", "v", 60)
        assert cache.get("search:\x000") == "v"  # L1 keeps it in this process
        assert (other.get("search:\x000") == "v") is nul_kept
        assert other.get("search:\ud8000") is None
        assert other.add("search:\ud8000", "v") is True
        assert other.touch("search:\ud8000") is False
        assert other.delete("search:\ud8000") is False
        with pytest.raises(ValueError, match="not found"):
            other.incr("search:\ud8000")
    cache.set("good", "value", 60)
    assert other.get("good") == "value"
    assert cache.stats()["database"]["errors"] == 0
    assert cache.stats()["database"]["breaker"] == "closed"
    assert caplog.text.count("cannot store the key") == 2  # once per store: cache, other


@pytest.mark.django_db(transaction=True)
def test_a_key_only_l1_can_hold_answers_incr_and_touch_as_get_does(make_cache):
    # The key lives in L1 only (a lone surrogate: no database can hold it): incr and touch
    # must find it where get() and has_key() do, not report it missing.
    cache = make_cache(MEMORY, DATABASE, location="l1-only-key", STRICT=True)
    key = "hits:\ud800q"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        cache.set(key, 1, 300)
        assert cache.has_key(key)
        assert cache.incr(key) == 2
        assert cache.decr(key, 5) == -3
        assert cache.touch(key, 600) is True
        assert cache.get(key) == -3
    assert cache.stats()["database"]["errors"] == 0


def test_stores_with_different_locations_are_separate_and_clear_only_their_rows(make_cache):
    one = make_cache(DATABASE, location="one")
    two = make_cache(DATABASE, location="two")
    one.set("k", 1)
    two.set("k", 2)
    assert (one.get("k"), two.get("k")) == (1, 2)
    one.clear()
    assert (one.get("k"), two.get("k")) == (None, 2)


def test_expired_rows_are_culled_in_bounded_batches(make_cache):
    cache = make_cache(DATABASE, location="cull")
    tier = cache._store.database
    tier.cull_batch = 2
    cache.set_many({f"k{i}": i for i in range(5)}, timeout=100)
    cache.set("live", 1, timeout=100)
    CacheEntry.objects.exclude(cache_key=":1:live").update(expires_at=time.time() - 1)
    assert tier.cull() == (2, 0)
    assert tier.cull() == (2, 0)
    assert tier.cull() == (1, 0)
    assert list(CacheEntry.objects.values_list("cache_key", flat=True)) == [":1:live"]
    assert cache.stats()["database"]["expirations"] == 5


def test_past_max_entries_the_rows_closest_to_expiry_go_first(make_cache):
    cache = make_cache({"KIND": "database", "MAX_ENTRIES": 3, "CULL_INTERVAL": 3600})
    tier = cache._store.database
    cache.set("forever", 0, timeout=None)
    for i in range(1, 6):
        cache.set(f"k{i}", i, timeout=100 * i)
    assert tier.cull() == (0, 3)
    assert sorted(CacheEntry.objects.values_list("cache_key", flat=True)) == [
        ":1:forever",
        ":1:k4",
        ":1:k5",
    ]
    assert cache.stats()["database"]["evictions"] == 3


def test_writes_cull_at_most_once_per_interval(make_cache):
    cache = make_cache({"KIND": "database", "MAX_ENTRIES": 2, "CULL_INTERVAL": 0})
    for i in range(5):
        cache.set(f"k{i}", i)
    assert CacheEntry.objects.count() == 2  # culled on each write (interval 0)
    slow = make_cache({"KIND": "database", "MAX_ENTRIES": 2, "CULL_INTERVAL": 3600})
    for i in range(5):
        slow.set(f"s{i}", i)
    # The first write culled (nothing to do yet); the next cull is an hour away.
    assert CacheEntry.objects.filter(location=slow._store.config.name).count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_failing_cache_statement_does_not_break_the_callers_transaction(make_cache, caplog):
    cache = make_cache(MEMORY, DATABASE)
    tier = cache._store.database
    tier.sql["upsert"] = "INSERT INTO no_such_table VALUES {values}"
    with transaction.atomic():
        Tag.objects.create(name="before")
        cache.set("k", "v")  # fails in its savepoint; L1 still gets the value
        Tag.objects.create(name="after")
    assert Tag.objects.count() == 2
    assert cache.get("k") == "v"
    assert cache.stats()["database"]["errors"] == 1
    assert "the database tier failed on set" in caplog.text
    assert "no_such_table" in caplog.text


def test_cache_rows_roll_back_with_the_callers_transaction(make_cache):
    cache = make_cache(DATABASE)
    seen = []

    def write_then_fail() -> None:
        with transaction.atomic():
            cache.set("k", "v")
            seen.append(cache.get("k"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert seen == ["v"]
    assert cache.get("k") is None


def test_incr_in_sql_stays_within_64_bits(make_cache):
    cache = make_cache(DATABASE)
    cache.set("n", 2**63 - 2)
    assert cache.incr("n") == 2**63 - 1
    assert CacheEntry.objects.get().number == 2**63 - 1
    assert cache.incr("n") == 2**63  # past 64 bits: read, add, write a pickled payload
    row = CacheEntry.objects.get()
    assert row.number is None
    assert cache.get("n") == 2**63
    assert cache.decr("n", 2**63) == 0


@pytest.mark.parametrize("strict", [True, False])
def test_incr_by_a_delta_past_64_bits(make_cache, strict):
    # SQLite cannot bind such a delta; it is added in Python, as with a float delta.
    cache = make_cache(MEMORY, DATABASE, location="big-delta", STRICT=strict)
    other = make_cache(DATABASE, location="big-delta", STRICT=strict)  # another process
    cache.set("n", 5)
    assert cache.incr("n", 2**70) == 5 + 2**70
    assert other.get("n") == 5 + 2**70
    assert other.decr("n", 2**70) == 5
    assert cache.stats()["database"]["errors"] == 0


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("user:*", "user:"),
        ("a?b", "a"),
        (r"x\*y*", "x*y"),
        ("[ab]c", ""),
        ("100%_off*", "100%_off"),
    ],
)
def test_literal_prefix_of_a_glob(pattern, prefix):
    assert literal_prefix(pattern) == prefix


def test_delete_by_pattern_in_the_table(make_cache):
    cache = make_cache(DATABASE, location="patterns")
    other = make_cache(DATABASE, location="elsewhere")
    cache.set_many({"user:1": 1, "user:2": 2, "User:3": 3, "post:1": 4, "user_x": 5})
    other.set("user:1", 1)
    tier: DatabaseTier = cache._store.database
    tier.cull_batch = 2  # several scan pages
    pattern = ":1:user:*"
    assert tier.delete_pattern(pattern, glob_to_regex(pattern)) == 2
    assert cache.get_many(["user:1", "user:2", "User:3", "post:1", "user_x"]) == {
        "User:3": 3,
        "post:1": 4,
        "user_x": 5,
    }
    assert other.get("user:1") == 1


def test_an_escaped_bracket_in_a_class_is_matched_as_redis_matches_it(make_cache):
    cache = make_cache(DATABASE)
    cache.set_many({"a]": 1, "a\\]": 2, "a]b": 3})
    tier: DatabaseTier = cache._store.database
    for pattern in (":1:a[\\]]", ":1:a[x\\]]b"):  # "[\]]": one class holding "]"
        assert tier.delete_pattern(pattern, glob_to_regex(pattern)) == 1
    assert cache.get_many(["a]", "a\\]", "a]b"]) == {"a\\]": 2}


def test_the_table_is_indexed_for_expiry():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "django_perf_cache_entry")
    assert constraints["django_perf_cache_expiry"]["columns"] == ["location", "expires_at"]
    assert constraints["django_perf_cache_expiry"]["index"]
