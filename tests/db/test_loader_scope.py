"""Loaders are scoped to one request: concurrent requests never see each other's values."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from django_perf.db import Batcher, loader_scope
from testproject.blog.models import Article, Author
from tests.support.http import serve

from .conftest import UTC

pytestmark = pytest.mark.django_db


def pair() -> str:
    return uuid.uuid4().hex


def test_two_concurrent_async_requests_keep_their_own_values():
    client = AsyncClient()
    token = pair()

    async def both():
        return await asyncio.gather(
            client.get("/db/scope-probe/", {"who": "alice", "pair": token}),
            client.get("/db/scope-probe/", {"who": "bob", "pair": token}),
        )

    responses = async_to_sync(both)()
    assert [r.json() for r in responses] == [
        {"who": "alice", "saw": "alice"},
        {"who": "bob", "saw": "bob"},
    ]


def test_two_concurrent_wsgi_requests_on_threads_keep_their_own_values():
    token = pair()

    def get(who: str) -> dict:
        return Client().get("/db/scope-probe-sync/", {"who": who, "pair": token}).json()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(get, ["alice", "bob"]))
    assert results == [{"who": "alice", "saw": "alice"}, {"who": "bob", "saw": "bob"}]


def test_values_do_not_outlive_the_request():
    from testproject.bulkdemo.views import probe

    for who in ["first", "second"]:
        token = pair()
        barrier_partner = threading.Thread(
            target=Client().get, args=("/db/scope-probe-sync/", {"who": "x", "pair": token})
        )
        barrier_partner.start()
        response = Client().get("/db/scope-probe-sync/", {"who": who, "pair": token})
        barrier_partner.join()
        assert response.json()["saw"] == who
    with pytest.raises(LookupError):
        probe.get("me")  # no request, no scope: the requests' values are gone


@pytest.fixture
def blog() -> list[Article]:
    authors = [
        Author.objects.create(name=f"author {i}", email=f"{i}@x.org",
                              joined_at=datetime.datetime(2020, 1, 1, tzinfo=UTC))
        for i in range(5)
    ]  # fmt: skip
    return [
        Article.objects.create(author=authors[i % 5], title=f"title {i}", slug=f"s{i}", body="",
                               published_at=datetime.datetime(2024, 1, 1 + i, tzinfo=UTC))
        for i in range(20)
    ]  # fmt: skip


@pytest.mark.parametrize("path", ["/db/articles/", "/db/articles-sync/"])
def test_the_demo_pages_load_all_authors_in_one_query(blog, path):
    with CaptureQueriesContext(connection) as queries:
        if path == "/db/articles/":
            response = async_to_sync(AsyncClient().get)(path)
        else:
            response = Client().get(path)
    articles = response.json()["articles"]
    assert len(articles) == 20
    expected = {a.title: a.author.name for a in blog}
    assert {a["title"]: a["author"] for a in articles} == expected
    selects = [q for q in queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 2  # the articles, then every author at once


@pytest.mark.postgres
def test_concurrent_requests_under_uvicorn_keep_their_own_values(server_env):
    token = pair()
    with serve("uvicorn", server_env) as server:

        async def both():
            async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
                return await asyncio.gather(
                    *[
                        client.get("/db/scope-probe/", params={"who": who, "pair": token})
                        for who in ["alice", "bob"]
                    ]
                )

        responses = asyncio.run(both())
    assert [r.json() for r in responses] == [
        {"who": "alice", "saw": "alice"},
        {"who": "bob", "saw": "bob"},
    ]


def test_a_copy_of_the_context_takes_the_scope_along_and_a_plain_thread_does_not():
    """What docs/db.rst says (it said plain threads inherit the scope; they do not)."""
    square = Batcher(lambda keys: {key: key * key for key in keys})
    outcomes = []

    async def load(key):
        return await square.load(key)

    async def inherited():
        return [
            await asyncio.create_task(load(2)),
            await sync_to_async(square.get)(3),
            await asyncio.to_thread(square.get, 4),
        ]

    def in_a_plain_thread(key):
        try:
            outcomes.append(square.get(key))
        except LookupError as error:
            outcomes.append(type(error))

    with loader_scope(), ThreadPoolExecutor(1) as pool:
        assert async_to_sync(inherited)() == [4, 9, 16]
        assert pool.submit(contextvars.copy_context().run, square.get, 5).result() == 25
        pool.submit(in_a_plain_thread, 6).result()
        thread = threading.Thread(target=in_a_plain_thread, args=[7])
        thread.start()
        thread.join()
    assert outcomes == [LookupError, LookupError]
