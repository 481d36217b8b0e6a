"""The real servers the suite runs on, and the test project served by real HTTP servers."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from django.db import connection

from testproject.blog.models import Article
from testproject.blog.seed import SeedSize, seed
from tests.support.env import ROOT
from tests.support.http import serve
from tests.support.servers import PostgresServer, RedisServer, sweep_stale_folders

TEST_DB = os.environ.get("DJANGO_PERF_TEST_DB", "postgres")


@pytest.mark.django_db
def test_the_suite_runs_on_the_database_it_was_asked_for():
    expected = {"postgres": "postgresql", "sqlite": "sqlite"}[TEST_DB]
    assert connection.vendor == expected
    if expected == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            assert int(cursor.fetchone()[0]) >= 140000


@pytest.mark.redis
def test_redis_marker_gives_a_real_empty_server(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert client.info("server")["redis_version"]


@pytest.mark.redis
def test_redis_marker_empties_the_server_between_tests(redis_url):
    assert redis.Redis.from_url(redis_url).get("k") is None


@pytest.mark.redis
def test_redis_server_can_be_stopped_and_restarted_mid_test(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_connect_timeout=0.5)
    client.set("before", 1)
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.get("before")
    redis_server.start()
    assert client.ping()
    assert client.get("before") is None  # a restart is a cold, empty server


def _descendants_alive(pids):
    return [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]


def test_an_embedded_redis_leaves_no_process_or_folder_behind():
    server = RedisServer()
    server.start()
    pid, folder = server.process.pid, server.folder
    assert redis.Redis(port=server.port).ping()
    server.close()
    assert not _descendants_alive([pid])
    assert not folder.exists()


def test_an_embedded_postgres_leaves_no_process_or_folder_behind():
    import psycopg

    server = PostgresServer()
    server.start()
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    postmaster = psutil.Process(server.process.pid)
    family = [postmaster.pid] + [child.pid for child in postmaster.children(recursive=True)]
    folder = server.folder
    server.close()
    assert not _descendants_alive(family)
    assert not folder.exists()


def test_a_killed_run_leaves_no_server_and_its_folder_is_swept(tmp_path):
    """A test run killed with -9 must not leave servers running, nor folders for long.

    The killed run gets a private TMPDIR so that concurrent test sessions do not sweep it first.
    """
    script = (
        "import time\n"
        "from tests.support.servers import RedisServer\n"
        "s = RedisServer(); s.start(); print(s.process.pid, s.folder, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    pid, folder = parent.stdout.readline().split()
    child_pid = int(pid)
    assert psutil.pid_exists(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(child_pid).wait(timeout=10)
    assert not _descendants_alive([child_pid])

    assert Path(folder).exists()  # the killed run could not clean up; the next one does
    assert Path(folder).parent == tmp_path
    sweep_stale_folders(tmp_path)
    assert not Path(folder).exists()


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_the_test_project_serves_seeded_pages_through_real_servers(kind, server_env):
    seed(SeedSize(authors=3, articles=30, comments=10, events=5))
    newest = Article.objects.filter(status="published").first()
    with serve(kind, server_env, workers=2) as server:
        home = httpx.get(server.url + "/", timeout=10)
        article = httpx.get(f"{server.url}/articles/{newest.slug}/", timeout=10)
        missing = httpx.get(f"{server.url}/articles/no-such-article/", timeout=10)
    assert home.status_code == 200
    assert newest.title in home.text
    assert article.status_code == 200
    assert newest.author.name in article.text
    assert missing.status_code == 404
