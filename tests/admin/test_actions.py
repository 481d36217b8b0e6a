"""The dashboard's actions: reset metrics and invalidate cache entries, end to end.

Both are POST only, CSRF-protected, confirmed first and logged as LogEntry
(the permission, GET and CSRF refusals are in test_permissions.py).
"""

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from django_perf.dashboard.models import Dashboard
from django_perf.monitoring import stats
from django_perf.monitoring.store import SlowRequest, get_store
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
