"""``DashboardAdmin``: puts the dashboard in the admin index and routes its URLs.

The model is a proxy with no rows to list, add or change; the "changelist" is
the dashboard itself, and the other URLs are the route drill-down, the JSON
endpoint and the two actions. All of them go through ``admin_site.admin_view``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from . import actions, views
from .permissions import VIEW, allowed

__all__ = ["DashboardAdmin"]


class DashboardAdmin(admin.ModelAdmin):
    """Admin of the :class:`~.models.Dashboard` proxy: one page, no object views."""

    def url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                return view(request, self, *args, **kwargs)

            wrapper.model_admin = self  # type: ignore[attr-defined]
            return update_wrapper(self.admin_site.admin_view(wrapper), view)

        return [
            path("", wrap(views.dashboard_view), name=self.url_name("changelist")),
            path("route/", wrap(views.route_view), name=self.url_name("route")),
            path("data/", wrap(views.data_view), name=self.url_name("data")),
            path("invalidate/", wrap(actions.invalidate_view), name=self.url_name("invalidate")),
            path("reset/", wrap(actions.reset_view), name=self.url_name("reset")),
        ]

    # The index lists the dashboard (as "view only") for users who may view it.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return allowed(request.user, VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return allowed(request.user, VIEW)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
