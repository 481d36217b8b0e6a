"""PostgreSQL write and read paths the ORM leaves slow: bulk writes, batched reads, pools."""

from .errors import RowTypeError, RowValueError
from .insert import bulk_insert
from .update import bulk_update
from .upsert import UpsertResult, bulk_upsert

__all__ = [
    "RowTypeError",
    "RowValueError",
    "UpsertResult",
    "bulk_insert",
    "bulk_update",
    "bulk_upsert",
]
