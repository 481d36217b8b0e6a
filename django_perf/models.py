"""Database models owned by django-perf.

Each capability defines its models in its own folder (``cache/models.py``,
``monitoring/models.py``) and they are imported here, so that Django finds
them and ``makemigrations django_perf`` sees them.
"""

from .cache.models import CacheEntry
from .dashboard.models import Dashboard
from .monitoring.models import MetricSeries, MetricsLease, SlowRequestLog, SystemSample

__all__ = [
    "CacheEntry",
    "Dashboard",
    "MetricSeries",
    "MetricsLease",
    "SlowRequestLog",
    "SystemSample",
]
