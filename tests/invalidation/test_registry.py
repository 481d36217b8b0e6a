"""register(): what each model signal drops, registration errors, many registrations per model."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, models, transaction
from django.db.models.deletion import Collector
from django.db.models.signals import post_delete, pre_delete
from django.test.utils import CaptureQueriesContext, isolate_apps

from django_perf.cache.invalidation import (
    invalidate,
    invalidate_instance,
    invalidate_model,
    register,
    registry,
    tagged_key,
)
from testproject.blog.invalidation import ARTICLES, article_key
from testproject.blog.models import Article, Author, Comment, Event, Tag
from testproject.bulkdemo.models import Item, Kitchen, Token

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)


@contextmanager
def registered(*args: Any, **kwargs: Any) -> Iterator[Any]:
    registration = register(*args, **kwargs)
    try:
        yield registration
    finally:
        registry.remove(registration)


@pytest.fixture
def cache(configure_cache):
    return configure_cache("memory", "database")


@pytest.fixture
def author() -> Author:
    return Author.objects.create(name="Ada", email="ada@x.org", joined_at=NOW)


def new_article(author: Author, slug: str = "hello", **fields: Any) -> Article:
    return Article.objects.create(
        author=author, title=slug.title(), slug=slug, body="", published_at=NOW, **fields
    )


def cached_list(cache) -> str:
    """A list page cached under the ARTICLES tag, as the blog's cached home page is."""
    key = tagged_key("home", [ARTICLES])
    cache.set(key, "the list")
    return key


def test_saving_a_row_drops_its_keys_and_its_tags_entries(cache, author):
    article = new_article(author)
    cache.set(article_key("hello"), "page")
    list_key = cached_list(cache)

    article.title = "Changed"
    article.save()

    assert cache.get(article_key("hello")) is None
    assert tagged_key("home", [ARTICLES]) != list_key
    assert cache.get(tagged_key("home", [ARTICLES])) is None


def test_creating_a_row_drops_the_lists_it_joins(cache, author):
    cached_list(cache)
    new_article(author)
    assert cache.get(tagged_key("home", [ARTICLES])) is None


def test_a_changed_field_also_drops_what_the_stored_row_named(cache, author):
    article = new_article(author, slug="old-slug")
    cache.set_many({article_key("old-slug"): "old page", article_key("new-slug"): "stale"})

    article.slug = "new-slug"
    article.save()

    assert cache.get_many([article_key("old-slug"), article_key("new-slug")]) == {}


def test_previous_false_skips_the_extra_query_and_the_old_names(cache, author):
    article = new_article(author, slug="s1")
    comment = Comment.objects.create(article=article, author_name="x", body="b", created_at=NOW)
    with registered(Comment, keys=lambda c: [f"comment:{c.author_name}"], previous=False):
        cache.set_many({"comment:x": 1, "comment:y": 2})
        comment.author_name = "y"
        with CaptureQueriesContext(connection) as queries:
            comment.save()
        assert cache.get_many(["comment:x", "comment:y"]) == {"comment:x": 1}
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "comment" in q["sql"]]
    assert selects == []


def test_deleting_a_row_drops_its_keys(cache, author):
    article = new_article(author)
    cache.set(article_key("hello"), "page")
    list_key = cached_list(cache)
    article.delete()
    assert cache.get(article_key("hello")) is None
    assert tagged_key("home", [ARTICLES]) != list_key
    assert cache.get(tagged_key("home", [ARTICLES])) is None


def test_a_decorated_class_registers_its_methods_and_its_queries_run(cache, author):
    new_article(author, slug="one")
    new_article(author, slug="two")
    cache.set_many({article_key("one"): 1, article_key("two"): 2, "other": 3})
    list_key = cached_list(cache)

    author.name = "Ada L."
    author.save()  # AuthorPages in testproject/blog/invalidation.py

    assert cache.get_many([article_key("one"), article_key("two"), "other"]) == {"other": 3}
    assert tagged_key("home", [ARTICLES]) != list_key


