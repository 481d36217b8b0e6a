"""Fixtures of the admin dashboard tests: users for every permission case, recorded traffic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client

from django_perf.monitoring import flush
from django_perf.monitoring.recorder import reset_recorder
from tests.invalidation.conftest import configure_cache  # noqa: F401  (caches built per test)
from tests.monitoring.conftest import perf  # noqa: F401  (DJANGO_PERF overrides, shared)

DASHBOARD = "/admin/django_perf/dashboard/"
ROUTE = DASHBOARD + "route/"
DATA = DASHBOARD + "data/"
INVALIDATE = DASHBOARD + "invalidate/"
RESET = DASHBOARD + "reset/"


def permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="django_perf", codename=codename)


def make_user(name: str, *, staff: bool = True, perms: tuple[str, ...] = (), superuser=False):
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=staff)
    if superuser:
        user.is_superuser = True
        user.save()
    user.user_permissions.add(*(permission(codename) for codename in perms))
    return user


@pytest.fixture
def users(db) -> dict[str, User | None]:
    """One user per permission case (``anonymous`` is None)."""
    return {
        "anonymous": None,
        "not_staff": make_user("visitor", staff=False, perms=("view_metrics",)),
        "staff": make_user("staff"),
        "viewer": make_user("viewer", perms=("view_metrics",)),
        "invalidator": make_user("invalidator", perms=("view_metrics", "invalidate_cache")),
        "resetter": make_user("resetter", perms=("view_metrics", "reset_metrics")),
        "actions_only": make_user("actions", perms=("invalidate_cache", "reset_metrics")),
        "superuser": make_user("root", superuser=True),
    }


@pytest.fixture
def client_for(users) -> Callable[..., Client]:
    """``client_for(name, csrf=False)``: a test client logged in as that user."""

    def make(name: str, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        if users[name] is not None:
            client.force_login(users[name])
        return client

    return make


@pytest.fixture
def traffic(db) -> None:
    """Real requests through the middleware, flushed to the store: a few routes, one error."""
    reset_recorder()
    cache.clear()
    client = Client(raise_request_exception=False)
    for _ in range(5):
        client.get("/monitoring/fast/")
    client.get("/monitoring/queries/12/")
    client.get("/monitoring/cached/")
    client.get("/monitoring/cached/")
    client.get("/monitoring/fail/")
    client.get("/no/such/page/")
    flush()
    yield
    reset_recorder()
