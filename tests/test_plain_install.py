"""django-perf on a plain ``pip install django-perf``: no psycopg, Redis, Channels or orjson.

The suite's own environment has every extra, so these tests run a one-file
site (tests/support/plain/site.py) in a subprocess that cannot import them
(tests/support/core_only/) and use what the embedded defaults promise:
checks, migrations, the tiered cache, the middleware, perf_stats, and the
bulk and streaming helpers' portable paths.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.env import ROOT, without_extras

# In a folder of its own: a script puts its folder first on sys.path, where
# tests/support/http.py would hide the standard library's http.
SITE = ROOT / "tests" / "support" / "plain" / "site.py"

REQUESTS_AND_HELPERS = """
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory

from django_perf.db import bulk_insert, bulk_update
from django_perf.monitoring.flusher import flush
from django_perf.monitoring.recorder import get_recorder
from django_perf.streaming import stream_queryset

client = Client()
assert [client.get("/cached/").json() for _ in range(3)] == [{"value": {"n": 1}}] * 3
flush(get_recorder())
assert bulk_insert(Group, [{"name": "a"}, {"name": "b"}], returning=True) == [1, 2]
assert bulk_update(Group, [{"id": 2, "name": "c"}], ["name"]) == 1
response = stream_queryset(RequestFactory().get("/"), Group.objects.order_by("pk"), format="ndjson")
body = b"".join(response.streaming_content)
assert body == b'{"id":1,"name":"a"}\\n{"id":2,"name":"c"}\\n', body
print("helpers ok")
"""


def run_site(tmp_path, *args: str) -> str:
    env = without_extras({**os.environ, "PLAIN_SITE_DB": str(tmp_path / "plain.sqlite3")})
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(SITE), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.mark.sqlite
def test_a_plain_install_checks_migrates_serves_and_reports(tmp_path):
    assert "no issues" in run_site(tmp_path, "check")
    run_site(tmp_path, "migrate", "-v", "0")
    assert run_site(tmp_path, "shell", "-c", REQUESTS_AND_HELPERS).strip().endswith("helpers ok")
    report = json.loads(run_site(tmp_path, "perf_stats", "--json"))
    routes = {row["route"]: row["count"] for row in report["routes"]}
    assert routes == {"/cached/": 3}
    assert report["store"] == "database"
