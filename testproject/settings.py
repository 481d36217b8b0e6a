"""Settings of the django-perf test project.

Embedded by default: SQLite and in-process memory, no servers. Set
``DATABASE_URL`` (``postgresql://...``) and ``REDIS_URL`` (``redis://...``) to
run the same project on PostgreSQL and Redis.
"""

import os
from pathlib import Path

from testproject.dburl import database_from_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-perf-testproject-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_perf",
    "testproject.blog",
    "testproject.bulkdemo",
    "testproject.polls",
]
# testproject.pgdemo's array fields need psycopg (django.contrib.postgres imports it),
# which a plain `pip install django-perf` does not bring: the demo runs without it.
try:
    import psycopg  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append("testproject.pgdemo")

MIDDLEWARE = [
    "django_perf.monitoring.PerformanceMiddleware",  # first, so it times everything below it
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_perf.db.LoaderScopeMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", "sqlite:///db.sqlite3"), base_dir=BASE_DIR
    )
}

# On PostgreSQL the project uses Django's native psycopg pool (DATABASE_POOL=0 turns it off);
# django_perf's system checks validate the options and pool_stats() reports on it.
_postgres = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if _postgres and os.environ.get("DATABASE_POOL", "1") == "1":
    DATABASES["default"]["OPTIONS"].setdefault(
        "pool", {"min_size": 1, "max_size": 4, "timeout": 10}
    )

REDIS_URL = os.environ.get("REDIS_URL") or None

# django-perf's tiered cache: process memory in front of a database table
# (embedded default), with Redis between them when REDIS_URL is set.
CACHE_TIERS: list[dict] = [{"KIND": "memory", "MAX_TIMEOUT": 30}]
if REDIS_URL:
    CACHE_TIERS.append({"KIND": "redis", "LOCATION": REDIS_URL})
CACHE_TIERS.append({"KIND": "database"})
CACHES = {
    "default": {
        "BACKEND": "django_perf.cache.TieredCache",
        "OPTIONS": {"TIERS": CACHE_TIERS},
    },
}

DJANGO_PERF: dict = {
    # Monitoring: metrics go to the database, or to Redis when METRICS_REDIS_URL is set.
    "MONITORING_ENABLED": os.environ.get("METRICS_ENABLED", "1") == "1",
    "MONITORING_REDIS_URL": os.environ.get("METRICS_REDIS_URL") or None,
    "MONITORING_FLUSH_INTERVAL": float(os.environ.get("METRICS_FLUSH_INTERVAL", "5")),
    "MONITORING_SYSTEM_INTERVAL": float(os.environ.get("METRICS_SYSTEM_INTERVAL", "15")),
    "MONITORING_EXCLUDE_PATHS": ["/static/", "/favicon.ico", "/health/"],
    "MONITORING_METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
}

AUTH_PASSWORD_VALIDATORS: list = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Serve static files from the app folders even with DEBUG off (browser tests under gunicorn).
SERVE_STATIC = os.environ.get("DJANGO_SERVE_STATIC") == "1"
LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_perf": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_PERF_LOG_LEVEL", "INFO"),
        }
    },
}

# Streaming exports (testproject/blog/views_exports.py): let tests make a query slow or
# fail mid-stream. Never on outside tests.
EXPORT_TEST_HOOKS = os.environ.get("DJANGO_PERF_EXPORT_TEST_HOOKS") == "1"
