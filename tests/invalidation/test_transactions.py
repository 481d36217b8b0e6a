"""Transaction-aware invalidation: at once, again on commit, and never twice after a rollback."""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections, transaction

from django_perf.cache.invalidation import invalidate, invalidate_instance, invalidate_model
from testproject.blog.invalidation import article_key
from testproject.blog.models import Article, Author

NOW = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)


def make_article(slug: str = "s", title: str = "Old") -> Article:
    author = Author.objects.create(name="Ada", email=f"{slug}@x.org", joined_at=NOW)
    return Article.objects.create(author=author, title=title, slug=slug, body="", published_at=NOW)


@pytest.mark.django_db
def test_inside_a_transaction_keys_are_dropped_at_once_and_again_on_commit(
    configure_cache, django_capture_on_commit_callbacks
):
    cache = configure_cache("memory", "database")
    article = make_article()
    key = article_key("s")
    cache.set(key, "Old")

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        article.title = "New"
        article.save()
        assert cache.get(key) is None  # at once
        cache.set(key, "Old")  # a reader refilled it from the committed row meanwhile

    assert cache.get(key) == "Old"  # not committed yet: the second pass has not run
    assert len(callbacks) == 1
    callbacks[0]()  # the commit
    assert cache.get(key) is None


@pytest.mark.django_db
def test_after_a_rollback_nothing_is_invalidated_a_second_time(
    configure_cache, django_capture_on_commit_callbacks
):
    cache = configure_cache("memory", "database")
    article = make_article()
    key = article_key("s")

    with django_capture_on_commit_callbacks() as callbacks:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            article.title = "Rolled back"
            article.save()
            cache.set(key, "Old")
            raise RuntimeError("abort")
        assert callbacks == []  # the second pass went with the savepoint
    assert cache.get(key) == "Old"


@pytest.mark.django_db
def test_what_a_rolled_back_transaction_cached_itself_stays_until_invalidated_again(
    configure_cache,
):
    # Django has no rollback hook: docs/invalidation.rst says so, and what to do about it.
    cache = configure_cache("memory", "database")
    article = make_article()
    key = article_key("s")
    with contextlib.suppress(RuntimeError), transaction.atomic():
        article.title = "New"
        article.save()
        cache.set(key, Article.objects.get(slug="s").title)  # read from the uncommitted row
        raise RuntimeError("a later check failed")
    assert Article.objects.get(slug="s").title == "Old"
    assert cache.get(key) == "New"  # left behind by the transaction itself

    invalidate_instance(article)  # the documented remedy, after the rollback
    invalidate_model(Article, [article.pk])
    assert cache.get(key) is None


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread (its own database connection) and return its result."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


LAYOUTS = [
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    # The table tier on a second connection, so cache writes stay out of the transaction.
    pytest.param(("memory", {"KIND": "database", "DATABASE": "pooled"}), id="memory+database"),
]


@pytest.fixture
def _close_pooled() -> Iterator[None]:
    yield
    connections["pooled"].close_pool()  # so the test database can be dropped at the end


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=["default", "pooled"])
@pytest.mark.parametrize("kinds", LAYOUTS)
@pytest.mark.usefixtures("_close_pooled")
def test_a_concurrent_reader_cannot_leave_a_stale_value_behind(configure_cache, kinds):
    cache = configure_cache(*kinds)
    article = make_article()
    key = article_key("s")

    def read() -> str:
        """What a view does in another request: the cache, else the database."""
        title = cache.get(key)
        if title is None:
            title = Article.objects.get(slug="s").title
            cache.set(key, title)
        return title

    assert in_thread(read) == "Old"
    with transaction.atomic():
        article.title = "New"
        article.save()
        assert cache.get(key) is None  # dropped at once
        # Another request, while the transaction is open, sees the committed row...
        assert in_thread(read) == "Old"
        assert cache.get(key) == "Old"  # ...and put the old title back in the cache.
    # The commit dropped it again: no reader is served the old title from now on.
    assert cache.get(key) is None
    assert in_thread(read) == "New"

    with contextlib.suppress(RuntimeError), transaction.atomic():
        article.title = "Never"
        article.save()
        assert in_thread(read) == "New"
        raise RuntimeError("abort")
    # Rolled back: what the reader cached is right, and is not dropped a second time.
    assert cache.get(key) == "New"
    assert in_thread(read) == "New"


class ReplicaRouter:
    """The usual primary/replica router: reads go to ``pooled``, writes to ``default``."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "pooled"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, *args: Any, **hints: Any) -> bool:
        return True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=["default", "pooled"])
@pytest.mark.parametrize("call", ["invalidate_model", "invalidate_instance"])
@pytest.mark.usefixtures("_close_pooled")
def test_with_a_replica_router_the_second_pass_follows_the_writers_transaction(
    configure_cache, settings, call
):
    cache = configure_cache("memory", {"KIND": "database", "DATABASE": "pooled"})
    article = make_article()
    key = article_key("s")
    settings.DATABASE_ROUTERS = [f"{__name__}.ReplicaRouter"]

    def read() -> str:
        title = cache.get(key)
        if title is None:
            title = Article.objects.using("default").get(slug="s").title
            cache.set(key, title)
        return title

    with transaction.atomic(using="default"):
        Article.objects.using("default").filter(pk=article.pk).update(title="New")  # no signal
        if call == "invalidate_model":
            invalidate_model(Article, [article.pk])  # reads the row from the replica
        else:
            invalidate_instance(Article.objects.get(pk=article.pk))  # an instance of the replica
        assert cache.get(key) is None  # at once
        assert in_thread(read) == "Old"  # another request caches the committed row meanwhile
    assert cache.get(key) is None  # and again when the writer's transaction commits
    assert in_thread(read) == "New"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delete", ["cache.delete", "invalidate(keys=...)"])
def test_a_read_between_a_key_delete_and_its_commit_leaves_no_copy(configure_cache, delete):
    """Other connections see the row until the commit and copy it up; the commit drops it."""
    cache = configure_cache("memory", "redis", "database")
    cache.set("k", "old", 300)
    deleted, read = threading.Event(), threading.Event()
    out: dict[str, Any] = {}

    def writer() -> None:
        with transaction.atomic():
            if delete == "cache.delete":
                cache.delete("k")
            else:
                invalidate(keys=["k"])
            deleted.set()
            read.wait(5)

    def reader() -> None:
        deleted.wait(5)
        out["read"] = cache.get("k")  # its own connection: the delete is not committed
        read.set()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert out["read"] == "old"
    assert cache._store.redis.get(cache.make_key("k")) is None
    assert cache.get("k") is None
