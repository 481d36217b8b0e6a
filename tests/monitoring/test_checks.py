"""Monitoring's system checks (E401, E402, W401, W402, W403)."""

import sys

import pytest
from django.test import override_settings

from django_perf import checks
from django_perf.monitoring import PerformanceMiddleware

MIDDLEWARE = "django_perf.monitoring.PerformanceMiddleware"
DEFINED_IN = "django_perf.monitoring.middleware.PerformanceMiddleware"  # its module's own path


SUBCLASS = f"{__name__}.TimingMiddleware"


class TimingMiddleware(PerformanceMiddleware):
    """A project's subclass, named in MIDDLEWARE by its own path."""


def ids(messages):
    return [m.id for m in messages]


def test_e401_for_a_url_that_is_not_redis(perf):
    perf(MONITORING_REDIS_URL="http://cache:6379/0")
    [error] = checks.check_metrics_store()
    assert error.id == "django_perf.E401"
    assert "'http://cache:6379/0', not a Redis URL" in error.msg


def test_e401_when_the_redis_client_is_missing(perf, monkeypatch):
    perf(MONITORING_REDIS_URL="redis://127.0.0.1:6379/0")
    monkeypatch.setitem(sys.modules, "redis", None)
    [error] = checks.check_metrics_store()
    assert error.id == "django_perf.E401"
    assert 'pip install "django-perf[redis]"' in error.hint


def test_e402_for_an_unknown_database(perf):
    perf(MONITORING_DATABASE="metrics")
    [error] = checks.check_metrics_store()
    assert error.id == "django_perf.E402"
    assert "Use one of: default" in error.hint


def test_the_test_projects_store_passes():
    assert checks.check_metrics_store() == []


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        ([MIDDLEWARE, "django.middleware.common.CommonMiddleware"], []),
        (["django.middleware.common.CommonMiddleware", MIDDLEWARE], ["django_perf.W401"]),
        (["django.middleware.common.CommonMiddleware"], []),
        # Any import path of the class, or a subclass, is the middleware too.
        ([DEFINED_IN, "django.middleware.common.CommonMiddleware"], []),
        (["django.middleware.common.CommonMiddleware", DEFINED_IN], ["django_perf.W401"]),
        (["django.middleware.common.CommonMiddleware", SUBCLASS], ["django_perf.W401"]),
        (["no.such.Middleware", MIDDLEWARE], ["django_perf.W401"]),
    ],
)
def test_w401_when_the_middleware_is_not_first(middleware, expected):
    with override_settings(MIDDLEWARE=middleware):
        assert ids(checks.check_middleware_position()) == expected


def test_w402_for_a_short_token_and_w403_without_prometheus_client(perf, monkeypatch):
    perf(MONITORING_METRICS_TOKEN="short")
    assert ids(checks.check_metrics_endpoint()) == ["django_perf.W402"]
    perf(MONITORING_METRICS_TOKEN="long-enough-token-1234")
    assert checks.check_metrics_endpoint() == []
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert ids(checks.check_metrics_endpoint()) == ["django_perf.W403"]
