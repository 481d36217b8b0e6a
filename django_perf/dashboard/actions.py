"""The dashboard's actions: invalidate cache entries, reset the metrics.

Both are POST only (GET gets 405), CSRF-protected (by ``admin_view``), need
their own permission (:mod:`.permissions`), ask for confirmation first, and
are written to the admin log (``LogEntry``) once done. Invalidation calls the
same engine as ``manage.py invalidate_cache``; its confirmation step is a dry
run that shows how many entries each tier would drop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..cache.invalidation import invalidate
from ..monitoring.recorder import get_recorder
from ..monitoring.store import get_store
from .forms import InvalidateForm, model_labels
from .models import Dashboard
from .permissions import INVALIDATE, RESET, require

if TYPE_CHECKING:
    from .admin import DashboardAdmin

__all__ = ["invalidate_view", "log_action", "reset_view"]


def log_action(request: HttpRequest, flag: int, what: str, message: str) -> LogEntry:
    """Record an action in the admin log, against the dashboard (there is no object)."""
    return LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=ContentType.objects.get_for_model(Dashboard, for_concrete_model=False),
        object_id=None,
        object_repr=what[:200],
        action_flag=flag,
        change_message=message,
    )


def _context(model_admin: DashboardAdmin, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    site = model_admin.admin_site
    return {
        **site.each_context(request),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "dashboard_url": reverse(
            f"{site.name}:{model_admin.url_name('changelist')}", current_app=site.name
        ),
        **extra,
    }


def _report_rows(per_tier: dict[str, int]) -> list[tuple[str, int]]:
    return list(per_tier.items())  # the engine's order: the cache's tiers, L1 first


@require_POST
@require(INVALIDATE)
def invalidate_view(request: HttpRequest, model_admin: DashboardAdmin) -> HttpResponse:
    """Step 1 (no ``confirm``): validate and dry-run; step 2 (``confirm=yes``): invalidate."""
    form = InvalidateForm(request.POST)
    template = "admin/django_perf/dashboard/invalidate.html"
    context = _context(
        model_admin,
        request,
        title="Invalidate cache entries",
        form=form,
        model_labels=model_labels(),
    )
    if not form.is_valid():
        return TemplateResponse(request, template, {**context, "step": "form"}, status=400)
    kwargs = form.invalidate_kwargs()
    described = form.describe()
    confirmed = request.POST.get("confirm") == "yes"
    try:
        report = invalidate(**kwargs, dry_run=not confirmed)
    except (ValueError, LookupError) as error:
        form.add_error(None, str(error))
        return TemplateResponse(request, template, {**context, "step": "form"}, status=400)
    context.update(described=described, per_tier=_report_rows(report.per_tier), report=report)
    if not confirmed:
        return TemplateResponse(request, template, {**context, "step": "confirm"})
    counts = ", ".join(f"{tier} {n}" for tier, n in _report_rows(report.per_tier)) or "no tier"
    message = f"Invalidated {described}: {report.total} entries dropped ({counts})"
    if report.tags:
        message += f"; {report.tags} tag(s) given a new generation"
    if report.errors:
        message += "; failed: " + ", ".join(f"{t} ({e})" for t, e in report.errors.items())
    log_action(request, DELETION, "Cache invalidation", message + ".")
    # A tier that failed is a server-side failure, as invalidate_cache's CommandError is.
    status = 503 if report.errors else 200
    return TemplateResponse(request, template, {**context, "step": "done"}, status=status)


@require_POST
@require(RESET)
def reset_view(request: HttpRequest, model_admin: DashboardAdmin) -> HttpResponse:
    """Step 1: confirm; step 2 (``confirm=yes``): delete every stored metric, then go back."""
    store = get_store()
    context = _context(model_admin, request, title="Reset performance metrics", store=store)
    if request.POST.get("confirm") != "yes":
        return TemplateResponse(request, "admin/django_perf/dashboard/reset.html", context)
    store.clear()
    recorder = get_recorder()
    recorder.discard()  # this process's unflushed requests go too
    recorder.take_slow()
    log_action(
        request,
        CHANGE,
        "Performance metrics",
        f"Reset the performance metrics: every series, sample and slow request in the "
        f"{store.describe()} store.",
    )
    messages.success(
        request,
        f"Metrics reset: the {store.describe()} store is empty. Requests other workers "
        "recorded but have not flushed yet will still arrive.",
    )
    return HttpResponseRedirect(context["dashboard_url"])
