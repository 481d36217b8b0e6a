"""The dashboard's actions: reset metrics and invalidate cache entries, end to end.

Both are POST only, CSRF-protected, confirmed first and logged as LogEntry
(the permission, GET and CSRF refusals are in test_permissions.py).
"""

import re
from html import unescape

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.utils import timezone

from django_perf.cache.invalidation import register, registry, tagged_key
from django_perf.cache.models import CacheEntry
from django_perf.dashboard.models import Dashboard
from django_perf.monitoring import stats
from django_perf.monitoring.store import SlowRequest, get_store
from testproject.blog.invalidation import article_key
from testproject.blog.models import Article, Author
from testproject.blog.seed import SeedSize, seed
from tests.admin.conftest import DASHBOARD, INVALIDATE, RESET

pytestmark = pytest.mark.django_db


def csrf_client(client_for, name):
    """A client that enforces CSRF, holding the token the dashboard page set."""
    client = client_for(name, csrf=True)
    page = client.get(DASHBOARD)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    return client, token.group(1)


def test_reset_asks_first_then_empties_the_store_and_logs_it(client_for, traffic, users):
    store = get_store()
    store.write({}, slow=[SlowRequest(1e9, "/a/", "GET", 200, "/a/", 900.0)])
    assert stats.read(300)
    client, token = csrf_client(client_for, "resetter")

    confirm = client.post(RESET, {"csrfmiddlewaretoken": token})
    assert confirm.status_code == 200
    assert b"Yes, reset the metrics" in confirm.content
    assert b'name="confirm" value="yes"' in confirm.content
    assert stats.read(300)  # nothing happened yet
    assert not LogEntry.objects.exists()

    done = client.post(RESET, {"csrfmiddlewaretoken": token, "confirm": "yes"}, follow=True)
    assert done.redirect_chain == [(DASHBOARD, 302)]
    assert stats.read(300) == []
    assert store.read_slow(0) == []
    assert store.read_totals() == []
    assert "Metrics reset: the database (&#x27;default&#x27;) store is empty." in (
        done.content.decode()
    )
    [entry] = LogEntry.objects.all()
    assert entry.user == users["resetter"]
    assert entry.action_flag == CHANGE
    assert entry.content_type == ContentType.objects.get_for_model(
        Dashboard, for_concrete_model=False
    )
    assert entry.object_repr == "Performance metrics"
    assert entry.get_change_message().startswith("Reset the performance metrics")


def test_reset_refuses_a_forged_post(client_for, traffic):
    client, _ = csrf_client(client_for, "superuser")
    response = client.post(RESET, {"confirm": "yes", "csrfmiddlewaretoken": "forged" * 8})
    assert response.status_code == 403
    assert stats.read(300)
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "key", "values": " \n ,"}, "values", "Give at least one key."),
        ({"kind": "tag"}, "values", "Give at least one tag."),
        ({"kind": "model", "model": ""}, "model", "Name the model as app_label.ModelName."),
        ({"kind": "model", "model": "blog.Nope"}, "model", "No installed model is called"),
        ({"kind": "model", "model": "nope"}, "model", "No installed model is called"),
        (
            {"kind": "model", "model": "blog.Article", "pks": "1, x"},
            "pks",
            "Not a primary key of blog.Article",
        ),
        ({"kind": "key", "values": "a", "alias": "nope"}, "alias", "Select a valid choice."),
        (
            {"kind": "key", "values": "a", "tiers": ["disk"]},
            "tiers",
            "Select a valid choice. disk is not one of the available choices.",
        ),
        ({"kind": "everything"}, "kind", "Select a valid choice."),
    ],
)
def test_invalid_invalidation_requests_come_back_with_the_reason(
    client_for, fields, field, message
):
    response = client_for("invalidator").post(INVALIDATE, {"alias": "default", **fields})
    assert response.status_code == 400
    form = response.context["form"]
    assert any(message in error for error in form.errors[field])
    assert b"Please correct the errors below." in response.content
    assert not LogEntry.objects.exists()


# --- Invalidation, through the engine of manage.py invalidate_cache --------------------------