@pytest.fixture
def tag_pages() -> Iterator[None]:
    with registered(Tag, keys=lambda tag: [f"tag:{tag.name}"]):
        yield


# (change, whether the other related tag is dropped too)
M2M_CHANGES = [
    pytest.param(lambda article, tag: article.tags.add(tag), False, id="forward add"),
    pytest.param(lambda article, tag: tag.articles.add(article), False, id="reverse add"),
    pytest.param(lambda article, tag: article.tags.remove(tag), False, id="forward remove"),
    pytest.param(lambda article, tag: tag.articles.remove(article), False, id="reverse remove"),
    pytest.param(lambda article, tag: article.tags.clear(), True, id="forward clear"),
    pytest.param(lambda article, tag: tag.articles.clear(), False, id="reverse clear"),
    pytest.param(lambda article, tag: article.tags.set([]), True, id="forward set"),
    pytest.param(lambda article, tag: tag.articles.set([]), False, id="reverse set"),
]


@pytest.mark.parametrize(("change", "other_dropped"), M2M_CHANGES)
def test_m2m_changes_drop_both_sides(cache, author, tag_pages, change, other_dropped):
    article = new_article(author)
    tag = Tag.objects.create(name="django")
    other = Tag.objects.create(name="python")
    article.tags.add(tag, other)
    if "add" in change.__code__.co_names:
        article.tags.remove(tag)  # so that adding it changes something
    cache.set_many({article_key("hello"): "page", "tag:django": 1, "tag:python": 2})

    change(article, tag)

    found = cache.get_many([article_key("hello"), "tag:django", "tag:python"])
    assert found == ({} if other_dropped else {"tag:python": 2})


def test_m2m_clear_drops_every_row_that_was_related(cache, author, tag_pages):
    article = new_article(author)
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    article.tags.add(*tags)
    cache.set_many({f"tag:t{i}": i for i in range(3)})
    article.tags.clear()
    assert cache.get_many([f"tag:t{i}" for i in range(3)]) == {}


def test_deleting_a_row_drops_what_its_many_to_many_partners_name(cache, author, tag_pages):
    """delete() removes the through rows without m2m_changed: the other side is named anyway."""
    article, other = new_article(author), new_article(author, slug="other")
    tag = Tag.objects.create(name="django")
    tag.articles.add(article, other)
    cache.set_many({"tag:django": 1, article_key("other"): 2})

    article.delete()
    assert cache.get_many(["tag:django", article_key("other")]) == {article_key("other"): 2}

    tag.delete()  # from the other side: the articles it was on
    assert cache.get(article_key("other")) is None


def test_deleting_a_row_drops_what_it_named_through_its_relations(cache, author):
    article = new_article(author)
    article.tags.add(Tag.objects.create(name="django"))
    with registered(Article, keys=lambda a: [f"tag:{t.name}:list" for t in a.tags.all()]):
        cache.set("tag:django:list", ["hello"])
        article.delete()  # after the delete it has no tags: named while it still had them
    assert cache.get("tag:django:list") is None


def new_event(article: Article) -> Event:
    return Event.objects.create(
        article=article, kind="view", occurred_at=NOW, day=NOW.date(), local_time=NOW.time(),
        duration=datetime.timedelta(1), score=1, amount=1, count=1, total=1,
    )  # fmt: skip


def test_deleting_a_row_drops_what_the_rows_it_sets_null_name(
    cache, author, django_capture_on_commit_callbacks
):
    """on_delete=SET_NULL rewrites rows with update(), which sends no signal."""
    article = new_article(author)
    event = new_event(article)
    names = [f"event:{event.pk}", f"article:{article.pk}:events"]
    with registered(Event, keys=lambda e: [f"event:{e.pk}", f"article:{e.article_id}:events"]):
        cache.set_many(dict.fromkeys(names, "page"))
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            article.delete()
            assert cache.get_many(names) == {}  # at once, what it named before and after
            cache.set_many(dict.fromkeys(names, "page"))  # a reader refilled them meanwhile
        assert cache.get_many(names) == {}  # and again on commit
    event.refresh_from_db()
    assert event.article_id is None


