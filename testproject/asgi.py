"""ASGI entry point of the test project (``uvicorn testproject.asgi:application``).

With channels installed, ``/channels/...`` goes to Channels consumers and
everything else to Django; without it, everything goes to Django. Either way
``with_lifespan`` answers the lifespan protocol: at shutdown the last metrics
flush runs and the async database pools close (uvicorn workers exit without
running atexit handlers).
"""

import os

from django.core.asgi import get_asgi_application

from django_perf.lifespan import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

django_application = get_asgi_application()  # sets Django up before anything imports models

try:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
except ImportError:  # the channels extra is not installed
    application = with_lifespan(django_application)
else:
    from django.urls import re_path

    from testproject.blog.consumers_exports import EventExportConsumer

    router = ProtocolTypeRouter(
        {
            "http": URLRouter(
                [
                    re_path(
                        r"^channels/events\.(?P<format>json|ndjson|csv)$",
                        AuthMiddlewareStack(EventExportConsumer.as_asgi()),
                    ),
                    re_path(r"", django_application),
                ]
            )
        }
    )
    application = with_lifespan(router)
