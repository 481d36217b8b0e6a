"""The event export as a Channels consumer, routed next to Django in testproject/asgi.py.

``/channels/events.<format>`` takes the same query string as ``/exports/events.<format>``
(testproject/blog/views_exports.py) and needs the same permission.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.db.models import QuerySet
from django.http import QueryDict

from django_perf.streaming.consumers import QuerysetStreamConsumer

from .views_exports import events_queryset, export_options


class EventExportConsumer(QuerysetStreamConsumer):
    @property
    def params(self) -> QueryDict:
        return QueryDict(self.scope.get("query_string", b"").decode())

    async def has_permission(self) -> bool:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        return await database_sync_to_async(user.has_perm)("blog.view_event")

    def get_queryset(self) -> QuerySet:
        return events_queryset(self.params)

    def get_stream_options(self) -> dict[str, Any]:
        options = super().get_stream_options()
        return {**options, **export_options(self.params, self.get_queryset())}
