"""PostgreSQL write and read paths the ORM leaves slow: bulk writes, batched reads, pools."""

from .async_pools import async_connection, async_pool, close_async_pools
from .errors import RowTypeError, RowValueError
from .insert import bulk_insert
from .loaders import Batcher, LoaderScope, LoaderScopeMiddleware, ModelLoader, loader_scope
from .pools import PoolStats, pool_stats
from .prepared import PreparedQuery
from .update import bulk_update
from .upsert import UpsertResult, bulk_upsert

__all__ = [
    "Batcher",
    "LoaderScope",
    "LoaderScopeMiddleware",
    "ModelLoader",
    "PoolStats",
    "PreparedQuery",
    "RowTypeError",
    "RowValueError",
    "UpsertResult",
    "async_connection",
    "async_pool",
    "bulk_insert",
    "bulk_update",
    "bulk_upsert",
    "close_async_pools",
    "loader_scope",
    "pool_stats",
]
