"""A separate OS process with its own cache, driven over stdin/stdout by the invalidation tests.

    python -m tests.invalidation.worker CONFIG_JSON

CONFIG_JSON: {"location": ..., "tiers": [...], "secret": ..., "database_url": ... | null}.
Each input line is a JSON command ({"op": "call", "fn": "summary", "args": [1]});
each output line is {"result": ...} or {"error": "Type: message"}. The first output
line is {"ready": true} once the cache's L1 is coherent.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def configure(config: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    options: dict[str, Any] = {
        "SECRET_KEY": config["secret"],
        "INSTALLED_APPS": ["django_perf"],
        "USE_TZ": True,
        "CACHES": {
            "default": {
                "BACKEND": "django_perf.cache.TieredCache",
                "LOCATION": config["location"],
                "OPTIONS": {"TIERS": config["tiers"], "STRICT": True},
            }
        },
    }
    if config.get("database_url"):
        from testproject.dburl import database_from_url

        options["DATABASES"] = {"default": database_from_url(config["database_url"], ".")}
    settings.configure(**options)
    django.setup()


def crowd(fn: Any, args: list[Any], threads: int, tasks: int, start_at: float) -> dict[str, Any]:
    """``threads`` threads and ``tasks`` asyncio tasks call ``fn(*args)`` at ``start_at``."""
    results: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()

    def record(value: Any = None, error: BaseException | None = None) -> None:
        with lock:
            if error is None:
                results.append(value)
            else:
                errors.append(f"{type(error).__name__}: {error}")

    is_async = asyncio.iscoroutinefunction(fn)

    def in_thread() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        try:
            record(asyncio.run(fn(*args)) if is_async else fn(*args))
        except Exception as error:
            record(error=error)
        finally:
            from django.db import connections

            connections.close_all()

    async def in_task() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        try:
            record(await fn(*args) if is_async else await asyncio.to_thread(fn, *args))
        except Exception as error:
            record(error=error)

    async def all_tasks() -> None:
        await asyncio.gather(*(in_task() for _ in range(tasks)))

    started = [threading.Thread(target=in_thread) for _ in range(threads)]
    for thread in started:
        thread.start()
    asyncio.run(all_tasks())
    for thread in started:
        thread.join()
    distinct = {json.dumps(value, sort_keys=True) for value in results}
    return {"results": len(results), "distinct": sorted(distinct), "errors": errors}


def run(command: dict[str, Any]) -> Any:
    from django.core.cache import cache

    from django_perf.cache.invalidation import tagged_key
    from tests.invalidation import functions

    op = command["op"]
    if op == "get":
        return cache.get(command["key"], "<missing>")
    if op == "set":
        cache.set(command["key"], command["value"], command.get("timeout", 300))
        return None
    if op == "in_l1":
        return cache._store.memory.contains(cache.make_key(command["key"]))
    if op == "tagged_get":
        return cache.get(tagged_key(command["key"], command["tags"]), "<missing>")
    if op == "tagged_set":
        cache.set(tagged_key(command["key"], command["tags"]), command["value"], 300)
        return None
    if op == "invalidate":
        from django_perf.cache.invalidation import invalidate

        return invalidate(**command["kwargs"]).as_dict()
    if op == "call":
        fn = getattr(functions, command["fn"])
        if asyncio.iscoroutinefunction(fn):
            return asyncio.run(fn(*command.get("args", [])))
        return fn(*command.get("args", []))
    if op == "crowd":
        fn = getattr(functions, command["fn"])
        return crowd(
            fn, command.get("args", []), command["threads"], command["tasks"], command["start_at"]
        )
    raise ValueError(f"unknown op {op!r}")


class Worker:
    """Client side: starts ``python -m tests.invalidation.worker`` and sends it commands."""

    def __init__(self, config: dict[str, Any], *, ready: bool = True, **env: str) -> None:
        root = Path(__file__).resolve().parents[2]
        environment = {**os.environ, "PYTHONPATH": str(root), **env}
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.invalidation.worker", json.dumps(config)],
            cwd=root,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        if ready:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait for the first line: Django is set up and L1 is coherent."""
        answer = self.read(30)
        assert answer == {"ready": True}, answer

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float = 30) -> dict[str, Any]:
        if not self._selector.select(timeout):
            raise AssertionError(f"worker {self.pid} did not answer in {timeout} s")
        line = self.process.stdout.readline()
        assert line, f"worker {self.pid} exited ({self.process.poll()})"
        return json.loads(line)

    def send(self, op: str, **arguments: Any) -> None:
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = 30) -> Any:
        answer = self.read(timeout)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def __call__(self, op: str, **arguments: Any) -> Any:
        self.send(op, **arguments)
        return self.reply()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._selector.close()


def main(argv: list[str]) -> None:
    configure(json.loads(argv[0]))
    from django.core.cache import cache

    print(json.dumps({"ready": cache.wait_for_coherence(20)}), flush=True)
    for line in sys.stdin:
        try:
            reply = {"result": run(json.loads(line))}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
