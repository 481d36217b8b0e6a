"""cache_result: keys, ttl, tags, custom keys, None, invalidate/refresh, methods, early refresh."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import decimal
import enum
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction

from django_perf.cache import cache_result
from django_perf.cache.invalidation import invalidate
from testproject.blog.invalidation import ARTICLES, article_key
from testproject.blog.models import Article, Author

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(configure_cache):
    return configure_cache("memory", "database")


# Functions keyed by their arguments are defined at module level: cache_result refuses nested
# functions and lambdas without key= (they share a qualname, so they would share keys).
add_calls: list[tuple[int, int, int]] = []


@cache_result(ttl=60)
def add(a: int, b: int = 2, *, scale: int = 1) -> int:
    add_calls.append((a, b, scale))
    return (a + b) * scale


def test_a_result_is_computed_once_per_distinct_arguments(cache):
    calls = add_calls
    calls.clear()
    assert add(1) == add(1) == add(1, 2) == add(a=1, b=2) == add(1, scale=1) == 3
    assert add(1, 3) == 4
    assert add(1, scale=2) == 6
    assert calls == [(1, 2, 1), (1, 3, 1), (1, 2, 2)]
    assert add.key(1) == add.key(1, b=2) != add.key(1, 3)
    assert add.key(1).startswith(f"djp:fn:{__name__}.")
    assert add.__name__ == "add"
    assert not iscoroutinefunction(add)


def test_async_functions_are_cached_and_stay_coroutine_functions(cache):
    calls = []

    @cache_result(ttl=60, key=lambda currency: f"test:fetch:{currency}")
    async def fetch(currency: str) -> dict[str, float]:
        calls.append(currency)
        await asyncio.sleep(0)
        return {"rate": 1.1}

    async def main() -> None:
        assert await fetch("EUR") == await fetch("EUR") == {"rate": 1.1}
        assert calls == ["EUR"]
        assert await fetch.invalidate("EUR") is True
        assert await fetch("EUR") == {"rate": 1.1}
        assert calls == ["EUR", "EUR"]
        assert await fetch.refresh("EUR") == {"rate": 1.1}
        assert calls == ["EUR", "EUR", "EUR"]

    assert iscoroutinefunction(fetch)
    async_to_sync(main)()


def test_ttl_is_the_lifetime_of_a_result(cache):
    calls = []

    @cache_result(ttl=0.3, key=lambda: "test:now")
    def now() -> int:
        calls.append(1)
        return len(calls)

    assert now() == now() == 1
    time.sleep(0.4)
    assert now() == 2


def test_none_is_cached_only_when_asked(cache):
    calls = []

    @cache_result(ttl=60, key=lambda: "test:nothing")
    def nothing() -> None:
        calls.append(1)

    @cache_result(ttl=60, cache_none=True, key=lambda: "test:nothing_cached")
    def nothing_cached() -> None:
        calls.append(2)

    assert nothing() is None
    assert nothing() is None
    assert nothing_cached() is None
    assert nothing_cached() is None
    assert calls == [1, 1, 2]


def test_invalidate_and_refresh_take_the_same_arguments(cache):
    calls = []

    @cache_result(ttl=60, key=lambda x: f"test:square:{x}")
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert square(3) == 9
    assert square.invalidate(3) is True
    assert square.invalidate(3) is False
    assert square(3) == 9
    assert square.refresh(3) == 9
    assert square(3) == 9
    assert calls == [3, 3, 3]


def test_a_custom_key_is_used_as_is_so_the_registry_can_name_it(cache):
    author = Author.objects.create(name="Ada", email="ada@x.org", joined_at=NOW)
    article = Article.objects.create(
        author=author, title="Hello", slug="hello", body="", published_at=NOW
    )
    calls = []

    @cache_result(ttl=60, key=article_key)
    def page(slug: str) -> str:
        calls.append(slug)
        return Article.objects.get(slug=slug).title

    assert page("hello") == page("hello") == "Hello"
    assert cache.get(article_key("hello")) == "Hello"
    article.title = "Changed"
    article.save()  # the registry drops article_key("hello")
    assert page("hello") == "Changed"
    assert calls == ["hello", "hello"]


def test_tags_static_or_from_the_arguments(cache):
    calls = []

    @cache_result(ttl=60, tags=[ARTICLES], key=lambda: "test:listing")
    def listing() -> int:
        calls.append("list")
        return len(calls)

    @cache_result(
        ttl=60,
        tags=lambda author_id: [f"author:{author_id}"],
        key=lambda author_id: f"test:by_author:{author_id}",
    )
    def by_author(author_id: int) -> int:
        calls.append(author_id)
        return author_id

    assert listing() == listing()
    assert by_author(1) == by_author(1) == 1
    assert by_author(2) == 2
    invalidate(tags=["author:1"])
    assert by_author(1) == 1
    assert by_author(2) == 2
    assert calls == ["list", 1, 2, 1]
    author = Author.objects.create(name="Ada", email="ada@x.org", joined_at=NOW)
    Article.objects.create(author=author, title="New", slug="new", body="", published_at=NOW)
    assert listing() == 5  # a new article invalidated ARTICLES through the registry


def test_exceptions_propagate_and_nothing_is_cached(cache):
    calls = []

    @cache_result(ttl=60, key=lambda: "test:fragile")
    def fragile() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("service down")
        return "ok"

    with pytest.raises(ConnectionError, match="service down"):
        fragile()
    assert fragile() == "ok"
    assert fragile() == "ok"
    assert calls == [1, 1]


class Service:
    """A service object: no stable value of its own, so it gives one."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.calls = 0

    def __cache_key__(self) -> str:
        return self.region

    @cache_result(ttl=60)
    def price(self, item: str) -> str:
        self.calls += 1
        return f"{self.region}:{item}"

    @classmethod
    @cache_result(ttl=60)
    def catalog(cls) -> str:
        return cls.__name__


