"""Tiered caching: process memory, Redis and a database table (see docs/cache.rst).

Invalidation (``django_perf.cache.invalidation``) and ``cache_result`` are
described in docs/invalidation.rst.
"""

from .backend import TieredCache
from .decorator import cache_result

__all__ = ["TieredCache", "cache_result"]
