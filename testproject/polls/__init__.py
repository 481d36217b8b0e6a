"""The model Django's generic cache tests pickle (tests/cache/test_django_suite.py)."""
