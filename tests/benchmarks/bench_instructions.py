"""Instructions PerformanceMiddleware adds per request, counted by valgrind's cachegrind.

The monitoring benchmark times the added CPU, and under ASGI one sample of it
strays by several microseconds (a bare request costs ~1.3 ms there), so a
median of 7 resolves the middleware's cost to about +-2-3 us: too coarse to
tell whether a change helped. Instruction counts stray far less: each case
serves the monitoring benchmark's trivial view (Django's own WSGI and ASGI
handlers, in process) in a child process under cachegrind, once with
``SMALL`` and once with ``LARGE`` requests after the same warm-up, and
``(count(LARGE) - count(SMALL)) / (LARGE - SMALL)``, less the same for the
handler without middleware, is what one request adds. The queue is folded
into series at the end of each run, so the fold's share of every request is
counted; the background flusher is off (its cost per flush is in the
monitoring benchmark).

Counts are not exact: thread timing (Django's thread hops under ASGI, the
event loop's waits) and memory layout move them a little. The bare handler's
own count moves by up to ~1,500 instructions a request between runs, and the
middleware's added count over six ASGI runs was 24,100-26,800 (a no-op's
1,400-6,000): about +-1,500 for the middleware, some three times finer than
the timed median (+-2-3 us is +-3,500-5,000 instructions at ASGI's ~0.6 ns
each). The bare handler is counted again beside every case.

Needs valgrind (``apt-get install valgrind``); skipped without it.

    python -m tests.benchmarks instructions
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.benchmarks.bench_monitoring import PERF, PROMETHEUS
from tests.benchmarks.harness import Case, Comparison

SMALL, LARGE = 200, 600  # requests per child run; their difference is what is counted
WARMUP = 50  # requests before counting starts in both runs: imports, specialization
ROOT = Path(__file__).resolve().parents[2]
NOOP = {"ASGI": ["tests.benchmarks.bench_asgi_floor.NoopMiddleware"],
        "WSGI": [f"{__spec__.name}.SyncNoopMiddleware"]}  # fmt: skip
LEAST = ["tests.benchmarks.bench_asgi_floor.LeastRecordingMiddleware"]


class SyncNoopMiddleware:
    """A sync middleware that only calls the next handler."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: object) -> object:
        return self.get_response(request)


def instructions(cachegrind_out: str) -> int:
    """The total instruction count (``Ir``) in the text of a cachegrind output file."""
    events: list[str] = []
    for line in cachegrind_out.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            if "Ir" not in events:
                break
            return int(line.split()[1:][events.index("Ir")])
    raise ValueError("not a cachegrind output file: it has no 'events:' with Ir and 'summary:'")


def per_request(small: int, large: int) -> float:
    """Instructions per request from the counts of a ``SMALL`` and a ``LARGE`` run."""
    return (large - small) / (LARGE - SMALL)


def _count(kind: str, middleware: list[str], requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        env = {
            **os.environ,
            "PYTHONHASHSEED": "0",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DJANGO_PERF_TEST_DB": "sqlite",  # the view runs no query: no server needed
        }
        valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                    f"--cachegrind-out-file={out}"]  # fmt: skip
        child = [sys.executable, "-m", __spec__.name, kind, ",".join(middleware), str(requests)]
        subprocess.run(
            [*valgrind, *child],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        return instructions(out.read_text())


def _per_request(kind: str, middleware: list[str]) -> float:
    """Both runs at once (one per core): they do not share anything."""
    with ThreadPoolExecutor(2) as pool:
        small, large = pool.map(lambda n: _count(kind, middleware, n), (SMALL, LARGE))
    return per_request(small, large)


def added(kind: str, middleware: list[str]) -> Callable[[], float]:
    """Instructions per request with ``middleware`` less without, both counted now."""

    def sample() -> float:
        return _per_request(kind, middleware) - _per_request(kind, [])

    return sample


def comparisons() -> list[Comparison]:
    if shutil.which("valgrind") is None:
        print("\n(skipping the instruction counts: valgrind is not installed)")
        return []
    result = []
    for kind in ("WSGI", "ASGI"):
        candidates = [
            Case("django-perf PerformanceMiddleware", added(kind, PERF)),
            Case("no-op middleware", added(kind, NOOP[kind])),
        ]
        if kind == "ASGI":
            candidates.append(Case("least recording middleware", added(kind, LEAST)))
        result.append(
            Comparison(
                f"{kind} in process, instructions added per request (cachegrind)",
                baseline=Case("django-prometheus", added(kind, PROMETHEUS)),
                candidates=candidates,
                unit="instructions",
                repeat=1,  # a count per case: each takes a minute or two (spread: see above)
                warmup=0,
            )
        )
    return result


# --- the child process: serve requests under cachegrind --------------------------------


def _serve(kind: str, middleware: list[str], requests: int) -> None:
    import django

    django.setup()
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    from django_perf.monitoring.recorder import get_recorder
    from tests.benchmarks.bench_monitoring import _build, asgi_one, wsgi_one

    quiet = {"MONITORING_FLUSH_INTERVAL": 0, "MONITORING_SYSTEM_INTERVAL": 0}
    if kind == "WSGI":
        one = wsgi_one(_build(WSGIHandler, middleware, quiet))
    else:
        one = asgi_one(_build(ASGIHandler, middleware, quiet))
    recorder = get_recorder()
    for _ in range(WARMUP):
        one()
    recorder.fold()
    gc.collect()
    gc.freeze()
    for _ in range(requests):
        one()
    recorder.fold()


if __name__ == "__main__":
    kind, middleware, requests = sys.argv[1:4]
    _serve(kind, [m for m in middleware.split(",") if m], int(requests))
