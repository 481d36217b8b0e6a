"""System checks: each fires on the misconfiguration it names, and only then."""

import sys

import pytest
from django.core.checks.registry import registry
from django.core.management import call_command
from django.test import override_settings

from django_perf import checks

DJANGO_REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
DJANGO_BUILTIN_REDIS = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/0",
}
PERF_WITH_REDIS_TIER = {
    "BACKEND": "django_perf.cache.TieredCache",
    "OPTIONS": {"TIERS": [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": "redis://h:6379/1"}]},
}
PERF_WITHOUT_REDIS = {
    "BACKEND": "django_perf.cache.TieredCache",
    "OPTIONS": {"TIERS": [{"KIND": "memory"}, {"KIND": "database"}]},
}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@pytest.fixture
def without_django_redis(monkeypatch):
    """Make ``import django_redis`` fail as it would where the package is not installed."""
    monkeypatch.setitem(sys.modules, "django_redis", None)


@pytest.mark.parametrize(
    ("config", "needs"),
    [
        (DJANGO_REDIS, True),
        (PERF_WITH_REDIS_TIER, True),
        (DJANGO_BUILTIN_REDIS, False),
        (PERF_WITHOUT_REDIS, False),
        (LOCMEM, False),
        ({"BACKEND": "django_perf.cache.TieredCache", "LOCATION": "rediss://h:6380/0"}, True),
    ],
)
def test_which_caches_need_django_redis(config, needs):
    assert checks.cache_needs_django_redis(config) is needs


def test_e001_when_a_cache_uses_redis_and_django_redis_is_missing(without_django_redis):
    with override_settings(CACHES={"default": LOCMEM, "sessions": PERF_WITH_REDIS_TIER}):
        errors = checks.check_redis_client()
    assert [e.id for e in errors] == ["django_perf.E001"]
    assert "'sessions'" in errors[0].msg
    assert 'pip install "django-perf[redis]"' in errors[0].hint


def test_no_e001_when_django_redis_is_installed():
    with override_settings(CACHES={"default": DJANGO_REDIS}):
        assert checks.check_redis_client() == []


def test_no_e001_when_no_cache_uses_redis(without_django_redis):
    with override_settings(CACHES={"default": LOCMEM, "other": DJANGO_BUILTIN_REDIS}):
        assert checks.check_redis_client() == []


def test_the_checks_are_registered_with_django():
    registered = registry.get_checks()
    assert checks.check_redis_client in registered
    assert checks.check_strict_in_production in registered


@pytest.mark.parametrize(("debug", "strict", "ids"), [
    (False, True, ["django_perf.W001"]),
    (True, True, []),
    (False, False, []),
])  # fmt: skip
def test_w001_strict_mode_in_production(debug, strict, ids):
    with override_settings(DEBUG=debug, DJANGO_PERF={"STRICT": strict}):
        assert [w.id for w in checks.check_strict_in_production()] == ids


def test_the_test_project_passes_every_check():
    call_command("check", fail_level="WARNING")
