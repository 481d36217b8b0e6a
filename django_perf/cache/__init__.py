"""Tiered caching: process memory, Redis and a database table (see docs/cache.rst)."""

from .backend import TieredCache

__all__ = ["TieredCache"]
