"""L1: LRU with per-entry expiry, bounded by entries and bytes, and its coherence bookkeeping."""

from __future__ import annotations

import pickle
import sys
import time

import pytest

from django_perf.cache.codec import Encoded
from django_perf.cache.tiers.memory import MemoryTier, glob_to_regex
from django_perf.tally import tallying

MISSING = object()


def memory(**options) -> MemoryTier:
    return MemoryTier(loads=pickle.loads, **options)


def obj(value) -> Encoded:
    return Encoded(value, None)


def raw(value) -> Encoded:
    return Encoded(None, pickle.dumps(value))


def test_least_recently_used_entries_go_first():
    l1 = memory(max_entries=3, cull_frequency=3)
    for key in "abc":
        l1.set(key, obj(key), None)
    assert l1.get("a", MISSING) == "a"  # a is now the most recent
    l1.set("d", obj("d"), None)  # full: the least recent (b) goes
    assert [k for k in "abcd" if l1.get(k, MISSING) is not MISSING] == ["a", "c", "d"]
    assert l1.evictions == 1


def test_by_default_exactly_one_entry_makes_room():
    l1 = memory(max_entries=100)
    for i in range(150):
        l1.set(str(i), obj(i), None)
    assert len(l1) == 100
    assert l1.evictions == 50
    assert [l1.contains(str(i)) for i in (49, 50, 149)] == [False, True, True]


def test_cull_frequency_follows_locmem():
    l1 = memory(max_entries=30, cull_frequency=0)
    for i in range(31):
        l1.set(str(i), obj(i), None)
    assert len(l1) == 1  # CULL_FREQUENCY 0: the whole store is dropped when full


def test_the_byte_bound_evicts_until_it_fits_and_refuses_oversized_values():
    l1 = memory(max_bytes=10_000)
    for i in range(20):
        l1.set(f"k{i}", raw("x" * 1000), None)
    assert l1.bytes <= 10_000
    assert len(l1) < 20
    assert l1.get("k19", MISSING) == "x" * 1000  # the newest survived
    l1.set("huge", raw("y" * 20_000), None)
    assert l1.get("huge", MISSING) is MISSING
    assert l1.bytes <= 10_000


def test_entries_expire_and_the_lifetime_cap_applies():
    l1 = memory(max_timeout=0.2)
    l1.set("forever", obj(1), None)
    l1.set("later", obj(2), time.time() + 3600)
    l1.set("soon", obj(3), time.time() + 0.05)
    assert l1.expires_at("forever") <= time.time() + 0.2
    time.sleep(0.1)
    assert l1.get("soon", MISSING) is MISSING
    assert l1.get("later", MISSING) == 2
    time.sleep(0.15)
    assert l1.get("forever", MISSING) is MISSING
    assert l1.expirations == 2


def test_mutable_values_are_fresh_copies_on_every_hit():
    l1 = memory()
    l1.set("k", raw({"a": [1]}), None)
    first = l1.get("k", MISSING)
    first["a"].append(2)
    assert l1.get("k", MISSING) == {"a": [1]}
    assert l1.get("k", MISSING) is not l1.get("k", MISSING)


def test_incr_add_touch_delete_when_l1_is_the_only_tier():
    l1 = memory()
    assert l1.add("n", obj(1), None) is True
    assert l1.add("n", obj(5), None) is False
    assert l1.incr("n", 2, obj) == 3
    with pytest.raises(ValueError, match="not found"):
        l1.incr("absent", 1, obj)
    assert l1.touch("n", time.time() + 60) is True
    assert l1.touch("absent", None) is False
    assert l1.delete("n") is True
    assert l1.delete("n") is False


def test_hits_and_misses_are_counted_and_tallied():
    l1 = memory()
    l1.set("k", obj(1), None)
    with tallying() as tally:
        l1.get("k", MISSING)
        l1.get("absent", MISSING)
        l1.get_many(["k", "absent", "other"], MISSING)
    assert tally == {"cache.memory.hit": 2, "cache.memory.miss": 3}
    assert (l1.hits, l1.misses) == (2, 3)


