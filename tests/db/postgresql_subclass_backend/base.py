"""The backend's wrapper: Django's PostgreSQL wrapper, unchanged, under another ENGINE name."""

from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper


class DatabaseWrapper(PostgreSQLWrapper):
    pass
