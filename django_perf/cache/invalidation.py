"""Cache invalidation: the model registry and the ``invalidate()`` engine (docs/invalidation.rst).

::

    from django_perf.cache.invalidation import invalidate, register

    register(Article, keys=lambda a: [f"article:{a.slug}"], tags=lambda a: ["articles"])

    report = invalidate(patterns=["article:*"], dry_run=True)
    report.per_tier  # {"memory": 3, "redis": 120, "database": 118}
"""

from .engine import InvalidationReport, Progress, invalidate
from .registry import (
    Registration,
    RegistrationError,
    invalidate_instance,
    invalidate_model,
    register,
    registry,
    resolve_model,
)
from .tags import atagged_key, invalidate_tags, tagged_key

__all__ = [
    "InvalidationReport",
    "Progress",
    "Registration",
    "RegistrationError",
    "atagged_key",
    "invalidate",
    "invalidate_instance",
    "invalidate_model",
    "invalidate_tags",
    "register",
    "registry",
    "resolve_model",
    "tagged_key",
]
