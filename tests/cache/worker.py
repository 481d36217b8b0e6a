"""A separate OS process with its own TieredCache, driven over stdin/stdout by the tests.

``Worker`` starts one and sends it commands; run as a module it is the process:

    python -m tests.cache.worker LOCATION REDIS_URL [DATABASE_URL | --plain-redis]

Each input line is a JSON command ({"op": "get", "key": "k"}, ...); each output
line is {"result": ...} or {"error": "..."}. The first output line is
{"ready": true} once the cache's L1 is coherent.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def configure(location: str, redis_url: str, database_url: str | None) -> None:
    """TieredCache (memory + Redis [+ database]); ``--plain-redis``: django-redis alone."""
    import django
    from django.conf import settings

    tiers: list[dict[str, Any]] = [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": redis_url}]
    options: dict[str, Any] = {
        "SECRET_KEY": os.environ.get("DJANGO_PERF_TEST_SECRET", "django-perf-coherence-tests"),
        "INSTALLED_APPS": ["django_perf"],
        "USE_TZ": True,
        "CACHES": {
            "default": {
                "BACKEND": "django_perf.cache.TieredCache",
                "LOCATION": location,
                "OPTIONS": {"TIERS": tiers, "STRICT": True},
            }
        },
    }
    if database_url == "--plain-redis":
        options["CACHES"]["default"] = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
        }
    elif database_url:
        from testproject.dburl import database_from_url

        options["DATABASES"] = {"default": database_from_url(database_url, ".")}
        tiers.append({"KIND": "database"})
    settings.configure(**options)
    django.setup()


def run(command: dict[str, Any]) -> Any:
    from django.core.cache import cache

    op, key = command["op"], command.get("key")
    if op == "get":
        return cache.get(key, "<missing>")
    if op == "set":
        cache.set(key, command["value"], command.get("timeout", 300))
        return None
    if op == "delete":
        return cache.delete(key)
    if op == "incr":
        return cache.incr(key, command.get("delta", 1))
    if op == "stats":
        return cache.stats()
    if op == "until":
        # Poll until the value equals "value" (e.g. until an invalidation arrived).
        deadline = time.time() + command.get("timeout", 10)
        while time.time() < deadline:
            if cache.get(key, "<missing>") == command["value"]:
                return True
        return False
    if op == "watch":
        # Poll until the value differs from "value"; report when, in wall-clock time.
        # "pause": seconds to sleep between reads, as a worker busy with I/O would.
        deadline = time.time() + command.get("timeout", 10)
        pause = command.get("pause", 0)
        while time.time() < deadline:
            found = cache.get(key, "<missing>")
            if found != command["value"]:
                return {"value": found, "at": time.time()}
            if pause:
                time.sleep(pause)
        return {"value": command["value"], "at": None}
    raise ValueError(f"unknown op {op!r}")


class Worker:
    """Client side: starts ``python -m tests.cache.worker`` and sends it commands."""

    def __init__(self, location: str, redis_url: str, secret: str, *extra: str) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root), "DJANGO_PERF_TEST_SECRET": secret}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cache.worker", location, redis_url, *extra],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        ready = self.read(30)
        assert ready == {"ready": True}, ready

    def read(self, timeout: float = 15) -> dict[str, Any]:
        if not self._selector.select(timeout):
            raise AssertionError(f"worker {self.process.pid} did not answer in {timeout} s")
        line = self.process.stdout.readline()
        assert line, f"worker {self.process.pid} exited ({self.process.poll()})"
        return json.loads(line)

    def send(self, op: str, **arguments: Any) -> None:
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()

    def __call__(self, op: str, **arguments: Any) -> Any:
        self.send(op, **arguments)
        reply = self.read()
        assert "error" not in reply, reply["error"]
        return reply["result"]

    def l1_hits(self) -> int:
        return self("stats")["memory"]["hits"]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main(argv: list[str]) -> None:
    configure(argv[0], argv[1], argv[2] if len(argv) > 2 else None)
    from django.core.cache import cache

    ready = cache.wait_for_coherence(20) if hasattr(cache, "wait_for_coherence") else True
    print(json.dumps({"ready": ready}), flush=True)
    for line in sys.stdin:
        try:
            command = json.loads(line)
            if command["op"] == "watch" and command.get("ack"):
                print(json.dumps({"watching": True}), flush=True)
            reply = {"result": run(command)}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
