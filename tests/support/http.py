"""Run the test project under real HTTP servers (gunicorn, uvicorn, daphne) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .env import ROOT, bin_path
from .servers import free_port, servers, wait_for_port

WSGI_APP = "testproject.wsgi:application"
ASGI_APP = "testproject.asgi:application"


def server_command(kind: str, port: int, workers: int) -> list[str]:
    if kind == "gunicorn":
        return [bin_path("gunicorn"), WSGI_APP, "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--graceful-timeout", "10"]  # fmt: skip
    if kind == "uvicorn":
        return [bin_path("uvicorn"), ASGI_APP, "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--no-access-log"]  # fmt: skip
    if kind == "daphne":
        return [bin_path("daphne"), "-b", "127.0.0.1", "-p", str(port), ASGI_APP]
    raise ValueError(f"unknown server kind {kind!r}; use gunicorn, uvicorn or daphne")


@dataclass
class LiveServer:
    """A server process (and its workers, in their own process group) serving the test project."""

    kind: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Stop the server (SIGTERM is graceful for all three) and return its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def serve(
    kind: str,
    env: Mapping[str, str],
    *,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[LiveServer]:
    """Start ``kind`` serving the test project with ``env``; stop it (and its workers) on exit."""
    port = free_port()
    log_path = servers.scratch_folder() / f"{kind}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*server_command(kind, port, workers), *extra_args],
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(kind, port, process, log_path)
    try:
        try:
            wait_for_port(port, timeout, process=process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{kind} did not start: {error}\n{server.log()}") from error
        yield server
    except BaseException:
        # A failing test shows what the server said (pytest prints captured output).
        server.stop()
        print(f"--- {kind} log ({log_path}) ---\n{server.log()}")
        raise
    finally:
        server.stop()