def test_a_reverse_foreign_key_manager_needs_bulk_false_or_invalidate_model(cache, author):
    """Its writes are update()s without a signal (docs: Limits); the two documented ways."""
    one, two = new_article(author, slug="one"), new_article(author, slug="two")
    comment = Comment.objects.create(article=one, author_name="x", body="", created_at=NOW)
    pages = ["article:one:comments", "article:two:comments"]
    with registered(Comment, keys=lambda c: [f"article:{c.article.slug}:comments"]):
        cache.set_many(dict.fromkeys(pages, "page"))
        two.comments.add(comment)  # UPDATE ... SET article_id: nothing is dropped
        assert cache.get_many(pages) == dict.fromkeys(pages, "page")

        one.comments.add(comment, bulk=False)  # saved: the new parent and, previous, the old
        assert cache.get_many(pages) == {}

        cache.set_many(dict.fromkeys(pages, "page"))
        invalidate_model(Comment, [comment.pk])  # what it names as stored: one
        two.comments.add(comment)
        invalidate_model(Comment, [comment.pk])  # what it names now: two
        assert cache.get_many(pages) == {}


def test_many_registrations_of_one_model_all_apply(cache, author):
    article = new_article(author)
    with (
        registered(Article, keys=lambda a: [f"extra:{a.pk}"]),
        registered(Article, patterns=lambda a: [f"feed:{a.author_id}:*"]),
    ):
        cache.set_many(
            {article_key("hello"): 1, f"extra:{article.pk}": 2, f"feed:{author.pk}:p1": 3, "x": 4}
        )
        article.save()
        assert cache.get_many(
            [article_key("hello"), f"extra:{article.pk}", f"feed:{author.pk}:p1", "x"]
        ) == {"x": 4}


def test_code_that_bypasses_signals_calls_invalidate_model_or_instance(cache, author):
    articles = [new_article(author, slug=f"s{i}") for i in range(3)]
    cache.set_many({article_key(f"s{i}"): i for i in range(3)})

    Article.objects.filter(slug="s0").update(title="Quietly changed")  # no signal
    assert cache.get(article_key("s0")) == 0
    assert invalidate_model(Article, [articles[0].pk]) == 1
    assert cache.get(article_key("s0")) is None

    invalidate_instance(articles[1])
    assert cache.get_many([article_key(f"s{i}") for i in range(3)]) == {article_key("s2"): 2}
    assert invalidate_model("blog.Article") == 3  # every row


def test_invalidate_with_a_model_reads_its_rows(cache, configure_cache, author):
    articles = [new_article(author, slug=f"s{i}") for i in range(3)]
    cache.set_many({article_key(f"s{i}"): i for i in range(3)})
    cached_list(cache)

    report = invalidate(model="blog.Article", pks=[articles[0].pk, str(articles[1].pk), 10**9])

    assert report.per_tier == {"memory": 2, "database": 2}
    assert report.tags == 1
    assert report.rows == 2
    assert report.missing_pks == [10**9]
    assert cache.get_many([article_key(f"s{i}") for i in range(3)]) == {article_key("s2"): 2}
    with pytest.raises(ValueError, match=r"'x' is not a primary key of blog\.Article"):
        invalidate(model=Article, pks=["x"])
    configure_cache("memory", alias="other")
    with pytest.raises(ValueError, match=r"registered for the cache.*'default', not 'other'"):
        invalidate(model=Article, alias="other")