class Unkeyed:
    @cache_result(ttl=60)
    def value(self) -> int:
        return 1


def test_methods_are_keyed_by_their_instance(cache):
    eu, us = Service("eu"), Service("us")
    assert eu.price("tea") == eu.price("tea") == "eu:tea"
    assert us.price("tea") == "us:tea"
    assert Service("eu").price("tea") == "eu:tea"  # another instance, the same key
    assert eu.calls == 1
    assert us.calls == 1
    assert eu.price.key("tea") == Service.price.key(eu, "tea")
    assert eu.price.invalidate("tea") is True
    assert eu.price("tea") == "eu:tea"
    assert eu.calls == 2
    assert eu.price.refresh("coffee") == "eu:coffee"
    assert Service.catalog() == "Service"
    with pytest.raises(TypeError, match=r"argument 'self' is a tests\.invalidation\..*Unkeyed"):
        Unkeyed().value()


@cache_result(ttl=60)
def name_of(who: Author) -> str:
    return who.name


def test_model_instances_are_keyed_by_label_and_primary_key(cache):
    author = Author.objects.create(name="Ada", email="ada@x.org", joined_at=NOW)
    assert name_of(author) == "Ada"
    assert name_of.key(author) == name_of.key(Author.objects.get(pk=author.pk))
    with pytest.raises(TypeError, match=r"argument 'who' is an unsaved blog\.Author"):
        name_of(Author(name="x"))


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