def test_max_bytes_counts_immutable_values_by_their_real_size():
    l1 = memory(max_bytes=1_000_000)
    big = 1 << (8 * 400_000)  # an int of 400 kB
    emoji = "\U0001f600" * 100_000  # 100k characters taking 400 kB
    for i in range(5):
        l1.set(f"i{i}", obj(big + i), None)
        l1.set(f"s{i}", obj(emoji + str(i)), None)
    held = sum(sys.getsizeof(entry[1]) for entry in l1._data.values())
    assert held <= 1_000_000
    assert l1.bytes >= held
    assert len(l1) == 2  # the two most recent, about 400 kB each


def test_an_incoherent_l1_is_neither_read_nor_filled():
    l1 = memory()
    l1.set("k", obj(1), None)
    l1.flush(coherent=False)
    assert l1.get("k", MISSING) is MISSING
    assert l1.promote("k", obj(1), None, l1.read_token()) is False
    l1.flush(coherent=True)
    assert l1.promote("k", obj(1), None, l1.read_token()) is True
    assert l1.get("k", MISSING) == 1


def test_a_promotion_is_refused_when_the_key_changed_since_the_read_began():
    l1 = memory()
    token = l1.read_token()
    l1.invalidate(["k"])  # another process changed k while we were reading the old value
    assert l1.promote("k", obj("old"), None, token) is False
    assert l1.promote("other", obj("fine"), None, token) is True
    assert l1.promote("k", obj("new"), None, l1.read_token()) is True  # a read begun after


def test_a_promotion_is_refused_while_a_local_write_is_in_flight():
    l1 = memory()
    token = l1.read_token()
    write = l1.begin_write("k")
    assert l1.promote("k", obj("old"), None, token) is False
    l1.end_write("k", write, obj("new"), None)
    assert l1.get("k", MISSING) == "new"
    assert l1.promote("k", obj("old"), None, token) is False


@pytest.mark.parametrize("new", [obj("new"), None], ids=["set", "delete"])
def test_a_read_begun_during_a_local_write_cannot_promote_the_old_value(new):
    l1 = memory()
    l1.set("k", obj("old"), None)
    write = l1.begin_write("k")
    token = l1.read_token()  # a read starting now may still find the old value below
    l1.end_write("k", write, new, None)
    assert l1.promote("k", obj("old"), None, token) is False
    assert l1.get("k", MISSING) == ("new" if new is not None else MISSING)
    assert l1.promote("k", obj("newer"), None, l1.read_token()) is True  # a read begun after


def test_overlapping_writes_leave_the_key_out_of_l1():
    l1 = memory()
    first = l1.begin_write("k")
    second = l1.begin_write("k")
    l1.end_write("k", second, obj("second"), None)
    l1.end_write("k", first, obj("first"), None)
    # Which write reached the shared tiers last is unknown here: L1 must not guess.
    assert l1.get("k", MISSING) is MISSING


def test_clear_and_pattern_invalidation_refuse_reads_that_began_before():
    l1 = memory()
    token = l1.read_token()
    l1.invalidate_pattern(glob_to_regex("user:*"))
    assert l1.promote("post:1", obj(1), None, token) is False
    l1.set("user:1", obj(1), None)
    l1.set("user:2", obj(2), None)
    l1.set("post:1", obj(3), None)
    assert l1.invalidate_pattern(glob_to_regex("user:*")) == 2
    assert [k for k in ("user:1", "user:2", "post:1") if l1.contains(k)] == ["post:1"]


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("a*", ["a", "abc", "a:b"], ["ba"]),
        ("a?c", ["abc", "a:c"], ["ac", "abbc"]),
        ("[ab]x", ["ax", "bx"], ["cx"]),
        ("[^ab]x", ["cx"], ["ax"]),
        (r"a\*", ["a*"], ["ab"]),
        ("p.q+r", ["p.q+r"], ["pxq+r", "p.qqr"]),
        # As in Redis: a backslash in a class escapes the next character, "]" included...
        (r"a[\]]", ["a]"], ["a\\]", "a\\", "a"]),
        (r"a[x\]y]b", ["axb", "a]b", "ayb"], ["a\\b"]),
        (r"[\^a]", ["^", "a"], ["b"]),
        (r"[\a-c]", ["a", "-", "c"], ["b"]),
        # ...and a range's end is any character, "]" included.
        ("[!-]]", ["!", "A", "\\", "]"], ["a", "~"]),
    ],
)
def test_glob_patterns_follow_redis(pattern, matches, misses):
    regex = glob_to_regex(pattern)
    assert all(regex.fullmatch(k) for k in matches)
    assert not any(regex.fullmatch(k) for k in misses)
