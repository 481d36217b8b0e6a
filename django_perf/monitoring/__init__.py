"""Request, system and memory metrics gathered across every worker process."""

from .flusher import flush
from .histogram import Histogram
from .middleware import PerformanceMiddleware
from .store import get_store

__all__ = ["Histogram", "PerformanceMiddleware", "flush", "get_store"]