def test_a_callable_returning_something_else_than_strings_fails_loudly(cache, author):
    article = new_article(author)
    with (
        registered(Article, keys=lambda a: [a.pk]),
        pytest.raises(TypeError, match=r"register\(blog\.Article, keys=.*returned \d+ \(int\)"),
    ):
        article.save()
    with (
        registered(Article, patterns=lambda a: ["feed:["]),
        pytest.raises(ValueError, match=r"returned a bad pattern.*unclosed"),
    ):
        article.save()


class NotAModel:
    pass


REGISTRATION_ERRORS = [
    (("blog.Article",), {"keys": str}, TypeError, "takes a model class as its first argument"),
    ((NotAModel,), {"keys": str}, TypeError, "takes a model class"),
    ((Article(slug="x"),), {"keys": str}, TypeError, "not an instance: write register"),
    ((Article,), {"keys": "article:1"}, TypeError, r"keys=lambda obj: \[f'article:\{obj.pk\}'\]"),
    ((Article,), {"tags": ["articles"]}, TypeError, "needs a callable that takes an instance"),
    ((Article,), {"patterns": 3}, TypeError, "patterns=lambda obj"),
    ((Article,), {"keys": str, "alias": "nope"}, ValueError, "alias='nope'.*configured aliases"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), REGISTRATION_ERRORS)
def test_bad_registrations_fail_where_register_is_called(args, kwargs, error, message):
    before = registry.registrations()
    with pytest.raises(error, match=message):
        register(*args, **kwargs)
    assert registry.registrations() == before


def test_decorator_forms(cache, author):
    @register(Comment)
    def comment_keys(comment: Comment) -> list[str]:
        return [f"c:{comment.pk}"]

    class Empty:
        pass

    try:
        assert comment_keys.__name__ == "comment_keys"  # the function is given back
        with pytest.raises(TypeError, match="needs at least one of the methods keys"):
            register(Comment)(Empty)
        with pytest.raises(TypeError, match="needs a callable"):
            register(Comment)(42)
        comment = Comment.objects.create(
            article=new_article(author), author_name="x", body="", created_at=NOW
        )
        cache.set(f"c:{comment.pk}", 1)
        comment.save()
        assert cache.get(f"c:{comment.pk}") is None
    finally:
        for registration in registry.for_model(Comment):
            registry.remove(registration)
    assert registry.for_model(Comment) == ()


def test_registrations_of_a_parent_apply_to_a_proxy_and_not_the_other_way(cache, author):
    with isolate_apps("testproject.blog"):

        class FeaturedArticle(Article):
            class Meta:
                proxy = True
                app_label = "blog"

    featured = FeaturedArticle.objects.create(
        author=author, title="F", slug="f", body="", published_at=NOW
    )
    with registered(FeaturedArticle, keys=lambda a: [f"featured:{a.pk}"]):
        cache.set_many({article_key("f"): 1, f"featured:{featured.pk}": 2})
        featured.save()  # the proxy's own registration and Article's
        assert cache.get_many([article_key("f"), f"featured:{featured.pk}"]) == {}

        cache.set_many({article_key("f"): 1, f"featured:{featured.pk}": 2})
        Article.objects.get(pk=featured.pk).save()  # only Article's
        assert cache.get_many([article_key("f"), f"featured:{featured.pk}"]) == {
            f"featured:{featured.pk}": 2
        }


def test_saving_a_new_instance_over_a_stored_row_drops_what_the_stored_row_named(cache, author):
    article = new_article(author, slug="old-slug")
    cache.set(article_key("old-slug"), "old page")
    # What a form or a serializer building Article(pk=...) does: it UPDATEs the stored row.
    replacement = Article(
        pk=article.pk, author=author, title="T", slug="new-slug", body="", published_at=NOW
    )
    replacement.save()
    assert Article.objects.get(pk=article.pk).slug == "new-slug"
    assert cache.get(article_key("old-slug")) is None