@pytest.fixture
def cached(db):
    """A few entries in the default cache (the test project's memory + database tiers)."""
    cache.clear()
    for key in ("page:1", "page:2", "other:1"):
        cache.set(key, key.upper(), 300)
    yield
    cache.clear()


def database_keys():
    return sorted(
        key.split(":", 2)[2] for key in CacheEntry.objects.values_list("cache_key", flat=True)
    )


def test_invalidating_keys_is_a_dry_run_first_then_a_report_per_tier(client_for, cached, users):
    client, token = csrf_client(client_for, "invalidator")
    fields = {"csrfmiddlewaretoken": token, "kind": "key", "values": "page:1\npage:2, missing",
              "alias": "default"}  # fmt: skip

    confirm = client.post(INVALIDATE, fields)
    assert confirm.status_code == 200
    assert confirm.context["step"] == "confirm"
    assert confirm.context["per_tier"] == [("memory", 2), ("database", 2)]
    assert confirm.context["report"].dry_run is True
    html = confirm.content.decode()
    assert "You are about to invalidate <strong>keys page:1, page:2, missing in cache" in html
    assert 'name="confirm" value="yes"' in html
    assert 'type="hidden" name="values" value="page:1\npage:2, missing"' in html
    assert cache.get("page:1") == "PAGE:1"  # nothing dropped yet
    assert database_keys() == ["other:1", "page:1", "page:2"]
    assert not LogEntry.objects.exists()

    done = client.post(INVALIDATE, {**fields, "confirm": "yes"})
    assert done.status_code == 200
    assert done.context["step"] == "done"
    assert done.context["per_tier"] == [("memory", 2), ("database", 2)]
    assert "4 entries dropped." in done.content.decode()
    assert (cache.get("page:1"), cache.get("page:2"), cache.get("other:1")) == (
        None,
        None,
        "OTHER:1",
    )
    assert database_keys() == ["other:1"]
    [entry] = LogEntry.objects.all()
    assert entry.user == users["invalidator"]
    assert entry.action_flag == DELETION
    assert entry.object_repr == "Cache invalidation"
    assert entry.change_message == (
        "Invalidated keys page:1, page:2, missing in cache 'default' (every tier): "
        "4 entries dropped (memory 2, database 2)."
    )
    # The admin's "Recent actions" lists it.
    index = client.get("/admin/").content.decode()
    assert "Cache invalidation" in index


@pytest.mark.redis
def test_a_tier_failing_during_invalidation_is_reported_as_a_failure(
    client_for, configure_cache, redis_server
):
    configure_cache("memory", "redis", "database", STRICT=False).set_many({"a": 1, "b": 2})
    client = client_for("invalidator")
    fields = {"kind": "key", "values": "a", "alias": "default", "confirm": "yes"}
    redis_server.stop()
    try:
        done = client.post(INVALIDATE, fields)
    finally:
        redis_server.start()
    assert done.status_code == 503
    html = done.content.decode()
    assert 'class="success"' not in html
    assert re.search(
        r'<li class="error">Invalidation of keys a in cache .default. \(every tier\) is '
        r"incomplete: the redis tier failed \(.+\)\. \d+ entr(y|ies) dropped in the other tiers",
        unescape(html),
    ), html
    assert "failed: redis" in LogEntry.objects.get().change_message


def test_invalidating_a_pattern_in_one_tier(client_for, cached):
    client = client_for("invalidator")
    fields = {"kind": "pattern", "values": "page:*", "alias": "default", "tiers": ["database"]}
    confirm = client.post(INVALIDATE, fields)
    assert confirm.context["per_tier"] == [("database", 2)]
    assert "The memory tier was left out" in confirm.content.decode()
    done = client.post(INVALIDATE, {**fields, "confirm": "yes"})
    assert done.context["per_tier"] == [("database", 2)]
    assert database_keys() == ["other:1"]
    assert cache.get("page:1") == "PAGE:1"  # still in L1, as the note says


