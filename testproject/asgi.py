"""ASGI entry point of the test project (``uvicorn testproject.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

from django_perf.lifespan import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

# with_lifespan: at shutdown, the last metrics flush runs and the async database
# pools close (uvicorn workers exit without running atexit handlers).
application = with_lifespan(get_asgi_application())
