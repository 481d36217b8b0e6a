"""PostgreSQL write and read paths the ORM leaves slow: bulk writes, batched reads, pools."""

from .errors import RowTypeError, RowValueError
from .insert import bulk_insert
from .loaders import Batcher, LoaderScope, LoaderScopeMiddleware, ModelLoader, loader_scope
from .prepared import PreparedQuery
from .update import bulk_update
from .upsert import UpsertResult, bulk_upsert

__all__ = [
    "Batcher",
    "LoaderScope",
    "LoaderScopeMiddleware",
    "ModelLoader",
    "PreparedQuery",
    "RowTypeError",
    "RowValueError",
    "UpsertResult",
    "bulk_insert",
    "bulk_update",
    "bulk_upsert",
    "loader_scope",
]
