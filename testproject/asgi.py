"""ASGI entry point of the test project (``uvicorn testproject.asgi:application``).

With channels installed, ``/channels/...`` goes to Channels consumers and
everything else to Django; without it, everything goes to Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

django_application = get_asgi_application()  # sets Django up before anything imports models

try:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
except ImportError:  # the channels extra is not installed
    application = django_application
else:
    from django.urls import re_path

    from testproject.blog.consumers_exports import EventExportConsumer

    application = ProtocolTypeRouter(
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