def test_invalidating_a_tag_gives_it_a_new_generation(client_for, cached):
    key = tagged_key("home", ["articles"])
    cache.set(key, "cached home", 300)
    client = client_for("superuser")
    fields = {"kind": "tag", "values": "articles", "alias": "default"}
    confirm = client.post(INVALIDATE, fields)
    assert confirm.context["report"].tags == 1
    assert "Tags that would get a new generation: 1" in confirm.content.decode()
    assert cache.get(tagged_key("home", ["articles"])) == "cached home"
    done = client.post(INVALIDATE, {**fields, "confirm": "yes"})
    assert "Tags given a new generation: 1" in done.content.decode()
    assert tagged_key("home", ["articles"]) != key
    assert cache.get(tagged_key("home", ["articles"])) is None
    assert "1 tag(s) given a new generation" in LogEntry.objects.get().change_message


def test_invalidating_a_models_rows_drops_what_its_registrations_name(client_for, cached):
    seed(SeedSize(authors=2, articles=4, comments=0, events=0))
    first, second = Article.objects.order_by("pk")[:2]
    for article in (first, second):
        cache.set(article_key(article.slug), article.title, 300)
    client = client_for("invalidator")
    fields = {"kind": "model", "model": "blog.Article", "pks": f"{first.pk}, 999999",
              "alias": "default"}  # fmt: skip
    confirm = client.post(INVALIDATE, fields)
    assert confirm.context["report"].rows == 1
    assert confirm.context["report"].missing_pks == [999999]
    assert "primary keys not found: 999999" in confirm.content.decode()
    client.post(INVALIDATE, {**fields, "confirm": "yes"})
    assert cache.get(article_key(first.slug)) is None
    assert cache.get(article_key(second.slug)) == second.title
    assert LogEntry.objects.get().change_message.startswith(
        f"Invalidated model blog.Article rows {first.pk}, 999999 in cache 'default'"
    )


def test_the_engines_refusals_come_back_on_the_form(client_for, cached):
    client = client_for("invalidator")
    tags_in_one_tier = client.post(
        INVALIDATE, {"kind": "tag", "values": "articles", "alias": "default", "tiers": ["memory"]}
    )
    assert tags_in_one_tier.status_code == 400
    assert tags_in_one_tier.context["form"].non_field_errors() == [
        "Tags are invalidated in every tier at once (one new generation per tag); leave "
        "tiers out when passing tags."
    ]
    unregistered = client.post(
        INVALIDATE, {"kind": "model", "model": "blog.Event", "alias": "default"}
    )
    assert unregistered.status_code == 400
    assert "blog.Event has no invalidation registrations" in unregistered.content.decode()
    bad_pattern = client.post(INVALIDATE, {"kind": "pattern", "values": "a[", "alias": "default"})
    [error] = bad_pattern.context["form"].non_field_errors()
    assert error.startswith("The pattern 'a[' has an unclosed '['")
    assert cache.get("page:1") == "PAGE:1"
    assert not LogEntry.objects.exists()


def test_a_failing_registration_is_a_server_error_not_a_form_error(client_for, cached):
    article = Article.objects.create(
        author=Author.objects.create(name="a", email="a@x.org", joined_at=timezone.now()),
        title="t", slug="t", body="", published_at=timezone.now(),
    )  # fmt: skip
    registration = register(Article, keys=lambda a: [{}["missing"]])
    client = client_for("invalidator")
    client.raise_request_exception = False
    try:
        response = client.post(
            INVALIDATE,
            {"kind": "model", "model": "blog.Article", "pks": str(article.pk), "alias": "default"},
        )
    finally:
        registry.remove(registration)
    assert response.status_code == 500
    assert cache.get("page:1") == "PAGE:1"


def test_the_model_field_suggests_the_registered_models(client_for):
    html = client_for("invalidator").get(DASHBOARD).content.decode()
    suggestions = re.findall(r'<option value="([^"]+)">', html[html.index('id="perf-models"') :])
    assert suggestions == ["blog.Article", "blog.Author"]


def test_the_tiers_offered_are_the_ones_the_caches_have(client_for):
    html = client_for("invalidator").get(DASHBOARD).content.decode()
    offered = re.findall(r'name="tiers" value="([^"]+)"', html)
    assert offered == [kind for kind in ("memory", "redis", "database") if kind in cache.stats()]
