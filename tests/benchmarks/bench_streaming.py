"""Streaming a queryset as JSON through real servers: memory, first byte and rows per second.

Each case is one GET of N events (7 columns: id, uuid, kind, occurred_at, score,
is_bot, note) from gunicorn (1 sync worker, WSGI) or uvicorn (1 process, ASGI),
read by a raw-socket client on 127.0.0.1. Every request records the server
process's peak RSS growth (VmHWM, reset before the request), the time to the
first body byte and the rows per second; the comparisons below read the same
requests, so their ratios come from one run:

* peak RSS growth and time to first byte, against ``JsonResponse(list(qs.values()))``
  (goals: < 30 MiB and < 150 ms for the streams, absolute, printed at the end);
* rows/s of the COPY fast path, end to end through the HTTP server, against
  ``COPY (SELECT <the same columns> ...) TO STDOUT`` read by psycopg in this
  process (goal: at least 0.5x);
* rows/s of the Python path against a hand-written orjson generator over
  ``iterator()`` / ``aiterator()`` (goal: no slower);
* encoding the same rows with orjson against the standard library's json.

Rows: ``DJANGO_PERF_BENCH_STREAMING_ROWS`` (default ``200000``; ``200000,1000000``
adds the million-row case, about 10 minutes more). PostgreSQL only.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from tests.benchmarks.harness import Case, Comparison, Goal, per_op
from tests.support.env import server_env
from tests.support.http import LiveServer, serve

FIELDS = ["id", "uuid", "kind", "occurred_at", "score", "is_bot", "note"]
RSS_GOAL_MIB = 30
TTFB_GOAL_MS = 150
MiB = 2**20


def row_counts() -> list[int]:
    raw = os.environ.get("DJANGO_PERF_BENCH_STREAMING_ROWS", "200000")
    return [int(part) for part in raw.split(",") if part.strip()]


def seed(rows: int) -> int:
    """At least ``rows`` events, written by PostgreSQL itself; return the first id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(id) FROM blog_event")
        count, first = cursor.fetchone()
        if count < rows:
            cursor.execute(
                """
                INSERT INTO blog_event (uuid, kind, occurred_at, day, local_time, duration,
                    score, amount, count, total, is_bot, consented, payload, note)
                SELECT gen_random_uuid(), (ARRAY['view', 'click', 'share', 'scroll'])[1 + g %% 4],
                    at, at::date, at::time, make_interval(secs => g %% 600),
                    round((random() * 100)::numeric, 3)::float8, (g %% 100000) / 100.0,
                    g %% 2000 - 1000, g * 1000, g %% 10 = 0, NULL, '{}'::jsonb,
                    CASE WHEN g %% 3 = 0 THEN 'note number ' || g END
                FROM generate_series(1, %s) AS g,
                    LATERAL (SELECT timestamptz '2026-01-01' - g * interval '1.5 seconds') AS t(at)
                """,
                [rows - count],
            )
            cursor.execute("ANALYZE blog_event")
            cursor.execute("SELECT min(id) FROM blog_event")
            first = cursor.fetchone()[0]
    return first


