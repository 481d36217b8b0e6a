"""Tell listeners which rows a bulk helper wrote, once the transaction commits.

The bulk helpers bypass ``post_save``, so they send
:data:`django_perf.signals.rows_changed` instead; the cache invalidation
registry listens to it. Nothing is sent for a write that rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models, transaction

from ..signals import rows_changed

__all__ = ["listening", "rows_written"]


def listening(model: type[models.Model]) -> bool:
    """Whether anyone listens to ``rows_changed`` for ``model`` (else keys need not be fetched)."""
    return rows_changed.has_listeners(model)


def rows_written(model: type[models.Model], pks: Sequence[Any], action: str, using: str) -> None:
    """Send ``rows_changed`` for ``pks`` when the current transaction on ``using`` commits.

    Call inside the helper's ``atomic()`` block: if that block (or an outer one)
    rolls back, Django discards the callback and nothing is sent. A receiver
    that raises is logged, not raised: the rows are committed by then, and the
    caller must not take the write for failed.
    """
    if not pks:
        return
    pks = list(pks)

    def send() -> None:
        rows_changed.send(sender=model, pks=pks, action=action, using=using)

    transaction.on_commit(send, using=using, robust=True)
