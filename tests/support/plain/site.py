"""A one-file site that uses django-perf as a plain ``pip install django-perf`` allows.

Run as a script (``python site.py <command> ...``) with
``PLAIN_SITE_DB`` naming a SQLite file. It has the app, the tiered cache on
its defaults, the middleware and the app's URLs: nothing that needs an extra.
"""

import os
import sys

from django.conf import settings
from django.http import JsonResponse
from django.urls import include, path


def cached(request):
    from django.core.cache import cache

    cache.set("plain", {"n": 1}, 30)
    return JsonResponse({"value": cache.get("plain")})


urlpatterns = [path("cached/", cached), path("perf/", include("django_perf.urls"))]

settings.configure(
    SECRET_KEY="plain-site-" + "x" * 40,
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["testserver"],
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django_perf",
    ],
    MIDDLEWARE=[
        "django_perf.monitoring.PerformanceMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PLAIN_SITE_DB"]}
    },
    CACHES={"default": {"BACKEND": "django_perf.cache.TieredCache"}},
)

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
