"""Errors mid-stream and clients that hang up, against real servers and the real database."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from django.db import connection

from testproject.blog.models import Event
from tests.streaming.expected import PLAIN_FIELDS

pytestmark = pytest.mark.django_db

POSTGRES = os.environ.get("DJANGO_PERF_TEST_DB", "postgres") == "postgres"
SERVERS = ["gunicorn", "uvicorn", "daphne"]
CHUNK = 50


def middle_event_id() -> int:
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    return ids[len(ids) // 2]


FAILURES = [("python", "python")]  # (path, where the failure is injected)
if POSTGRES:
    FAILURES += [("copy", "db"), ("python", "db")]


def read_until_the_connection_breaks(client: httpx.Client, url: str, params: dict):
    """Read a response until it ends; return it, the bytes received, and how it broke off."""
    received = b""
    with client.stream("GET", url, params=params) as response:
        try:
            for chunk in response.iter_bytes():
                received += chunk
        except (httpx.RemoteProtocolError, httpx.ReadTimeout) as error:
            return response, received, error
    return response, received, None


@pytest.mark.parametrize(("path", "fail"), FAILURES)
@pytest.mark.parametrize("kind", SERVERS)
def test_an_error_mid_stream_breaks_the_connection_not_the_json(kind, path, fail, exports, request):
    server = request.getfixturevalue(kind)
    params = {
        "fields": ",".join(PLAIN_FIELDS),
        "fail_at": str(middle_event_id()),
        "fail": fail,
        "chunk_size": str(CHUNK),
        "path": path if path == "python" else "auto",
    }
    # daphne leaves the connection open after an application error (it tries to send a 500
    # on a response already started, and fails): there the client sees the body stop.
    timeout = httpx.Timeout(60, read=5) if kind == "daphne" else 60
    with exports.client(server, timeout=timeout) as client:
        response, received, error = read_until_the_connection_breaks(
            client, "/exports/events.json", params
        )
    assert response.status_code == 200, server.log()[-3000:]
    assert response.headers["x-stream-path"] == path
    assert error is not None, "the response ended as if it were complete"
    expected_error = httpx.ReadTimeout if kind == "daphne" else httpx.RemoteProtocolError
    assert isinstance(error, expected_error)
    assert received.startswith(b'[{"id":')
    assert len(received) > CHUNK * 100  # rows before the failure were sent
    assert not received.endswith(b"]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(received)
    deadline = time.monotonic() + 5
    while "failed after" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(r"stream_queryset\(Event, json\).* failed after \d+ bytes", server.log())
    if POSTGRES:
        # The failed request's database session is closed too (Django's ASGI handler does
        # not close it when a body fails; the stream does).
        assert wait_for_no_backends() == []


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_an_error_in_ndjson_is_not_a_clean_end_either(kind, exports, request):
    server = request.getfixturevalue(kind)
    params = {"fail_at": str(middle_event_id()), "fail": "python", "chunk_size": str(CHUNK)}
    with exports.client(server) as client:
        _response, received, error = read_until_the_connection_breaks(
            client, "/exports/events.ndjson", {**params, "fields": "id,kind"}
        )
    assert _response.status_code == 200, server.log()[-3000:]
    assert error is not None
    assert received.count(b"\n") < exports.events


# --- clients that hang up ---------------------------------------------------------------------


def hang_up_after_the_first_chunk(port: int, path: str, cookie: str) -> int:
    """Send a GET, read the headers and the first body bytes, then reset the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={cookie}\r\n"
            "Accept-Encoding: identity\r\n\r\n"
        )
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        while len(body) < 200:  # past the chunk-size line: the first rows have arrived
            body += sock.recv(65536)
        # SO_LINGER 0: close with a reset, as a browser tab or a killed client does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return int(head.split(b" ", 2)[1])


def server_processes(server) -> list[psutil.Process]:
    root = psutil.Process(server.process.pid)
    return root.children(recursive=True) or [root]  # gunicorn's workers, or uvicorn/daphne


