"""Database models owned by django-perf (cache table, metrics store) live here."""
