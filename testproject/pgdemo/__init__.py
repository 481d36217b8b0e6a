"""Test-only models that need PostgreSQL's driver to be declared at all (array fields).

``django.contrib.postgres`` imports psycopg, so this app is installed only
where psycopg is (see ``testproject/settings.py``): the demo then runs on a
plain ``pip install`` with SQLite, and the tests, which always have psycopg,
write these tables on PostgreSQL.
"""