def rss(server) -> int:
    return sum(process.memory_info().rss for process in server_processes(server))


def database_backends() -> list[tuple]:
    """Other sessions on the test database: (state, query) of each."""
    with connection.cursor() as cursor:
        # The test runs in a transaction, and PostgreSQL keeps one snapshot of the activity
        # view per transaction unless told to drop it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cursor.fetchall()


def wait_for_no_backends(timeout: float = 15.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while (backends := database_backends()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return backends


def stopped_streams(log: str) -> list[int]:
    """Bytes sent by each stream the server stopped (lines of the project's own handler:
    daphne's root handler repeats each with a timestamp)."""
    found = re.findall(
        r"^stream_queryset.* stopped after (\d+) bytes: the client went away", log, re.M
    )
    return [int(n) for n in found]


@pytest.mark.parametrize("kind", SERVERS)
def test_clients_that_hang_up_stop_the_stream_and_leave_nothing_open(kind, exports, request):
    server = request.getfixturevalue(kind)
    cookie = exports.cookies["sessionid"]
    # ~50 ms per chunk of 50 rows: a full export takes seconds, the first chunk does not.
    base = f"/exports/events.json?fields=id,kind,occurred_at,score,note&chunk_size={CHUNK}"
    paths = [f"{base}&slow=0.001&path=python"]
    if POSTGRES:
        paths.append(f"{base}&slow=0.001")  # the COPY fast path
    log_before = len(stopped_streams(server.log()))

    def round_of(clients: int) -> list[int]:
        urls = [paths[i % len(paths)] for i in range(clients)]
        with ThreadPoolExecutor(10) as pool:
            return list(
                pool.map(lambda url: hang_up_after_the_first_chunk(server.port, url, cookie), urls)
            )

    for _warm_up in range(2):  # imports, caches, connections, the monitoring's first flushes
        assert set(round_of(10)) == {200}
    time.sleep(1)
    if POSTGRES:
        assert wait_for_no_backends() == []
    before = rss(server)
    assert set(round_of(50)) == {200}

    if POSTGRES:
        leftover = wait_for_no_backends()
        assert leftover == [], f"sessions left open: {leftover}"
    deadline = time.monotonic() + 15
    while len(stopped_streams(server.log())) < log_before + 70 and time.monotonic() < deadline:
        time.sleep(0.1)
    stops = stopped_streams(server.log())[log_before:]
    assert len(stops) == 70, server.log()[-3000:]
    full_body = 150 * exports.events  # bytes of a whole export, roughly
    assert max(stops) < full_body / 10  # each producer stopped within a few chunks
    growth = rss(server) - before
    assert growth < 8 * 2**20, f"server memory grew by {growth / 2**20:.1f} MiB"


@pytest.fixture(scope="module")
def pooled_uvicorn(exports):
    """uvicorn with the test project's connection pool on (at most 4 connections)."""
    from tests.support.http import serve

    env = {**exports.env, "DATABASE_POOL": "1"}
    with serve("uvicorn", env) as server:
        yield server


@pytest.mark.postgres
def test_with_a_pool_hung_up_streams_give_back_idle_connections(exports, pooled_uvicorn):
    """Pooled connections outlive the request: they must come back with no transaction open."""
    cookie = exports.cookies["sessionid"]
    base = f"/exports/events.json?fields=id,kind,occurred_at,score,note&chunk_size={CHUNK}"
    urls = [f"{base}&slow=0.001&path=python", f"{base}&slow=0.001"] * 10
    with ThreadPoolExecutor(4) as pool:  # no more at once than the pool holds
        port = pooled_uvicorn.port
        statuses = set(pool.map(lambda url: hang_up_after_the_first_chunk(port, url, cookie), urls))
    assert statuses == {200}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sessions = database_backends()
        if all(state == "idle" for state, _query in sessions):
            break
        time.sleep(0.1)
    assert sessions, "the pool keeps its connections open"
    assert len(sessions) <= 4
    assert [s for s in sessions if s[0] != "idle"] == []  # no open transaction, no cursor, no COPY
