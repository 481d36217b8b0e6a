"""The dashboard's model: the admin index entry and the permissions of its actions.

A proxy of :class:`~django_perf.monitoring.models.MetricSeries` (no table of
its own) so the admin can list it under the app. Viewing needs
``django_perf.view_metrics`` (defined by monitoring, shared with
``/perf/metrics``); the actions need the permissions defined here.
"""

from __future__ import annotations

from ..monitoring.models import MetricSeries


class Dashboard(MetricSeries):
    """The admin performance dashboard (a proxy: the page reads the metrics store)."""

    class Meta:
        proxy = True
        app_label = "django_perf"
        default_permissions = ()
        permissions = [
            ("invalidate_cache", "Can invalidate cache entries from the performance dashboard"),
            ("reset_metrics", "Can reset the performance metrics"),
        ]
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
