"""ASGI entry point of the test project (``uvicorn testproject.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

django_application = get_asgi_application()

from django_perf.db import AsyncPoolLifespan  # noqa: E402 (after Django is set up)

# Answers the ASGI lifespan protocol and closes the async database pools at shutdown.
application = AsyncPoolLifespan(django_application)
