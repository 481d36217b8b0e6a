"""Start ``manage.py demo`` as a new user would: a fresh SQLite file, no Redis, a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.env import ROOT, without_extras


def start_demo(
    folder: Path, port: int, *, core_only: bool = False, **env: str
) -> subprocess.Popen[str]:
    """The demo serving on 127.0.0.1:``port`` from ``folder/demo.sqlite3``; ``env`` adds variables.

    ``core_only`` hides the packages of django-perf's extras from the demo (see
    ``core_only/sitecustomize.py``), as after the README's ``pip install -e .``.
    Its output (stdout and stderr together) is read with ``communicate()`` after
    ``terminate()``.
    """
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DATABASE_URL": f"sqlite:///{folder / 'demo.sqlite3'}",
        **env,
    }
    if core_only:
        environ = without_extras(environ)
    environ.pop("REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
