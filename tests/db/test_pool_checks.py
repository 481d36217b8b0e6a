"""System checks for pools and poolers: each fires on the combination it names, and only then."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings
from django.core.checks.registry import registry
from django.test import override_settings

from django_perf import checks

PG = {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db", "PORT": "5432"}
SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": "app.db"}
REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
BOUNDED = {"CONNECTION_POOL_KWARGS": {"max_connections": 20}}


def database(**config):
    return {"default": {**PG, **config}}


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def database_checks(databases, asgi: bool = False) -> list[str]:
    return ids(checks.pool_messages(databases, asgi)) + ids(checks.pooler_messages(databases))


def test_the_registered_checks_read_the_settings():
    with override_settings(ASGI_APPLICATION="app.asgi.application"):
        expected = checks.pool_messages(settings.DATABASES, asgi=True)
        assert checks.check_database_pools() == expected


def test_the_checks_are_registered():
    registered = registry.get_checks()
    for check in (checks.check_database_pools, checks.check_transaction_poolers,
                  checks.check_redis_pools):  # fmt: skip
        assert check in registered


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"OPTIONS": {"pool": True}}, []),
        ({"OPTIONS": {"pool": {"min_size": 2, "max_size": 10, "timeout": 5}}}, []),
        ({"OPTIONS": {"pool": True}, "CONN_MAX_AGE": 60}, ["django_perf.E202"]),
        ({"OPTIONS": {"pool": True}, "CONN_MAX_AGE": None}, ["django_perf.E202"]),
        ({"OPTIONS": {"pool": {"max_sise": 4}}}, ["django_perf.E203"]),
        ({"OPTIONS": {"pool": {"min_size": 5, "max_size": 2}}}, ["django_perf.E203"]),
        ({"OPTIONS": {"pool": {"max_size": -1}}}, ["django_perf.E203", "django_perf.E203"]),
        ({"OPTIONS": {"pool": {"min_size": 0}}}, ["django_perf.E203"]),  # max_size: min_size
        ({"OPTIONS": {"pool": {"min_size": 0, "max_size": 1}}}, []),
        ({"OPTIONS": {"pool": {"min_size": 3}}}, []),
        ({"OPTIONS": {"pool": "yes"}}, ["django_perf.E203"]),
        ({"CONN_MAX_AGE": 60}, []),  # persistent connections without a pool: fine under WSGI
    ],
)
def test_native_pool_options(config, expected):
    assert database_checks(database(**config)) == expected


def test_min_size_zero_without_max_size_says_why():
    (error,) = checks.pool_messages(database(OPTIONS={"pool": {"min_size": 0}}), asgi=False)
    assert "max_size (not set, so min_size: 0) is below min_size (0) or zero" in error.msg


def test_unknown_pool_options_get_a_suggestion():
    (error,) = checks.pool_messages(database(OPTIONS={"pool": {"max_sise": 4}}), asgi=False)
    assert "'max_sise' is not a pool option (did you mean 'max_size'?)" in error.msg


def test_e201_a_pool_needs_postgresql_and_psycopg_pool(monkeypatch):
    sqlite_pool = {"default": {**SQLITE, "OPTIONS": {"pool": True}}}
    assert database_checks(sqlite_pool) == ["django_perf.E201"]
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    assert database_checks(database(OPTIONS={"pool": True})) == ["django_perf.E201"]


POSTGIS = "django.contrib.gis.db.backends.postgis"
SUBCLASS = "tests.db.postgresql_subclass_backend"


@pytest.mark.parametrize("engine", [POSTGIS, SUBCLASS])
def test_backends_built_on_postgresql_get_the_postgresql_checks(engine):
    """PostGIS and other subclasses of the psycopg wrapper pool, and meet poolers, alike."""
    assert checks.is_postgresql(engine)
    assert database_checks(database(ENGINE=engine, OPTIONS={"pool": True})) == []
    assert database_checks(database(ENGINE=engine, CONN_MAX_AGE=60), asgi=True) == [
        "django_perf.W201"
    ]
    assert database_checks(database(ENGINE=engine, PORT="6432")) == [
        "django_perf.W202",
        "django_perf.W203",
    ]


@pytest.mark.parametrize(
    "engine", ["django.db.backends.sqlite3", "tests.db.no_such_backend", "", None]
)
def test_other_backends_are_not_postgresql(engine):
    assert not checks.is_postgresql(engine)
    assert database_checks(database(ENGINE=engine, OPTIONS={"pool": True})) == ["django_perf.E201"]


def test_w201_persistent_connections_under_asgi():
    config = database(CONN_MAX_AGE=600)
    assert database_checks(config, asgi=True) == ["django_perf.W201"]
    assert database_checks(config) == []
    pooled = database(OPTIONS={"pool": True})
    assert database_checks(pooled, asgi=True) == []


@pytest.mark.parametrize(
    ("config", "perf", "expected"),
    [
        # PgBouncer's port: server-side cursors and PreparedQuery both need a session
        ({"PORT": "6432"}, {}, ["django_perf.W202", "django_perf.W203"]),
        ({"PORT": "6432", "DISABLE_SERVER_SIDE_CURSORS": True}, {}, ["django_perf.W203"]),
        (
            {"PORT": "6432", "DISABLE_SERVER_SIDE_CURSORS": True},
            {"PREPARED_STATEMENTS": False},
            [],
        ),
        (
            {"PORT": "6432", "DISABLE_SERVER_SIDE_CURSORS": True,
             "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}},
            {"PREPARED_STATEMENTS": False},
            ["django_perf.W203"],
        ),
        # a pool with server-side cursors behind a pooler named in the setting
        ({"OPTIONS": {"pool": True}}, {"TRANSACTION_POOLERS": ["default"],
                                       "PREPARED_STATEMENTS": False}, ["django_perf.W202"]),
        ({}, {}, []),  # a direct connection: nothing to say
    ],
)  # fmt: skip
def test_w202_w203_transaction_poolers(config, perf, expected):
    with override_settings(DJANGO_PERF=perf):
        assert database_checks(database(**config)) == expected


def test_w202_names_the_application_side_pool():
    with override_settings(DJANGO_PERF={"PREPARED_STATEMENTS": False}):
        (warning,) = checks.pooler_messages(database(PORT="6432", OPTIONS={"pool": True}))
    assert "QuerySet.iterator()" in warning.msg
    assert "application-side pool" in warning.msg
    assert warning.hint == "Set DISABLE_SERVER_SIDE_CURSORS = True for this alias."


def test_w204_prepare_threshold_without_server_side_binding():
    config = database(OPTIONS={"prepare_threshold": 5})
    assert database_checks(config) == ["django_perf.W204"]
    config = database(OPTIONS={"prepare_threshold": 5, "server_side_binding": True})
    assert database_checks(config) == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (BOUNDED, []),
        ({}, ["django_perf.W205"]),
        ({"CONNECTION_POOL_KWARGS": {"max_connections": 0}}, ["django_perf.E204"]),
        ({"CONNECTION_POOL_KWARGS": {"max_connections": "10"}}, ["django_perf.E204"]),
        ({"CONNECTION_POOL_KWARGS": [("max_connections", 10)]}, ["django_perf.E204"]),
        (
            {"CONNECTION_POOL_CLASS": "redis.BlockingConnectionPool",
             "CONNECTION_POOL_KWARGS": {"max_connections": 10, "timeout": None}},
            ["django_perf.W206"],
        ),
        (
            {"CONNECTION_POOL_CLASS": "redis.BlockingConnectionPool",
             "CONNECTION_POOL_KWARGS": {"max_connections": 10, "timeout": 5}},
            [],
        ),
    ],
)  # fmt: skip
def test_django_redis_pool_options(options, expected):
    caches = {"default": {**REDIS, "OPTIONS": options}, "local": {"BACKEND": "x.Locmem"}}
    with override_settings(CACHES=caches):
        assert ids(checks.check_redis_pools()) == expected
