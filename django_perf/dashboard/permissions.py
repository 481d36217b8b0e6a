"""Who may see the dashboard and who may act on it.

Viewing needs a staff account with ``django_perf.view_metrics`` (the permission
``/perf/metrics`` checks too). Each action needs the view permission and its
own: ``django_perf.invalidate_cache`` or ``django_perf.reset_metrics``.
Anonymous and non-staff users never get this far: the admin site sends them to
its login page first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..monitoring.prometheus import PERMISSION as VIEW

__all__ = ["INVALIDATE", "RESET", "VIEW", "allowed", "require"]

INVALIDATE = "django_perf.invalidate_cache"
RESET = "django_perf.reset_metrics"


def allowed(user: Any, permission: str) -> bool:
    """True if ``user`` is active staff holding ``permission`` (and the view permission)."""
    if not (user.is_active and user.is_staff):
        return False
    needed = (VIEW,) if permission == VIEW else (VIEW, permission)
    return user.has_perms(needed)


def require(permission: str, *, json: bool = False) -> Callable[[Callable], Callable]:
    """Decorate a view: 403 unless :func:`allowed` (a JSON body for JSON endpoints)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not allowed(request.user, permission):
                if json:
                    return JsonResponse(
                        {"error": f"This needs staff status and the {permission} permission."},
                        status=403,
                    )
                raise PermissionDenied(f"This needs the {permission} permission.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
