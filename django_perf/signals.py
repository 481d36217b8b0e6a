"""Signals django-perf sends, so capabilities can react to each other without importing each other.

``rows_changed`` is sent by the bulk write helpers (``django_perf.db``), which
bypass ``post_save``; the cache invalidation registry listens to it, and so
may any project code that keeps derived data.
"""

from django.dispatch import Signal

#: Sent after rows of ``sender`` (a model class) were written outside the ORM's
#: per-object signals, once the transaction commits. Keyword arguments:
#: ``pks`` (a list of primary keys), ``action`` ("insert", "update" or
#: "upsert"), ``using`` (the database alias).
rows_changed = Signal()
