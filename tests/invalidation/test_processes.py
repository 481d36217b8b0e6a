"""Invalidation reaches other OS processes: their L1 copies, their tag generations, real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings

from django_perf.cache.invalidation import invalidate
from testproject.blog.models import Article, Author
from tests.invalidation.conftest import tiers_for
from tests.invalidation.worker import Worker
from tests.support.env import ROOT, server_env
from tests.support.http import serve

pytestmark = pytest.mark.redis


@pytest.fixture
def pair(configure_cache, redis_url, request) -> Iterator[tuple[Any, Worker]]:
    """This process's cache and a worker process's, on one store (memory + Redis)."""
    location = f"processes-{request.node.name}"[:60]
    cache = configure_cache("memory", "redis", location=location)
    worker = Worker(
        {
            "location": location,
            "tiers": tiers_for(("memory", "redis"), redis_url),
            "secret": settings.SECRET_KEY,
        }
    )
    yield cache, worker
    worker.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_tag_invalidated_in_one_process_is_invalid_in_the_other(pair):
    cache, worker = pair
    worker("tagged_set", key="home", tags=["articles"], value="the list")
    assert worker("tagged_get", key="home", tags=["articles"]) == "the list"

    report = invalidate(tags=["articles"])  # here: one new generation

    assert report.tags == 1
    assert eventually(lambda: worker("tagged_get", key="home", tags=["articles"]) == "<missing>")

    # And the other way round.
    cache.set("x", 1)
    from django_perf.cache.invalidation import tagged_key

    cache.set(tagged_key("page", ["articles"]), "here")
    worker("invalidate", kwargs={"tags": ["articles"]})
    assert eventually(lambda: cache.get(tagged_key("page", ["articles"])) is None)


@pytest.mark.parametrize(
    "arguments",
    [{"keys": ["user:1", "user:2"]}, {"patterns": ["user:*"]}, {"everything": True}],
    ids=["keys", "pattern", "everything"],
)
def test_keys_patterns_and_clear_drop_other_processes_l1_copies(pair, arguments):
    cache, worker = pair
    cache.set_many({"user:1": 1, "user:2": 2})
    for key in ("user:1", "user:2"):
        # Read until the worker keeps it in L1 (the set's own announcement may land late).
        assert eventually(
            lambda key=key: worker("get", key=key) != "<missing>" and worker("in_l1", key=key)
        )

    report = invalidate(**arguments)

    assert report.notified == 1  # the worker heard it
    assert eventually(lambda: not worker("in_l1", key="user:1"))
    assert not worker("in_l1", key="user:2")
    assert worker("get", key="user:1") == "<missing>"


def _titles(url: str, path: str) -> set[str]:
    """What several requests get (gunicorn spreads them over its workers)."""
    return {httpx.get(url + path, timeout=10).text for _ in range(8)}


@pytest.mark.django_db(transaction=True)
def test_every_gunicorn_worker_serves_fresh_pages_after_a_save_and_after_the_command(
    configure_cache, redis_url
):
    # This process shares the servers' cache: same LOCATION, Redis, table and channel.
    configure_cache("memory", "redis", "database", location="")
    env = server_env(redis_url=redis_url)
    author = Author.objects.create(name="Ada", email="ada@x.org", joined_at="2024-01-01T00:00Z")
    article = Article.objects.create(
        author=author, title="First", slug="first", body="", published_at="2024-01-02T00:00Z"
    )
    with serve("gunicorn", env, workers=2) as server:
        pages = _titles(server.url, "/cached/")
        assert all("First" in page for page in pages)

        Article.objects.filter(pk=article.pk).update(title="Quiet")  # no signal: still cached
        assert all("First" in page for page in _titles(server.url, "/cached/"))

        article.title = "Saved"
        article.save()  # the registry: a new generation of blog:articles, everywhere
        assert eventually(
            lambda: all("Saved" in page for page in _titles(server.url, "/cached/")), 5
        ), server.log()

        Article.objects.filter(pk=article.pk).update(title="Commanded")
        assert all("Saved" in page for page in _titles(server.url, "/cached/"))
        done = subprocess.run(
            [sys.executable, "manage.py", "invalidate_cache", "--tag", "blog:articles"],
            cwd=ROOT,
            env={**env, "DJANGO_PERF_LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "1 tag(s) got a new generation" in done.stdout
        assert eventually(
            lambda: all("Commanded" in page for page in _titles(server.url, "/cached/")), 5
        ), server.log()

        # Per-object keys too: the command with --key, seen by every worker.
        first = httpx.get(server.url + "/cached/articles/first/", timeout=10).json()
        assert first["title"] == "Commanded"
        Article.objects.filter(pk=article.pk).update(title="By key")
        done = subprocess.run(
            [sys.executable, "manage.py", "invalidate_cache", "--key", "blog:article:first"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "Other processes told to drop their in-memory copies: " in done.stdout
        notified = int(done.stdout.split("in-memory copies: ")[1].split(".")[0])
        assert notified >= 3  # two gunicorn workers and this test process
        assert eventually(
            lambda: (
                {
                    httpx.get(server.url + "/cached/articles/first/", timeout=10).json()["title"]
                    for _ in range(8)
                }
                == {"By key"}
            )
        )
    assert os.environ.get("DJANGO_SETTINGS_MODULE") == "tests.settings"
