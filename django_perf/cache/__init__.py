"""Tiered caching: process memory, Redis and a database table (see docs/cache.rst)."""