def session_cookie() -> str:
    user, _ = User.objects.get_or_create(username="bench-exporter")
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def worker_pid(server: LiveServer) -> int:
    import psutil

    process = psutil.Process(server.process.pid)
    children = process.children()
    return children[0].pid if children else process.pid  # gunicorn's worker, or uvicorn


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def dechunk(raw: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked transfer encoding."""
    body, position = bytearray(), 0
    while True:
        end = raw.index(b"\r\n", position)
        size = int(raw[position:end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += raw[end + 2 : end + 2 + size]
        position = end + 4 + size


@dataclass
class Measurement:
    ttfb_ms: float
    rows_per_second: float
    peak_rss_growth_mib: float


class HTTPCase:
    """GETs of one URL, each from a server process of its own; the first response is checked.

    A fresh process per request makes its peak RSS that request's: a process that
    served a JsonResponse keeps the memory it freed, and a later request's peak
    would hide under it. A warm-up request for one row loads the code first.
    """

    def __init__(self, kind: str, env: dict, path: str, warm_path: str, cookie: str, rows: int):
        self.kind, self.env, self.path, self.warm_path = kind, env, path, warm_path
        self.cookie, self.rows = cookie, rows
        self.checked = False

    def measure(self) -> Measurement:
        extra = ["--timeout", "1800"] if self.kind == "gunicorn" else []
        with serve(self.kind, self.env, extra_args=extra) as server:
            self._get(server, self.warm_path)
            return self._measure(server)

    def _get(self, server: LiveServer, path: str) -> tuple[bytes, float | None, float, float]:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={self.cookie}\r\n"
            "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
        ).encode()
        received = bytearray()
        first_body_at = None
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
            start = time.perf_counter()
            sock.sendall(request)
            while data := sock.recv(4 * MiB):
                received += data
                if first_body_at is None:
                    header_end = received.find(b"\r\n\r\n")
                    # Past the headers and the first chunk-size line: body bytes arrived.
                    if header_end >= 0 and len(received) > header_end + 16:
                        first_body_at = time.perf_counter()
            end = time.perf_counter()
        return bytes(received), first_body_at, start, end

    def _measure(self, server: LiveServer) -> Measurement:
        pid = worker_pid(server)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to VmRSS
        before = _status(pid, "VmRSS")
        received, first_body_at, start, end = self._get(server, self.path)
        peak = _status(pid, "VmHWM")
        if not self.checked:
            self._check(received, received.find(b"\r\n\r\n"))
        return Measurement(
            ttfb_ms=((first_body_at or end) - start) * 1000,
            rows_per_second=self.rows / (end - start),
            peak_rss_growth_mib=(peak - before) / MiB,
        )

    def _check(self, raw: bytes, header_end: int) -> None:
        head, body = raw[:header_end], raw[header_end + 4 :]
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        rows = json.loads(body)
        assert len(rows) == self.rows, (len(rows), self.rows)
        assert sorted(rows[0]) == sorted(FIELDS), rows[0]
        self.checked = True


class Recorder:
    """One request per sample, shared: each comparison reads the requests of its cases in order."""

    def __init__(self) -> None:
        self.cases: dict[str, HTTPCase] = {}
        self.measurements: dict[str, list[Measurement]] = {}
        self.read: dict[tuple[str, str, str], int] = {}

    def add(self, name: str, case: HTTPCase) -> None:
        self.cases[name] = case
        self.measurements[name] = []

    def sample(self, comparison: str, name: str, metric: str):
        def sample() -> float:
            key = (comparison, name, metric)
            index = self.read.get(key, 0)
            self.read[key] = index + 1
            while len(self.measurements[name]) <= index:
                self.measurements[name].append(self.cases[name].measure())
            return getattr(self.measurements[name][index], metric)

        return sample

    def median(self, name: str, metric: str) -> float:
        return statistics.median(getattr(m, metric) for m in self.measurements[name][1:])


def copy_reference(first_id: int, rows: int):
    """rows/s of ``COPY (SELECT <the columns>) TO STDOUT`` read by psycopg, no Django, no HTTP."""
    columns = ", ".join(FIELDS)
    sql = f"COPY (SELECT {columns} FROM blog_event WHERE id <= %s ORDER BY id) TO STDOUT"

    def sample() -> float:
        start = time.perf_counter()
        count = 0
        with connection.cursor() as cursor, cursor.cursor.copy(sql, [first_id + rows - 1]) as copy:
            for _row in copy:
                count += 1
        elapsed = time.perf_counter() - start
        assert count == rows, (count, rows)
        return rows / elapsed

    return sample


def encoder_comparison() -> Comparison:
    """Encoding 100,000 query rows as JSON, as the Python path does: orjson against json."""
    from django.core.serializers.json import DjangoJSONEncoder

    from django_perf.streaming.encoders import OrjsonBackend, StdlibBackend
    from django_perf.streaming.formats import row_encoder
    from django_perf.streaming.query import plan_query
    from testproject.blog.models import Event

    queryset = Event.objects.order_by("id")[:100_000]
    plan = plan_query(Event.objects.all(), FIELDS)
    rows = list(queryset.values_list(*FIELDS))
    chunks = [rows[i : i + 2000] for i in range(0, len(rows), 2000)]
    dicts = [dict(zip(FIELDS, row, strict=True)) for row in rows]

    def encode_with(backend):
        encode = row_encoder("json", plan.columns, backend)
        return lambda: [encode(chunk) for chunk in chunks]

    def json_response_style():
        return json.dumps(dicts, cls=DjangoJSONEncoder)

    return Comparison(
        "encode 100,000 query rows as JSON (2000-row chunks)",
        baseline=Case("json (standard library)", per_op(encode_with(StdlibBackend()), 1)),
        candidates=[
            Case("orjson", per_op(encode_with(OrjsonBackend()), 1), Goal("<=", 1.0)),
            Case("JsonResponse's json.dumps(list)", per_op(json_response_style, 1)),
        ],
        repeat=5,
    )


def comparisons() -> list[Comparison]:
    if connection.vendor != "postgresql":
        print("bench_streaming measures the PostgreSQL fast path: run it on PostgreSQL.")
        return []
    counts = row_counts()
    first_id = seed(max(counts))
    cookie = session_cookie()
    env = server_env()
    fields = ",".join(FIELDS)
    recorder = Recorder()
    result: list[Comparison] = []
    summary: list[tuple[str, str, str, float, float]] = []

    for rows in counts:
        query = f"?fields={fields}&max_id={first_id + rows - 1}"
        urls = {
            "JsonResponse": f"/exports/baseline/json-response.json{query}",
            "hand-written orjson generator": f"/exports/baseline/handwritten.json{query}",
            "stream_queryset, Python path": f"/exports/events.json{query}&path=python",
            "stream_queryset, COPY fast path": f"/exports/events.json{query}",
        }
        for kind, server in (("WSGI", "gunicorn"), ("ASGI", "uvicorn")):
            for label, url in urls.items():
                warm = url.replace(f"max_id={first_id + rows - 1}", f"max_id={first_id}")
                case = HTTPCase(server, env, url, warm, cookie, rows)
                recorder.add(f"{kind} {rows} {label}", case)

        def cases(kind, metric, title, rows=rows, urls=urls):
            return {
                label: Case(label, recorder.sample(title, f"{kind} {rows} {label}", metric))
                for label in urls
            }

        for kind in ("WSGI", "ASGI"):
            server_name = "gunicorn" if kind == "WSGI" else "uvicorn"
            title = f"peak server RSS growth, {kind} ({server_name}), {rows:,} rows"
            named = cases(kind, "peak_rss_growth_mib", title)
            result.append(
                Comparison(
                    title,
                    baseline=named.pop("JsonResponse"),
                    candidates=list(named.values()),
                    unit="MiB",
                    repeat=3,
                )
            )
        for kind in ("WSGI", "ASGI"):
            title = f"time to first byte, {kind}, {rows:,} rows"
            named = cases(kind, "ttfb_ms", title)
            result.append(
                Comparison(
                    title,
                    baseline=named.pop("JsonResponse"),
                    candidates=list(named.values()),
                    unit="ms",
                    repeat=3,
                )
            )
        title = f"rows/s against COPY (SELECT ...) TO STDOUT, {rows:,} rows"
        candidates = []
        for kind in ("WSGI", "ASGI"):
            for label, goal in (
                ("stream_queryset, COPY fast path", Goal(">=", 0.5)),
                ("stream_queryset, Python path", None),
            ):
                sample = recorder.sample(title, f"{kind} {rows} {label}", "rows_per_second")
                candidates.append(Case(f"{kind}: {label}", sample, goal))
        result.append(
            Comparison(
                title,
                baseline=Case(
                    "COPY TO STDOUT via psycopg (no HTTP)", copy_reference(first_id, rows)
                ),
                candidates=candidates,
                unit="rows/s",
                repeat=3,
            )
        )
        for kind in ("WSGI", "ASGI"):
            title = f"rows/s, Python path against a hand-written generator, {kind}, {rows:,} rows"
            named = cases(kind, "rows_per_second", title)
            python = named["stream_queryset, Python path"]
            python.goal = Goal(">=", 1.0)
            result.append(
                Comparison(
                    title,
                    baseline=named["hand-written orjson generator"],
                    candidates=[python],
                    unit="rows/s",
                    repeat=3,
                )
            )
        for kind in ("WSGI", "ASGI"):
            for label in ("stream_queryset, Python path", "stream_queryset, COPY fast path"):
                summary.append((kind, str(rows), label, 0.0, 0.0))

    def finish() -> None:
        print("\nabsolute goals (medians, excluding the warm-up request):")
        for kind, rows, label, _, _ in summary:
            name = f"{kind} {rows} {label}"
            if not recorder.measurements[name][1:]:
                continue
            rss = recorder.median(name, "peak_rss_growth_mib")
            ttfb = recorder.median(name, "ttfb_ms")
            print(
                f"  {kind} {int(rows):>9,} rows  {label:<32} peak RSS +{rss:6.1f} MiB "
                f"({'met' if rss < RSS_GOAL_MIB else 'MISSED'}: < {RSS_GOAL_MIB})  first byte "
                f"{ttfb:6.1f} ms ({'met' if ttfb < TTFB_GOAL_MS else 'MISSED'}: < {TTFB_GOAL_MS})"
            )

    encoders = encoder_comparison()
    encoders.teardown = finish
    result.append(encoders)
    return result
