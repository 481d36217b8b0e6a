"""The dashboard's pages and its JSON endpoint (actions live in :mod:`.actions`).

Every view here is reached through ``AdminSite.admin_view`` (see
:class:`.admin.DashboardAdmin`), which sends anonymous and non-staff users to
the admin login and adds ``never_cache`` and CSRF protection; each view then
checks the dashboard's permission itself (:mod:`.permissions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from ..conf import perf_settings
from ..monitoring import stats
from . import data as dashboard_data
from . import present
from .forms import InvalidateForm, model_labels
from .permissions import INVALIDATE, RESET, VIEW, allowed, require

if TYPE_CHECKING:
    from .admin import DashboardAdmin

__all__ = ["dashboard_view", "data_view", "route_view"]

REFRESH_SECONDS = 10
COLUMNS = [
    ("route", "Route"),
    ("count", "Requests"),
    ("rate", "Req/s"),
    ("errors", "Errors"),
    ("p50", "p50"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("queries", "Queries"),
    ("bytes", "Avg size"),
]


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window") or dashboard_data.DEFAULT_WINDOW
    if window not in dashboard_data.WINDOWS:
        raise ValueError(
            f"unknown window {window!r}; use one of {', '.join(dashboard_data.WINDOWS)}"
        )
    return window


def _bad_request(request: HttpRequest, error: ValueError, *, json: bool) -> HttpResponse:
    if json:
        return JsonResponse({"error": str(error)}, status=400)
    return HttpResponseBadRequest(f"Bad request: {error}.\n", content_type="text/plain")


def _urls(model_admin: DashboardAdmin) -> dict[str, str]:
    name = model_admin.url_name
    site = model_admin.admin_site.name
    return {
        key: reverse(f"{site}:{name(key)}", current_app=site)
        for key in ("changelist", "route", "data", "invalidate", "reset")
    }


def _sort_links(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Column headers of the route table: each a link that sorts by it (again: the other way)."""
    links = []
    for key, label in COLUMNS:
        natural = "asc" if key == "route" else "desc"
        current = data["sort"] == key
        order = ("asc" if data["order"] == "desc" else "desc") if current else natural
        links.append(
            {
                "key": key,
                "label": label,
                "query": f"window={data['window']}&sort={key}&order={order}",
                "sorted": data["order"] if current else "",
            }
        )
    return links


def _overview_fragments(request: HttpRequest, data: dict[str, Any], urls: dict) -> dict[str, str]:
    context = {
        "data": data,
        "cards": present.overview_cards(data),
        "charts": present.overview_charts(data),
        "rows": present.route_rows(data["routes"]),
        "columns": _sort_links(data),
        "urls": urls,
        "slow": present.slow_rows(data["slow"]),
        "slow_ms": perf_settings.MONITORING_SLOW_REQUEST_MS,
        "show_routes": True,
    }
    return _render(request, ("cards", "charts", "routes", "slow"), context)


def _render(request: HttpRequest, names: tuple[str, ...], context: dict) -> dict[str, str]:
    """Fragments by name; the page shows each in the element with id ``perf-<name>``."""
    return {
        name: render_to_string(f"admin/django_perf/dashboard/_{name}.html", context, request)
        for name in names
    }


def _route_fragments(request: HttpRequest, data: dict[str, Any]) -> dict[str, str]:
    context = {
        "data": data,
        "cards": present.request_cards(data) + present.cache_cards(data["cache"]),
        "charts": present.route_charts(data),
        "statuses": present.status_rows(data),
        "slow": present.slow_rows(data["slow"]),
        "slow_ms": perf_settings.MONITORING_SLOW_REQUEST_MS,
    }
    return _render(request, ("cards", "charts", "slow", "statuses"), context)


def _page_context(model_admin: DashboardAdmin, request: HttpRequest, **extra: Any) -> dict:
    opts = model_admin.opts
    return {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "app_label": opts.app_label,
        "windows": [(key, present.WINDOW_NAMES[key]) for key in dashboard_data.WINDOWS],
        "refresh_seconds": REFRESH_SECONDS,
        "can_invalidate": allowed(request.user, INVALIDATE),
        "can_reset": allowed(request.user, RESET),
        **extra,
    }


def _overview_query(request: HttpRequest) -> tuple[str, str, str]:
    """``window``, ``sort`` and ``order`` from the query string; ValueError says what is wrong."""
    window = _window(request)
    sort, order = dashboard_data.parse_sort(
        request.GET.get("sort", "count"), request.GET.get("order")
    )
    return window, sort, order


def _route_query(request: HttpRequest) -> tuple[str, str]:
    """``route`` and ``window`` from the query string; ValueError says what is wrong."""
    route = request.GET.get("route")
    if not route:
        raise ValueError("the route parameter is missing (?route=<URL pattern>)")
    return stats.checked_route(route), _window(request)


# Only a bad query string is the client's fault (400). The store's own failures are
# raised after it, so they are a 500 with a logged traceback, whatever their type.


@require_GET
@require(VIEW)
def dashboard_view(request: HttpRequest, model_admin: DashboardAdmin) -> HttpResponse:
    """The dashboard: cards, charts, routes, slow requests and the actions."""
    try:
        window, sort, order = _overview_query(request)
    except ValueError as error:
        return _bad_request(request, error, json=False)
    data = dashboard_data.overview(window, sort=sort, order=order)
    urls = _urls(model_admin)
    query = f"window={window}&sort={data['sort']}&order={data['order']}"
    context = _page_context(
        model_admin,
        request,
        title="Performance",
        subtitle=None,
        data=data,
        window=window,
        urls=urls,
        fragments=_overview_fragments(request, data, urls),
        poll_url=f"{urls['data']}?{query}",
    )
    if context["can_invalidate"]:
        context["invalidate_form"] = InvalidateForm()
        context["model_labels"] = model_labels()
    return TemplateResponse(request, "admin/django_perf/dashboard/index.html", context)


@require_GET
@require(VIEW)
def route_view(request: HttpRequest, model_admin: DashboardAdmin) -> HttpResponse:
    """One route: its cards, charts, latency and query-count histograms, codes, slow log."""
    try:
        route, window = _route_query(request)
    except ValueError as error:
        return _bad_request(request, error, json=False)
    data = dashboard_data.route_detail(route, window)
    urls = _urls(model_admin)
    context = _page_context(
        model_admin,
        request,
        title=f"Route {route}",
        data=data,
        route=route,
        route_query=quote(route, safe=""),
        window=window,
        urls=urls,
        fragments=_route_fragments(request, data),
        poll_url=f"{urls['data']}?window={window}&route={quote(route, safe='')}",
    )
    return TemplateResponse(request, "admin/django_perf/dashboard/route.html", context)


@require_GET
@require(VIEW, json=True)
def data_view(request: HttpRequest, model_admin: DashboardAdmin) -> HttpResponse:
    """``GET data/?window=1h[&sort=p95&order=desc][&route=...]``: the numbers and fragments.

    The JSON document is the dashboard's (or the route's) data, plus ``html``:
    the page's fragments by element id, which the page swaps in as it polls.
    """
    route = request.GET.get("route")
    try:
        if route:
            route, window = _route_query(request)
        else:
            window, sort, order = _overview_query(request)
    except ValueError as error:
        return _bad_request(request, error, json=True)
    if route:
        data = dashboard_data.route_detail(route, window)
        data["html"] = _route_fragments(request, data)
    else:
        data = dashboard_data.overview(window, sort=sort, order=order)
        data["html"] = _overview_fragments(request, data, _urls(model_admin))
    return JsonResponse(data)