def article_fixture(pk: int, author: Author, slug: str) -> dict[str, Any]:
    return {
        "model": "blog.article",
        "pk": pk,
        "fields": {
            "author": author.pk,
            "title": "T",
            "slug": slug,
            "body": "",
            "status": "published",
            "published_at": NOW.isoformat(),
            "word_count": 0,
            "rating": "0",
            "tags": [],
        },
    }


def loaddata(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(rows))
    call_command("loaddata", str(path), verbosity=0)


def test_loaddata_updating_a_row_drops_what_the_stored_row_named(
    cache, author, tmp_path, django_capture_on_commit_callbacks
):
    article = new_article(author, slug="old-slug")
    cache.set_many({article_key("old-slug"): "old page", article_key("new-slug"): "stale"})
    with django_capture_on_commit_callbacks(execute=True):
        loaddata(tmp_path, [article_fixture(article.pk, author, "new-slug")])
    assert Article.objects.get(pk=article.pk).slug == "new-slug"
    assert cache.get_many([article_key("old-slug"), article_key("new-slug")]) == {}


def test_loaddata_names_what_rows_feed_once_the_fixture_commits(
    cache, author, tmp_path, django_capture_on_commit_callbacks
):
    # The docs' Comment registration follows comment.article, which this fixture loads later.
    comment = {
        "model": "blog.comment",
        "pk": 1,
        "fields": {"article": 77, "author_name": "x", "body": "", "created_at": NOW.isoformat()},
    }
    cache.set_many({"article:s77:comments": "old", article_key("s77"): "old"})
    with (
        registered(Comment, keys=lambda c: [f"article:{c.article.slug}:comments"]),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        loaddata(tmp_path, [comment, article_fixture(77, author, "s77")])
        assert Comment.objects.get(pk=1).article.slug == "s77"
        # Nothing ran while the rows were loading (raw saves must not read other rows)...
        assert cache.get_many(["article:s77:comments", article_key("s77")]) == {
            "article:s77:comments": "old",
            article_key("s77"): "old",
        }
        assert callbacks == []  # (captured when the block ends)
    assert len(callbacks) == 2
    for callback in callbacks:  # ...it all runs on commit.
        callback()
    assert cache.get_many(["article:s77:comments", article_key("s77")]) == {}


def test_loaddata_names_what_a_rows_many_to_many_feeds_once_the_fixture_commits(
    cache, tmp_path, django_capture_on_commit_callbacks
):
    # Django sets a fixture row's many-to-many right after its raw save, with no raw flag on
    # m2m_changed; the author and the tag it follows are only loaded later in this fixture.
    article = article_fixture(77, Author(pk=9), "s77")
    article["fields"]["tags"] = [5]
    author = {
        "model": "blog.author",
        "pk": 9,
        "fields": {"name": "Ada", "email": "ada@x.org", "bio": "", "joined_at": NOW.isoformat()},
    }
    tag = {"model": "blog.tag", "pk": 5, "fields": {"name": "db"}}
    keys = ["author:ada@x.org:articles", "tag:db:articles"]
    cache.set_many(dict.fromkeys(keys, "old"))
    with (
        registered(Article, keys=lambda a: [f"author:{a.author.email}:articles"]),
        registered(Tag, keys=lambda t: [f"tag:{t.name}:articles"]),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        loaddata(tmp_path, [article, author, tag])
        assert list(Article.objects.get(pk=77).tags.values_list("name", flat=True)) == ["db"]
        assert cache.get_many(keys) == dict.fromkeys(keys, "old")  # nothing ran mid-fixture
    assert callbacks
    for callback in callbacks:
        callback()
    assert cache.get_many(keys) == {}


def test_patterns_on_a_cache_that_cannot_delete_by_pattern_fail_at_register(settings):
    settings.CACHES = {
        **settings.CACHES,
        "plain": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "p"},
    }
    before = registry.registrations()
    try:
        with pytest.raises(ValueError, match=r"register\(blog\.Article, patterns=.*'plain'"):
            register(Article, patterns=lambda a: [f"feed:{a.pk}:*"], alias="plain")

        with pytest.raises(ValueError, match="cannot delete by pattern"):

            @register(Article, alias="plain")
            class Feeds:
                def patterns(self, article: Article) -> list[str]:
                    return [f"feed:{article.pk}:*"]

        assert registry.registrations() == before
    finally:  # a registration let through would fail every later Article.save()
        for registration in registry.registrations():
            if not any(registration is kept for kept in before):
                registry.remove(registration)


def test_a_cache_changed_after_register_logs_patterns_it_cannot_drop(
    configure_cache, settings, author, caplog
):
    configure_cache("memory", alias="plain")
    article = new_article(author)
    with registered(
        Article,
        keys=lambda a: [f"page:{a.pk}"],
        patterns=lambda a: [f"feed:{a.pk}:*"],
        alias="plain",
    ):
        settings.CACHES = {
            **settings.CACHES,
            "plain": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "p"},
        }
        plain = caches["plain"]
        plain.set(f"page:{article.pk}", "page")
        with caplog.at_level("ERROR", logger="django_perf.cache"):
            article.title = "Changed"
            article.save()  # the row is written: the save does not fail
    assert Article.objects.get(pk=article.pk).title == "Changed"
    assert plain.get(f"page:{article.pk}") is None  # keys are still dropped
    assert f"patterns feed:{article.pk}:* of a registration were not invalidated" in caplog.text