ARGUMENTS = (
    "s",
    12,
    1.5,
    True,
    None,
    b"\x00",
    (1, "a"),
    [1, [2]],
    {"b": 1, "a": {"z", "y", "x"}},
    frozenset({3, 1, 2}),
    decimal.Decimal("1.10"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    datetime.date(2024, 1, 2),
    datetime.timedelta(seconds=90),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Color.RED,
    Point(1, 2),
)

KEY_SCRIPT = """
import os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
django.setup()
from tests.invalidation.test_cache_result import ARGUMENTS, keyed
print(keyed.key(*ARGUMENTS))
"""


@cache_result(ttl=60)
def keyed(*args: Any) -> None:
    return None


def test_keys_are_stable_across_processes_and_hash_seeds():
    here = keyed.key(*ARGUMENTS)
    # Reordered dicts and sets give the same key; different values do not.
    shuffled = list(ARGUMENTS)
    shuffled[8] = {"a": {"x", "y", "z"}, "b": 1}
    assert keyed.key(*shuffled) == here
    assert keyed.key(*ARGUMENTS[:-1], Point(2, 1)) != here
    assert keyed.key(1) != keyed.key("1") != keyed.key(1.0) != keyed.key(True)
    assert keyed.key((1, 2)) != keyed.key([1, 2])
    # Another process, with another string hash seed than this one's.
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [sys.executable, "-c", KEY_SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == here


class Columns(collections.OrderedDict):
    pass


def test_ordered_dicts_are_keyed_in_their_order():
    a = collections.OrderedDict([("name", 1), ("price", 2)])
    b = collections.OrderedDict([("price", 2), ("name", 1)])
    assert a != b
    assert keyed.key(a) != keyed.key(b)
    assert keyed.key(a) == keyed.key(collections.OrderedDict(a))
    assert keyed.key(Columns(a)) != keyed.key(Columns(b))  # subclasses too
    assert keyed.key(a) != keyed.key(dict(a))  # a dict and an OrderedDict are not one value


@cache_result(ttl=60)
def report(filters: dict[str, Any], rows: Any = None) -> int:
    return 1


def test_an_unkeyable_argument_is_a_type_error_naming_it(cache):
    with pytest.raises(
        TypeError, match=r"argument \"filters\['tags'\]\[1\]\" is a builtins\.object"
    ):
        report({"tags": ["a", object()]})
    with pytest.raises(TypeError, match=r"argument 'rows' is a QuerySet.*pass the ids"):
        report({}, Author.objects.all())
    with pytest.raises(TypeError, match=r"report\(\): got an unexpected keyword argument 'x'"):
        report({}, x=1)
    with pytest.raises(TypeError, match=r"key=\.\.\.\) of .* must return a non-empty string"):
        cache_result(key=lambda: 3)(lambda: 1)()


DECORATION_ERRORS = [
    ({"ttl": 0}, ValueError, r"ttl=0\) would cache nothing"),
    ({"ttl": -1}, ValueError, r"ttl=-1\) must be greater than 0"),
    ({"ttl": "60"}, TypeError, "takes a number"),
    ({"early": "soon"}, ValueError, "must be None, 'probabilistic' or 'stale'"),
    ({"early": "stale"}, ValueError, "say for how long with stale_ttl"),
    ({"stale_on_error": True}, ValueError, "needs stale_ttl"),
    ({"ttl": None, "early": "probabilistic"}, ValueError, "need a ttl"),
    ({"alias": "nope"}, ValueError, "no such cache in settings.CACHES"),
    ({"key": "article:1"}, TypeError, "takes a function of the arguments"),
    ({"tags": "articles"}, ValueError, r"not one string; write cache_result\(tags=...\)"),
    ({"lease": 0}, ValueError, r"lease=0\) must be greater than 0"),
]


@pytest.mark.parametrize(("options", "error", "message"), DECORATION_ERRORS)
def test_bad_options_fail_where_the_function_is_decorated(options, error, message):
    with pytest.raises(error, match=message):
        cache_result(**options)


def test_the_decorator_goes_under_staticmethod():
    with pytest.raises(TypeError, match="below @staticmethod"):
        cache_result(ttl=1)(staticmethod(lambda: 1))


@cache_result
def one() -> int:
    return 1


def test_without_parentheses(cache):
    assert one() == one() == 1


def test_stale_on_error_serves_the_kept_value_when_the_function_fails(cache, caplog):
    outcomes: list[Any] = ["first", ConnectionError("service down")]

    @cache_result(ttl=0.2, stale_ttl=60, stale_on_error=True, key=lambda: "test:rates")
    def rates() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert rates() == "first"
    time.sleep(0.3)
    assert rates() == "first"  # the function raised; the old value is served
    assert "serving the value kept past its ttl" in caplog.text
    outcomes.append("second")
    assert rates() == "second"


def test_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background(configure_cache):
    # Memory only: the refresh runs in another thread, outside the test's transaction.
    configure_cache("memory")
    results = iter(["v1", "v2"])

    @cache_result(ttl=0.2, early="stale", stale_ttl=60, key=lambda: "test:slow")
    def slow() -> str:
        time.sleep(0.2)
        return next(results)

    assert slow() == "v1"
    time.sleep(0.3)
    started = time.monotonic()
    assert slow() == "v1"  # stale, served without waiting for the refresh
    assert time.monotonic() - started < 0.15
    deadline = time.monotonic() + 5
    while slow() != "v2":
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.02)


def test_probabilistic_early_refresh_recomputes_before_expiry(cache):
    calls = []

    # beta=1e9: certain to refresh early.
    @cache_result(ttl=60, early="probabilistic", beta=1e9, key=lambda: "test:hot")
    def hot() -> int:
        calls.append(1)
        time.sleep(0.01)
        return len(calls)

    # beta=1e-9: practically never.
    @cache_result(ttl=60, early="probabilistic", beta=1e-9, key=lambda: "test:cool")
    def cool() -> int:
        calls.append(2)
        time.sleep(0.01)
        return 0

    assert [hot(), hot(), hot()] == [1, 2, 3]  # each hit refreshed ahead of expiry
    assert [cool(), cool(), cool()] == [0, 0, 0]
    assert calls.count(2) == 1


def test_an_early_refresh_that_fails_keeps_the_current_value_sync_and_async(cache, caplog):
    calls = []

    def compute() -> int:
        calls.append(1)
        # A measurable compute time: "early" fires with a probability that grows with it
        # (beta x time taken); a microsecond's work left one refresh in ~15 unattempted.
        time.sleep(0.01)
        if len(calls) > 1:
            raise ConnectionError("backend down")
        return 7

    # beta=1e9: certain to refresh early.
    @cache_result(ttl=60, early="probabilistic", beta=1e9, key=lambda: "test:hot")
    def hot() -> int:
        return compute()

    @cache_result(ttl=60, early="probabilistic", beta=1e9, key=lambda: "test:ahot")
    async def ahot() -> int:
        return compute()

    with caplog.at_level("WARNING", logger="django_perf.cache"):
        assert [hot(), hot()] == [7, 7]  # the second call's refresh raised
        calls.clear()
        assert [async_to_sync(ahot)(), async_to_sync(ahot)()] == [7, 7]
    failures = [r.getMessage() for r in caplog.records if "refreshing early" in r.getMessage()]
    assert len(failures) == 2
    assert all("ConnectionError: backend down" in message for message in failures)


def test_values_stored_with_their_age_are_json_serializable(configure_cache):
    configure_cache("memory", "database", SERIALIZER="json")

    @cache_result(ttl=60, early="probabilistic", key=lambda: "test:data")
    def data() -> dict[str, Any]:
        return {"a": [1, 2]}

    assert data() == data() == {"a": [1, 2]}
    assert json.dumps(data()) == '{"a": [1, 2]}'


def make_multiplier(n: int, **options: Any) -> Any:
    @cache_result(ttl=60, **options)
    def multiply(x: int) -> int:
        return x * n

    return multiply


def test_lambdas_and_nested_functions_need_a_key_of_their_own(cache):
    # Keyed by module + qualname, two lambdas of one scope, or two closures of one factory
    # (make_multiplier.<locals>.multiply), would share keys and return each other's results.
    with pytest.raises(TypeError, match=r"<lambda>.*Pass key="):
        cache_result(ttl=60)(lambda x: x + 1)
    with pytest.raises(TypeError, match=r"make_multiplier\.<locals>\.multiply.*Pass key="):
        make_multiplier(2)

    double = make_multiplier(2, key=lambda x: f"double:{x}")
    triple = make_multiplier(3, key=lambda x: f"triple:{x}")
    assert (double(5), triple(5)) == (10, 15)
    plus = cache_result(ttl=60, key=lambda x: f"plus:{x}")(lambda x: x + 1)
    times = cache_result(ttl=60, key=lambda x: f"times:{x}")(lambda x: x * 10)
    assert (plus(3), times(3)) == (4, 30)


def three() -> tuple[str, str, str]:
    return ("a", "b", "c")


@pytest.mark.parametrize("serializer", ["pickle", "json"])
@pytest.mark.parametrize(
    "options",
    [{"early": "probabilistic"}, {"stale_on_error": True, "stale_ttl": 60}],
    ids=["early", "stale_on_error"],
)
def test_three_item_results_of_a_cache_without_timeout_come_back_as_they_were(
    configure_cache, serializer, options
):
    # The default ttl with TIMEOUT None is "forever": the value is still stored with its age,
    # so a result that happens to be a 3-item list is not taken for [value, expiry, took].
    configure_cache("memory", "database", TIMEOUT=None, SERIALIZER=serializer)
    calls = []

    @cache_result(key=lambda: "test:bounds", **options)
    def bounds() -> list[int]:
        calls.append(1)
        return [5, 10**12, 0]

    triple = cache_result(key=lambda: "test:three", **options)(three)

    assert bounds() == bounds() == [5, 10**12, 0]
    assert calls == [1]
    expected = ("a", "b", "c") if serializer == "pickle" else ["a", "b", "c"]
    assert triple() == ("a", "b", "c")
    assert triple() == expected
