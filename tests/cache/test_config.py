"""OPTIONS of a TieredCache: defaults, shorthands, and errors that name what is wrong."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_perf import checks
from django_perf.cache.config import parse_config
from django_perf.cache.models import CacheEntry
from tests.cache.conftest import MEMORY

BACKEND = "django_perf.cache.TieredCache"


def kinds(config) -> list[str]:
    return [tier.kind for tier in config.tiers]


def test_the_embedded_default_is_memory_then_database():
    config = parse_config("", {})
    assert kinds(config) == ["memory", "database"]
    memory = config.tier("memory")
    assert (memory["MAX_ENTRIES"], memory["MAX_BYTES"], memory["MAX_TIMEOUT"]) == (
        10_000,
        64 * 2**20,
        30,
    )
    assert config.options["SERIALIZER"] == "pickle"


def test_a_redis_url_as_location_means_memory_then_redis():
    config = parse_config("redis://h:6379/2", {})
    assert kinds(config) == ["memory", "redis"]
    assert config.tier("redis")["LOCATION"] == "redis://h:6379/2"
    assert config.tier("redis")["CHANNEL"] == "django_perf:cache:redis://h:6379/2"


def test_djangos_max_entries_and_cull_frequency_apply_to_l1_as_to_locmem():
    def l1(options):
        memory = parse_config("", {"OPTIONS": options}).tier("memory")
        return memory["MAX_ENTRIES"], memory["CULL_FREQUENCY"]

    assert l1({"MAX_ENTRIES": 30, "CULL_FREQUENCY": 0}) == (30, 0)
    assert l1({"MAX_ENTRIES": 30}) == (30, 3)  # LocMemCache's default cull
    assert l1({}) == (10_000, None)  # the tier's own default: plain LRU


def test_any_order_and_subset_of_tiers():
    tiers = [{"KIND": "redis", "LOCATION": "unix:///run/redis.sock"}, {"KIND": "memory"}]
    assert kinds(parse_config("x", {"OPTIONS": {"TIERS": tiers}})) == ["redis", "memory"]


def test_a_list_of_redis_urls_as_location_means_memory_then_redis():
    # As Django's RedisCache and django-redis accept it: the primary first, then replicas.
    urls = ["redis://primary:6379/0", "redis://replica:6379/0"]
    config = parse_config(urls, {})
    assert kinds(config) == ["memory", "redis"]
    assert config.tier("redis")["LOCATION"] == urls
    assert config.name == "redis://primary:6379/0"
    assert config.tier("redis")["CHANNEL"] == "django_perf:cache:redis://primary:6379/0"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (["localhost:6379"], "must be a string .* or a list of Redis URLs"),
        ([], "must be a string .* or a list of Redis URLs"),
        (5, "must be a string .* or a list of Redis URLs"),
    ],
)
def test_a_location_that_is_not_a_name_or_redis_urls_is_named(location, message):
    with pytest.raises(ImproperlyConfigured, match=r"CACHES\['default'\]\['LOCATION'\] " + message):
        parse_config(location, {}, alias="default")


def test_a_location_too_long_for_the_table_is_refused_before_postgresql_does():
    long = "cache-" + "x" * 250
    with pytest.raises(ImproperlyConfigured, match="at most 200 characters; got 256"):
        parse_config(long, {}, alias="default")
    assert kinds(parse_config(long, {"OPTIONS": {"TIERS": [{"KIND": "memory"}]}})) == ["memory"]
    assert CacheEntry._meta.get_field("location").max_length == 200


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"TEIRS": []}, r"'TEIRS' is not an option\. Did you mean 'TIERS'\?"),
        ({"TIERS": []}, r"\['TIERS'\] must be a non-empty list"),
        ({"TIERS": [{"KIND": "disk"}]}, r"\['KIND'\] must be one of 'memory', 'redis', 'database'"),
        ({"TIERS": ["memory"]}, r"must be a dict with a 'KIND' key"),
        ({"TIERS": [{"KIND": "memory"}, {"KIND": "memory"}]}, "two 'memory' tiers"),
        ({"TIERS": [{"KIND": "redis"}]}, "needs 'LOCATION': the Redis URL"),
        (
            {"TIERS": [{"KIND": "redis", "LOCATION": "localhost:6379"}]},
            "must be a redis://, rediss:// or unix:// URL",
        ),
        ({"TIERS": [{"KIND": "memory", "MAX_BYTS": 1}]}, "Did you mean 'MAX_BYTES'"),
        ({"TIERS": [{"KIND": "memory", "MAX_TIMEOUT": 0}]}, "must be a number greater than 0"),
        ({"TIERS": [{"KIND": "database", "CULL_BATCH": 1.5}]}, "must be an integer at least 1"),
        ({"STRICT": "yes"}, r"\['STRICT'\] must be True or False or None; got 'yes' \(str\)"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_config("", {"OPTIONS": options}, alias="default")


def test_the_system_check_reports_bad_options_before_first_use():
    caches = {
        "default": {"BACKEND": BACKEND},
        "broken": {"BACKEND": BACKEND, "OPTIONS": {"TIERS": [{"KIND": "memroy"}]}},
        # The backend's module's own path names the same class.
        "spelled": {
            "BACKEND": "django_perf.cache.backend.TieredCache",
            "OPTIONS": {"TIERS": [{"KIND": "memroy"}]},
        },
    }
    with override_settings(CACHES=caches):
        errors = checks.check_tiered_cache_options()
    assert [(e.id, e.obj) for e in errors] == [
        ("django_perf.E101", "CACHES['broken']"),
        ("django_perf.E101", "CACHES['spelled']"),
    ]
    assert "CACHES['broken']['OPTIONS']['TIERS'][0]['KIND']" in errors[0].msg
    assert errors[0].obj == "CACHES['broken']"


def test_the_system_check_reports_a_bad_location_and_takes_a_list_of_redis_urls():
    caches = {
        "listed": {"BACKEND": BACKEND, "LOCATION": ["redis://h:6379/0", "redis://r:6379/0"]},
        "unlisted": {"BACKEND": BACKEND, "LOCATION": ["h:6379"]},
        "long": {"BACKEND": BACKEND, "LOCATION": "x" * 201},
    }
    with override_settings(CACHES=caches):
        errors = checks.check_tiered_cache_options()
    assert [(e.id, e.obj) for e in errors] == [
        ("django_perf.E101", "CACHES['unlisted']"),
        ("django_perf.E101", "CACHES['long']"),
    ]
    assert all("CACHES[" in e.msg and "['LOCATION']" in e.msg for e in errors)


def test_the_system_check_warns_about_an_uncapped_l1_without_redis():
    uncapped = {"KIND": "memory", "MAX_TIMEOUT": None}
    caches = {
        "default": {"BACKEND": BACKEND, "OPTIONS": {"TIERS": [uncapped, {"KIND": "database"}]}},
        "coherent": {
            "BACKEND": BACKEND,
            "OPTIONS": {"TIERS": [uncapped, {"KIND": "redis", "LOCATION": "redis://h/0"}]},
        },
    }
    with override_settings(CACHES=caches):
        warnings = checks.check_tiered_cache_options()
    assert [(w.id, w.obj) for w in warnings] == [("django_perf.W101", "CACHES['default']")]


def test_a_memory_only_cache_keeps_values_for_their_whole_timeout(make_cache):
    # The 30 s cap is there to refill L1 from a shared tier; alone, L1 is LocMemCache.
    assert (
        parse_config("", {"OPTIONS": {"TIERS": [{"KIND": "memory"}]}}).tier("memory")["MAX_TIMEOUT"]
        is None
    )
    capped = {"KIND": "memory", "MAX_TIMEOUT": 5}
    assert parse_config("", {"OPTIONS": {"TIERS": [capped]}}).tier("memory")["MAX_TIMEOUT"] == 5
    cache = make_cache(MEMORY)
    cache.set("forever", "v", None)
    cache.set("hour", "v", 3600)
    l1 = cache._store.memory
    assert l1.expires_at(cache.make_key("forever")) is None
    assert l1.expires_at(cache.make_key("hour")) == pytest.approx(time.time() + 3600, abs=5)


def test_the_system_check_does_not_warn_about_an_l1_only_cache():
    uncapped = {"KIND": "memory", "MAX_TIMEOUT": None}
    caches = {"default": {"BACKEND": BACKEND, "OPTIONS": {"TIERS": [uncapped]}}}
    with override_settings(CACHES=caches):
        assert checks.check_tiered_cache_options() == []


def test_a_redis_tier_is_recognised_by_the_django_redis_check():
    config = {
        "BACKEND": BACKEND,
        "OPTIONS": {"TIERS": [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": "rediss://h/0"}]},
    }
    assert checks.cache_needs_django_redis(config)
    assert not checks.cache_needs_django_redis({"BACKEND": BACKEND})
