"""Who gets what, on every page and endpoint of the dashboard.

Anonymous and non-staff users are sent to the admin login; staff without the
permission get 403 (a JSON body on the JSON endpoint); viewing needs
``django_perf.view_metrics``, each action its own permission on top of it.
"""

from urllib.parse import quote

import pytest

from tests.admin.conftest import DASHBOARD, DATA, INVALIDATE, RESET, ROUTE

pytestmark = pytest.mark.django_db

ROUTE_Q = "?route=" + quote("/monitoring/fast/", safe="")
READS = {
    "dashboard": DASHBOARD,
    "dashboard 24h sorted": DASHBOARD + "?window=24h&sort=p95&order=asc",
    "route": ROUTE + ROUTE_Q,
    "data": DATA,
    "route data": DATA + ROUTE_Q + "&window=5m",
}
VIEWERS = ("viewer", "invalidator", "resetter", "superuser")


def assert_sent_to_login(response, path):
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=" + quote(path, safe="/")


@pytest.mark.parametrize("name", ["anonymous", "not_staff"])
@pytest.mark.parametrize("path", [*READS.values(), INVALIDATE, RESET])
def test_anonymous_and_non_staff_users_are_sent_to_the_admin_login(client_for, name, path):
    client = client_for(name)
    assert_sent_to_login(client.get(path), path)
    assert_sent_to_login(client.post(path, {"confirm": "yes"}), path)


@pytest.mark.parametrize("name", ["staff", "actions_only"])
@pytest.mark.parametrize("path", [DASHBOARD, READS["route"], READS["dashboard 24h sorted"]])
def test_staff_without_the_view_permission_get_403_on_pages(client_for, name, path):
    response = client_for(name).get(path)
    assert response.status_code == 403
    assert b'class="perf"' not in response.content


@pytest.mark.parametrize("name", ["staff", "actions_only"])
@pytest.mark.parametrize("path", [READS["data"], READS["route data"]])
def test_staff_without_the_view_permission_get_a_json_403(client_for, name, path):
    response = client_for(name).get(path)
    assert response.status_code == 403
    assert response.json() == {
        "error": "This needs staff status and the django_perf.view_metrics permission."
    }


@pytest.mark.parametrize("name", VIEWERS)
@pytest.mark.parametrize("label", list(READS))
def test_the_view_permission_opens_every_page_and_endpoint(client_for, name, label):
    response = client_for(name).get(READS[label])
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # admin_view: never cached
    if "data" in label:
        assert response.json()["schema"] == "django-perf/dashboard/1"
    else:
        assert b'class="perf"' in response.content


@pytest.mark.parametrize(
    ("name", "invalidate", "reset"),
    [
        ("staff", 403, 403),
        ("actions_only", 403, 403),  # an action needs the view permission too
        ("viewer", 403, 403),
        ("invalidator", 400, 403),  # 400: the empty form is refused, past the permission
        ("resetter", 403, 200),  # 200: the confirmation step
        ("superuser", 400, 200),
    ],
)
def test_each_action_needs_its_own_permission(client_for, name, invalidate, reset):
    client = client_for(name)
    assert client.post(INVALIDATE, {}).status_code == invalidate
    assert client.post(RESET, {}).status_code == reset


@pytest.mark.parametrize("name", ["viewer", "invalidator", "resetter", "superuser"])
@pytest.mark.parametrize("path", [INVALIDATE, RESET])
def test_actions_refuse_get(client_for, name, path):
    response = client_for(name).get(path)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("path", [INVALIDATE, RESET])
def test_actions_refuse_a_post_without_the_csrf_token(client_for, path):
    client = client_for("superuser", csrf=True)
    response = client.post(path, {"confirm": "yes", "kind": "key", "values": "a"})
    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content


def test_the_admin_index_lists_the_dashboard_only_for_viewers(client_for):
    listed = client_for("viewer").get("/admin/")
    assert listed.status_code == 200
    assert b'href="/admin/django_perf/dashboard/"' in listed.content
    assert b"Performance" in listed.content
    for name in ("staff", "actions_only"):
        hidden = client_for(name).get("/admin/")
        assert b"/admin/django_perf/dashboard/" not in hidden.content
    assert client_for("viewer").get("/admin/django_perf/").status_code == 200
    assert client_for("staff").get("/admin/django_perf/").status_code == 404


def test_the_page_shows_actions_only_to_those_who_may_use_them(client_for):
    def forms(name):
        page = client_for(name).get(DASHBOARD).content.decode()
        return ('id="perf-invalidate"' in page, 'id="perf-reset"' in page)

    assert forms("viewer") == (False, False)
    assert forms("invalidator") == (True, False)
    assert forms("resetter") == (False, True)
    assert forms("superuser") == (True, True)


def test_the_dashboard_has_no_object_views(client_for):
    client = client_for("superuser")
    assert client.get(DASHBOARD + "add/").status_code == 404
    assert client.get(DASHBOARD + "1/change/").status_code == 404
