"""``manage.py invalidate_cache``: options, output, confirmation, progress, every CommandError."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

from django_perf.cache.invalidation import invalidate_model, register, registry
from django_perf.management.commands import invalidate_cache
from testproject.blog.models import Comment

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("invalidate_cache", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def row(tier: str, count: int) -> str:
    """A line of the per-tier table (tier names padded to 'database')."""
    return f"  {tier:<8}  {count:>9,}"


@pytest.fixture
def cache(configure_cache):
    cache = configure_cache("memory", "database")
    cache.set_many({"user:1": 1, "user:2": 2, "post:1": 3})
    return cache


def test_keys_are_dropped_and_each_tier_count_printed(cache):
    out, _ = run("--key", "user:1", "--key", "post:1")
    assert out.splitlines()[:4] == [
        "Dropped from the cache 'default':",
        row("memory", 2),
        row("database", 2),
        row("total", 4),
    ]
    assert "only this process's L1 was cleared" in out
    assert cache.get_many(["user:1", "user:2", "post:1"]) == {"user:2": 2}


def test_json_output_is_the_engine_report(cache):
    out, _ = run("--pattern", "user:*", "--tag", "t", "--json")
    data = json.loads(out)
    assert data["per_tier"] == {"memory": 2, "database": 2}
    assert data["total"] == 4
    assert data["tags"] == 1
    assert data["dry_run"] is False
    assert cache.get("post:1") == 3


def test_dry_run_counts_without_dropping_or_asking(cache):
    out, _ = run("--all", "--dry-run")
    assert out.startswith("Would drop from the cache 'default':")
    assert row("total", 6) in out
    assert cache.get("user:1") == 1


def test_tier_option_limits_the_work(cache):
    out, _ = run("--key", "user:1", "--tier", "database", "--json")
    assert json.loads(out)["per_tier"] == {"database": 1}
    assert cache._store.memory.contains(cache.make_key("user:1"))


@pytest.fixture
def comments():
    from datetime import UTC, datetime

    from testproject.blog.models import Article, Author

    author = Author.objects.create(name="a", email="a@x.org", joined_at=datetime.now(UTC))
    article = Article.objects.create(
        author=author, title="t", slug="t", body="", published_at=datetime.now(UTC)
    )
    registration = register(Comment, keys=lambda c: [f"comment:{c.pk}"], tags=lambda c: ["cm"])
    rows = [
        Comment.objects.create(
            article=article, author_name=f"n{i}", body="", created_at=author.joined_at
        )
        for i in range(3)
    ]
    yield rows
    registry.remove(registration)


def test_model_and_pks_use_the_registrations(cache, comments):
    for comment in comments:
        cache.set(f"comment:{comment.pk}", comment.body)
    first, second, third = comments
    out, _ = run("--model", "blog.Comment", "--pk", str(first.pk), str(second.pk), "999999")
    assert row("total", 4) in out
    assert "Rows read for the model's registrations: 2." in out
    assert "Not found (deleted rows cannot name their keys; use --key): 999999." in out
    assert "1 tag(s) got a new generation" in out
    assert cache.get(f"comment:{third.pk}") == ""
    out, _ = run("--model", "blog.comment", "--json")  # every row; the name is case-insensitive
    assert json.loads(out)["rows"] == 3


def test_a_failing_registration_is_a_command_error_naming_it(cache, comments):
    def keys(comment):
        return [{}["missing"]]  # a bug in the registered code: KeyError

    registration = register(Comment, keys=keys)
    try:
        with pytest.raises(CommandError) as raised:
            run("--model", "blog.Comment", "--pk", str(comments[0].pk))
    finally:
        registry.remove(registration)
    assert str(raised.value) == (
        f"register(blog.Comment, keys={keys.__qualname__}) failed for blog.Comment "
        f"pk={comments[0].pk}: KeyError: 'missing'"
    )


class Terminal(io.StringIO):
    """Typed answers on a stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_all_asks_for_confirmation_on_a_terminal(cache, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("no\n"))
    with pytest.raises(CommandError, match="Cancelled; nothing was invalidated"):
        run("--all")
    assert cache.get("user:1") == 1
    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    out, err = run("--all", "--json")
    # The question goes to stderr, so that stdout (here JSON) stays clean when redirected.
    assert err.startswith(
        "--all drops every entry of the cache 'default' in every process. Type 'yes' to continue: "
    )
    assert json.loads(out)["per_tier"]
    assert cache.get("user:1") is None


