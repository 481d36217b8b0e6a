"""Test-only models for django_perf.db: every field type, db defaults, unique keys."""
