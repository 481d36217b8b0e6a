"""The ASGI lifespan wrapper: answers the protocol, runs every hook once, reports failures."""

import asyncio
import threading

import pytest

from django_perf import lifespan


@pytest.fixture(autouse=True)
def _no_leftover_hooks(monkeypatch):
    monkeypatch.setattr(lifespan, "_hooks", [])


def run_lifespan(app, events=("lifespan.startup", "lifespan.shutdown")):
    sent = []
    incoming = [{"type": e} for e in events]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    return sent


async def inner_app(scope, receive, send):
    raise AssertionError("lifespan scopes must not reach the wrapped application")


def test_startup_and_shutdown_are_answered_and_hooks_run_newest_first():
    calls = []
    loop_thread = {}

    def sync_hook():
        calls.append("sync")
        loop_thread["sync"] = threading.current_thread()

    async def async_hook():
        calls.append("async")
        loop_thread["async"] = threading.current_thread()

    lifespan.on_shutdown(sync_hook)
    lifespan.on_shutdown(async_hook)
    lifespan.on_shutdown(sync_hook)  # registering twice runs it once
    sent = run_lifespan(lifespan.with_lifespan(inner_app))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert calls == ["async", "sync"]
    assert loop_thread["async"] is threading.main_thread()  # awaited on the loop
    assert loop_thread["sync"] is not threading.main_thread()  # blocking work off the loop


def test_a_failing_hook_is_reported_and_the_others_still_run():
    calls = []

    def broken():
        raise RuntimeError("disk full")

    lifespan.on_shutdown(lambda: calls.append("first"))
    lifespan.on_shutdown(broken)
    sent = run_lifespan(lifespan.with_lifespan(inner_app))
    assert calls == ["first"]
    assert sent[-1]["type"] == "lifespan.shutdown.failed"
    assert "broken: disk full" in sent[-1]["message"]


def test_other_scopes_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 204, "headers": []})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(lifespan.with_lifespan(app)({"type": "http"}, receive, send))
    assert seen == ["http"]
    assert sent == [{"type": "http.response.start", "status": 204, "headers": []}]