def test_end_of_input_at_the_question_cancels(cache, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal(""))  # Ctrl-D
    with pytest.raises(CommandError, match="Cancelled; nothing was invalidated"):
        run("--all")
    assert cache.get("user:1") == 1


@pytest.mark.parametrize("pattern", ["**", "?*", "*?*", "?*?"])
def test_a_match_everything_pattern_needs_yes_too(cache, monkeypatch, pattern):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(CommandError, match=r"--pattern '.*' drops every entry.*add --yes"):
        run("--pattern", pattern)
    assert cache.get("user:1") == 1
    run("--pattern", pattern, "--yes")
    assert cache.get_many(["user:1", "post:1"]) == {}
    cache.set("a", 1)
    run("--all", "--no-input")
    assert cache.get("a") is None


def test_a_pattern_with_a_literal_character_needs_no_confirmation(cache, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    run("--pattern", "user:*")
    assert cache.get_many(["user:1", "post:1"]) == {"post:1": 3}


def test_long_scans_show_progress(cache, monkeypatch):
    monkeypatch.setattr(invalidate_cache, "PROGRESS_AFTER", 0)
    monkeypatch.setattr(invalidate_cache, "PROGRESS_EVERY_LOG", 0)
    cache._store.database.cull_batch = 2
    cache.set_many({f"user:{i}": i for i in range(10)})
    _, err = run("--pattern", "user:*")
    lines = err.splitlines()
    assert lines[0] == "database: scanned 2, matched 2"
    assert lines[-1] == "database: scanned 10, matched 10"


COMMAND_ERRORS = [
    ((), "Nothing to invalidate. Give --key KEY, --pattern GLOB, --tag TAG"),
    (("--pk", "1"), "--pk needs --model: e.g. --model blog.Article --pk 1 2"),
    (("--all", "--key", "a"), "--all already drops every entry; give it alone."),
    (("--tag", "t", "--tier", "memory"), "leave --tier out with --tag"),
    (("--pattern", "user:["), r"unclosed '\[' at position 5; close the character class"),
    (("--pattern", "[z-a]"), r"a range must go upwards, e.g. '\[a-z\]'"),
    (("--model", "blog.Nope"), "No installed model 'blog.Nope'"),
    (("--model", "Article"), "must be written 'app_label.ModelName'"),
    (("--model", "blog.Tag"), "blog.Tag has no invalidation registrations"),
    (("--key", "a", "--tier", "disk"), "Unknown tier 'disk'; tiers are named memory, redis"),
    (("--key", "a", "--tier", "redis"), "The cache 'default' has no redis tier"),
    (("--key", "a", "--alias", "nope"), "No cache alias 'nope' in settings.CACHES"),
]


@pytest.mark.parametrize(("args", "message"), COMMAND_ERRORS)
def test_bad_arguments_end_in_a_command_error_saying_what_to_type(cache, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_a_bad_primary_key_is_a_command_error(cache, comments):
    with pytest.raises(CommandError, match=r"'abc' is not a primary key of blog\.Comment"):
        run("--model", "blog.Comment", "--pk", "abc")


@pytest.mark.parametrize("pk", ["99999999999999999999999", "-99999999999999999999999"])
def test_a_primary_key_the_database_cannot_store_is_a_command_error(cache, comments, pk):
    # Not the driver's OverflowError (SQLite) or DataError (PostgreSQL) from the query.
    with pytest.raises(CommandError, match=rf"'{pk}' is not a primary key of blog\.Comment.*range"):
        run("--model", "blog.Comment", "--pk", pk)
    with pytest.raises(ValueError, match=rf"{pk} is not a primary key of blog\.Comment"):
        invalidate_model(Comment, [int(pk)])


@pytest.mark.redis
def test_a_failed_tier_prints_the_report_then_fails(configure_cache, redis_server):
    cache = configure_cache("memory", "redis", "database", STRICT=False)
    cache.set("user:1", 1)
    redis_server.stop()
    out = io.StringIO()
    try:
        with pytest.raises(CommandError, match=r"Some tiers failed: redis .*ConnectionError"):
            call_command("invalidate_cache", "--key", "user:1", stdout=out)
    finally:
        redis_server.start()
    assert row("redis", 0) + "  FAILED: ConnectionError" in out.getvalue()
    assert row("database", 1) in out.getvalue()
