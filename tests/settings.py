"""Test settings: the test project on a real database chosen by ``DJANGO_PERF_TEST_DB``.

``postgres`` (the default) uses ``DJANGO_PERF_TEST_DATABASE_URL`` or starts an
embedded PostgreSQL; ``sqlite`` uses a file database, so that server processes
started by the tests see the same data as the test itself.
"""

import os

from testproject.dburl import database_from_url
from testproject.settings import *  # noqa: F403
from testproject.settings import BASE_DIR
from tests.support.servers import servers

TEST_DB = os.environ.get("DJANGO_PERF_TEST_DB", "postgres")

if TEST_DB == "postgres":
    DATABASES = {"default": database_from_url(servers.postgres_url(), BASE_DIR)}
    # The same test database through Django's native psycopg pool (tests/db/test_pools.py).
    DATABASES["pooled"] = {
        **DATABASES["default"],
        "OPTIONS": {**DATABASES["default"]["OPTIONS"], "pool": {"min_size": 1, "max_size": 3}},
        "TEST": {"MIRROR": "default"},
    }
elif TEST_DB == "sqlite":
    _db_file = servers.scratch_folder() / "test.sqlite3"
    DATABASES = {"default": database_from_url(f"sqlite:///{_db_file}", BASE_DIR)}
    DATABASES["default"]["TEST"] = {"NAME": str(_db_file)}
else:
    raise RuntimeError(f"DJANGO_PERF_TEST_DB must be 'postgres' or 'sqlite', not {TEST_DB!r}")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False

# The test process itself flushes metrics by hand (django_perf.monitoring.flush()); servers
# started by tests flush in the background as configured by their environment.
DJANGO_PERF = {**DJANGO_PERF, "MONITORING_FLUSH_INTERVAL": 0, "MONITORING_SYSTEM_INTERVAL": 0}  # noqa: F405
