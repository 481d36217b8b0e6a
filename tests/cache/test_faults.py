"""Failing tiers are skipped (logged with the cause, counted, behind a breaker); strict raises."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.db import connection
from django.test import override_settings

from django_perf.cache.faults import CLOSED, HALF_OPEN, OPEN, Breaker, ErrorLog, describe
from django_perf.cache.models import CacheEntry
from django_perf.tally import tallying
from tests.cache.conftest import DATABASE, MEMORY, redis_tier
from tests.support.env import server_env
from tests.support.http import serve
from tests.support.servers import free_port

FAST_BREAKER = {"BREAKER_FAILURES": 2, "BREAKER_COOLDOWN": 0.1, "BREAKER_MAX_COOLDOWN": 0.3}
# For counting skipped calls: a cooldown far longer than the ~30 calls take, even on a loaded
# machine (with 0.1 s, a slow run let the breaker probe between most calls), and still
# short enough for the recovery to be seen within the test's deadline.
STEADY_BREAKER = {"BREAKER_FAILURES": 2, "BREAKER_COOLDOWN": 1.0, "BREAKER_MAX_COOLDOWN": 2.0}


def redis_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "the redis tier failed" in r.getMessage()]


# --- The breaker and the error log on their own --------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row_and_probes_after_a_cooldown():
    breaker = Breaker(failures=3, cooldown=0.05, max_cooldown=0.2)
    assert breaker.allow() == CLOSED
    breaker.failure()
    breaker.success()  # a success in between resets the count
    assert breaker.failure() is False
    assert breaker.failure() is False
    assert breaker.failure() is True
    assert (breaker.state, breaker.allow()) == (OPEN, None)
    time.sleep(0.06)
    assert breaker.allow() == HALF_OPEN  # one probe...
    assert breaker.allow() is None  # ...at a time
    breaker.failure()  # the probe failed: wait twice as long
    time.sleep(0.06)
    assert breaker.allow() is None
    time.sleep(0.05)
    assert breaker.allow() == HALF_OPEN
    assert breaker.success() is True  # the tier is back
    assert (breaker.state, breaker.opened) == (CLOSED, 1)


def test_errors_are_logged_with_their_cause_at_most_once_per_interval(caplog):
    log = ErrorLog(interval=0.2)
    try:
        raise ConnectionError("refused") from OSError(111, "Connection refused")
    except ConnectionError as error:
        failure = error
    for _ in range(50):
        log.report("default", "the redis tier", "get", failure, "skipped for this call")
    log.report("default", "the database tier", "set", TimeoutError("locked"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Cache 'default': the redis tier failed on get: ConnectionError: refused <- caused by "
        "ConnectionRefusedError: [Errno 111] Connection refused; skipped for this call",
        "Cache 'default': the database tier failed on set: TimeoutError: locked",
    ]
    time.sleep(0.21)
    log.report("default", "the redis tier", "get", failure)
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith("(49 more like it in the last 0.2 s were not logged)")
    )
    assert describe(ValueError()) == "ValueError"


# --- Redis really going away -----------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_stopped_mid_test_and_restarted_no_call_fails(
    make_cache, coherent, redis_server, redis_url, caplog
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE, **STEADY_BREAKER))
    cache.set_many({"k": "v", "n": 1})
    redis_server.stop()

    calls = 0
    with tallying() as tally:
        for _ in range(20):
            assert cache.get("k") == "v"  # from the table
            calls += 1
        cache.set("k2", [2])
        assert cache.get("k2") == [2]
        assert cache.incr("n") == 2
        assert cache.add("a", 1) is True
        assert cache.add("a", 2) is False
        assert cache.touch("k", 100) is True
        assert cache.delete("k2") is True
        assert cache.get_many(["k", "n", "a", "k2"]) == {"k": "v", "n": 2, "a": 1}
        cache.set_many({"m": 1})
        assert cache.get_or_set("g", "made") == "made"
        assert cache.has_key("m")
    stats = cache.stats()
    assert stats["redis"]["breaker"] == "open"
    assert stats["redis"]["skipped"] > calls // 2  # most calls did not even try Redis
    assert 2 <= stats["redis"]["errors"] < 10
    assert 1 <= tally["cache.redis.error"] <= stats["redis"]["errors"]
    assert not stats["memory"]["coherent"]  # the channel is down: L1 is not used
    assert len(redis_errors(caplog)) == 1  # one record per error type and LOG_INTERVAL
    assert "Connection refused" in redis_errors(caplog)[0].getMessage()
    assert "circuit breaker open" in caplog.text

    redis_server.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert cache.get("k") == "v"
        cache.set("probe", "p")
        assert cache.get("probe") == "p"
        stats = cache.stats()
        if stats["redis"]["breaker"] == "closed" and stats["memory"]["coherent"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"Redis was not used again after it came back: {cache.stats()}")
    cache.set("after", "back")
    client = redis.Redis.from_url(redis_url)
    assert client.exists(cache.make_key("after"))
    assert "back; circuit breaker closed" in caplog.text
    client.close()


@pytest.fixture
def redis_admin(redis_url) -> Iterator[redis.Redis]:
    """A second Redis user, so a test can lock the default one out (data stays in Redis)."""
    client = redis.Redis.from_url(redis_url)
    client.execute_command("ACL", "SETUSER", "perf-admin", "on", ">secret", "~*", "&*", "+@all")
    admin = redis.Redis.from_url(redis_url, username="perf-admin", password="secret")
    client.close()
    yield admin
    admin.execute_command("ACL", "SETUSER", "default", "on")
    admin.execute_command("ACL", "DELUSER", "perf-admin")
    admin.close()


@pytest.mark.redis
@pytest.mark.django_db
def test_writes_missed_while_redis_failed_are_deleted_there_before_it_serves_again(
    make_cache, redis_url, redis_admin, caplog
):
    cache = make_cache(redis_tier(redis_url), DATABASE, **FAST_BREAKER)
    cache.set_many({"k": "old", "gone": "old"})
    redis_admin.execute_command("ACL", "SETUSER", "default", "off")
    redis_admin.execute_command("CLIENT", "KILL", "USER", "default")
    cache.set("k", "new")  # Redis refuses: only the table gets it
    cache.delete("gone")
    assert cache.get("k") == "new"
    assert redis_admin.exists(cache.make_key("k"))  # Redis still holds "old"
    redis_admin.execute_command("ACL", "SETUSER", "default", "on")
    time.sleep(0.35)  # past the longest cooldown
    assert cache.get("k") == "new"  # not the "old" Redis kept
    assert cache.get("gone") is None
    assert "writes were missed while failing; deleted 2 key(s)" in caplog.text
    assert cache.stats()["redis"]["breaker"] == "closed"


@pytest.mark.redis
@pytest.mark.django_db
def test_an_add_decided_while_redis_failed_is_replayed_there(make_cache, redis_url, redis_admin):
    # The table keeps values 1 s, Redis for their whole timeout.
    table = {"KIND": "database", "MAX_TIMEOUT": 1}
    cache = make_cache(redis_tier(redis_url, CHANNEL=None), table, **FAST_BREAKER)
    cache.set("k", "v0", 3600)
    time.sleep(1.1)  # the table's copy expired; Redis still holds v0
    redis_admin.execute_command("ACL", "SETUSER", "default", "off")
    redis_admin.execute_command("CLIENT", "KILL", "USER", "default")
    assert cache.add("k", "v1", 3600) is True  # decided by the table
    redis_admin.execute_command("ACL", "SETUSER", "default", "on")
    time.sleep(0.35)  # past the longest cooldown
    assert cache.get("k") == "v1"  # not the v0 Redis kept


def rename_table(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        q = connection.ops.quote_name
        cursor.execute(f"ALTER TABLE {q(old)} RENAME TO {q(new)}")


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_an_incr_missed_by_the_table_is_replayed_there(make_cache, redis_url):
    # Redis keeps values 1 s, the table for their whole timeout.
    cache = make_cache(redis_tier(redis_url, MAX_TIMEOUT=1), DATABASE, **FAST_BREAKER)
    cache.set("n", 1, 3600)
    table = CacheEntry._meta.db_table
    rename_table(table, "moved_away")  # the table fails (its rows are kept)...
    try:
        assert cache.incr("n") == 2  # Redis has 2, the table still 1
    finally:
        rename_table("moved_away", table)  # ...and comes back
    time.sleep(1.1)  # Redis's copy expired; past the longest cooldown
    assert cache.get("n") in (2, None)  # never the 1 the table missed the change to


@pytest.mark.django_db
def test_strict_mode_reraises_from_the_option_or_the_django_perf_setting(make_cache):
    dead = redis_tier(f"redis://127.0.0.1:{free_port()}/0", CHANNEL=None)
    strict = make_cache(MEMORY, dead, STRICT=True)
    with pytest.raises(redis.ConnectionError):
        strict.get("k")
    follows = make_cache(MEMORY, dead)
    assert follows.get("k", "d") == "d"
    with override_settings(DJANGO_PERF={"STRICT": True}), pytest.raises(redis.ConnectionError):
        follows.set("k", 1)
    lenient = make_cache(MEMORY, dead, STRICT=False)
    with override_settings(DJANGO_PERF={"STRICT": True}):
        lenient.set("k", 1)  # the cache's own option wins
        assert lenient.get("k") == 1  # L1 took the write


@pytest.mark.django_db(transaction=True)
def test_a_missing_table_is_skipped_and_the_tier_comes_back(make_cache, caplog):
    cache = make_cache(MEMORY, DATABASE, **FAST_BREAKER)
    cache.set("k", "v")
    with connection.schema_editor() as editor:
        editor.delete_model(CacheEntry)
    try:
        cache._store.memory.flush()
        assert cache.get("k", "miss") == "miss"
        cache.set("k2", "v2")
        assert cache.get("k2") == "v2"  # L1 alone
        assert cache.stats()["database"]["errors"] >= 1
        assert "the database tier failed on get" in caplog.text
    finally:
        with connection.schema_editor() as editor:
            editor.create_model(CacheEntry)
    time.sleep(0.35)
    cache.set("k3", "v3")
    assert CacheEntry.objects.filter(cache_key=cache.make_key("k3")).exists()
    assert cache.stats()["database"]["breaker"] == "closed"


@pytest.mark.redis
def test_a_live_server_answers_every_request_through_a_redis_outage(
    redis_server, redis_url, transactional_db
):
    env = server_env(redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    with serve("gunicorn", env, workers=2) as server:
        statuses = []

        def visit() -> str:
            response = httpx.get(f"{server.url}/cache/", timeout=10)
            statuses.append(response.status_code)
            return response.text

        assert visit().startswith("articles=0 authors=0 visits=")
        assert client.exists(":1:demo:counts")
        redis_server.stop()
        for _ in range(20):
            assert visit().startswith("articles=0 authors=0 visits=")
        redis_server.start()
        deadline = time.monotonic() + 20
        while not client.exists(":1:demo:counts") and time.monotonic() < deadline:
            visit()
            time.sleep(0.1)
        assert client.exists(":1:demo:counts"), "the workers did not use Redis again"
        assert set(statuses) == {200}, server.log()
        assert "Traceback" not in server.log()
    client.close()
