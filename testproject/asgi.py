"""ASGI entry point of the test project (``uvicorn testproject.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

from django_perf.db import AsyncPoolLifespan
from django_perf.monitoring.asgi import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

# with_lifespan: the last metrics flush runs at lifespan shutdown (uvicorn skips atexit);
# AsyncPoolLifespan then closes the async database pools.
application = AsyncPoolLifespan(with_lifespan(get_asgi_application()))