def hashed_key(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION that hides the key (as sites that hash long keys do)."""
    return hashlib.sha1(f"{key_prefix}:{version}:{key}".encode()).hexdigest()


def test_patterns_on_a_cache_that_hashes_its_keys_fail_at_register(configure_cache):
    configure_cache("memory", "database", KEY_FUNCTION=hashed_key)
    before = registry.registrations()
    try:
        with pytest.raises(ValueError, match=r"register\(blog\.Article, patterns=.*KEY_FUNCTION"):
            register(Article, patterns=lambda a: [f"feed:{a.pk}:*"])
        assert registry.registrations() == before
    finally:  # a registration let through would fail every later Article.save()
        for registration in registry.registrations():
            if not any(registration is kept for kept in before):
                registry.remove(registration)


def test_a_key_function_changed_after_register_logs_patterns_and_does_the_rest(
    configure_cache, author, caplog
):
    article = new_article(author)
    configure_cache("memory", "database")
    with registered(
        Article,
        patterns=lambda a: [f"feed:{a.pk}:*"],
        keys=lambda a: [f"page:{a.pk}"],
        tags=lambda a: ["pages"],
    ):
        cache = configure_cache("memory", "database", KEY_FUNCTION=hashed_key)
        cache.set(f"page:{article.pk}", "page")
        list_key = tagged_key("list", ["pages"])
        with caplog.at_level("ERROR", logger="django_perf.cache"), transaction.atomic():
            article.title = "Changed"
            article.save()  # the row is written: the save, and its transaction, go on
    assert Article.objects.get(pk=article.pk).title == "Changed"
    assert cache.get(f"page:{article.pk}") is None  # keys and tags are still dropped
    assert tagged_key("list", ["pages"]) != list_key
    assert f"patterns feed:{article.pk}:* of a registration were not invalidated" in caplog.text
    assert "KEY_FUNCTION" in caplog.text


# --- Which models get delete signals: the others keep Django's fast delete ------------------


def fast_deletes(model: type[models.Model]) -> bool:
    return Collector(using="default").can_fast_delete(model.objects.all())


def listens_to_deletes(model: type[models.Model]) -> bool:
    return pre_delete.has_listeners(model) and post_delete.has_listeners(model)


def ignores_deletes(model: type[models.Model]) -> bool:
    return not pre_delete.has_listeners(model) and not post_delete.has_listeners(model)


def test_an_unregistered_model_unrelated_to_registered_ones_is_deleted_in_one_query():
    """No SELECT of the rows, no instances, no signals: one DELETE, as without django-perf."""
    Item.objects.bulk_create(
        Item(qty=i, name=f"i{i}", body="", price=1, ts=NOW, active=True) for i in range(5)
    )
    assert fast_deletes(Item)
    with CaptureQueriesContext(connection) as queries:
        deleted, _ = Item.objects.all().delete()
    assert deleted == 5
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["DELETE"]


def test_models_whose_delete_changes_no_registered_row_keep_the_fast_delete(author):
    """Comment cascades from Article and Event is SET_NULL by it: unregistered, nobody cares."""
    article = new_article(author)
    Comment.objects.create(article=article, author_name="x", body="", created_at=NOW)
    new_event(article)
    for model in (Comment, Event):
        assert ignores_deletes(model)
        assert fast_deletes(model)
        with CaptureQueriesContext(connection) as queries:
            model.objects.all().delete()
        assert len(queries) == 1


def test_delete_signals_go_to_registered_models_and_those_whose_delete_changes_their_rows():
    """Registered models, the other side of their many-to-many, targets of their SET_NULL."""
    assert listens_to_deletes(Article)  # registered
    assert listens_to_deletes(Author)
    assert listens_to_deletes(Tag)  # many-to-many to Article: links go without m2m_changed
    assert ignores_deletes(Article.tags.through)
    assert ignores_deletes(Token)

    with registered(Kitchen, keys=lambda k: [f"kitchen:{k.pk}"]):
        assert listens_to_deletes(Kitchen)
        assert listens_to_deletes(Token)  # Kitchen.token is SET_NULL: an update(), no signal
    assert ignores_deletes(Kitchen)
    assert ignores_deletes(Token)
    assert fast_deletes(Kitchen)


def test_deleting_a_row_drops_what_rows_it_sets_null_name_once_registered_at_runtime(cache):
    token = Token.objects.create(label="t1")
    kitchen = Kitchen.objects.create(name="k", token=token)
    names = [f"kitchen:{kitchen.pk}:{token.pk}", f"kitchen:{kitchen.pk}:None"]
    with registered(Kitchen, keys=lambda k: [f"kitchen:{k.pk}:{k.token_id}"]):
        cache.set_many(dict.fromkeys(names, "page"))
        token.delete()  # before and after its token is set to NULL
        assert cache.get_many(names) == {}


def test_proxies_and_children_of_a_registered_model_get_delete_signals(cache, author):
    """Django matches a signal's sender exactly: a proxy or a child is a sender of its own."""
    with isolate_apps("testproject.blog"):

        class FeaturedArticle(Article):  # defined after Article's registration
            class Meta:
                proxy = True
                app_label = "blog"

        class LongArticle(Article):  # multi-table child
            class Meta:
                app_label = "blog"

        class PinnedComment(Comment):  # defined before Comment's registration
            class Meta:
                proxy = True
                app_label = "blog"

    assert listens_to_deletes(FeaturedArticle)
    assert listens_to_deletes(LongArticle)
    featured = FeaturedArticle.objects.create(
        author=author, title="F", slug="f", body="", published_at=NOW
    )
    cache.set(article_key("f"), "page")
    featured.delete()
    assert cache.get(article_key("f")) is None

    assert ignores_deletes(PinnedComment)
    with registered(Comment, keys=lambda c: [f"comment:{c.pk}"]):
        assert listens_to_deletes(PinnedComment)
        comment = Comment.objects.create(
            article=new_article(author), author_name="x", body="", created_at=NOW
        )
        cache.set(f"comment:{comment.pk}", "page")
        PinnedComment.objects.get(pk=comment.pk).delete()
        assert cache.get(f"comment:{comment.pk}") is None
    assert ignores_deletes(PinnedComment)
