"""Response bodies in process: iterator kinds, framing, closing, cancellation, bad arguments."""

import asyncio
import datetime
import json
import logging
import threading
import warnings

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import FieldError
from django.db.models import BinaryField, Value
from django.test import AsyncRequestFactory, RequestFactory

from django_perf.streaming import stream_csv, stream_json, stream_ndjson, stream_queryset
from django_perf.streaming.bodies import ThreadedBody, framed, guarded, is_async_server
from django_perf.streaming.formats import framing
from testproject.blog.models import Author, Event

# Closing a response sends request_finished, which closes database connections.
pytestmark = pytest.mark.django_db

WSGI = RequestFactory().get("/")
ASGI = AsyncRequestFactory().get("/")


class Source:
    """A generator of rows that records how far it got and whether it was closed, and where."""

    def __init__(self, count=100, fail_at=None, gate=None):
        self.count, self.fail_at, self.gate = count, fail_at, gate
        self.produced = 0
        self.threads = set()
        self.closed_in = None

    def __iter__(self):
        try:
            for i in range(self.count):
                self.threads.add(threading.get_ident())
                if i == self.fail_at:
                    raise RuntimeError(f"broken at {i}")
                if self.gate is not None and i == 10:
                    self.gate.wait(10)
                self.produced += 1
                yield {"i": i}
        finally:
            self.closed_in = threading.get_ident()


def consume_async(response):
    async def consume():
        return [chunk async for chunk in response]

    return async_to_sync(consume)()


def test_framing_gives_complete_documents_and_no_closing_after_an_error():
    assert list(framed(iter([b"1", b"2"]), framing("json"))) == [b"[1", b",2", b"]"]
    assert list(framed(iter([]), framing("json", envelope="x"))) == [b'{"x":[]}']
    assert list(framed(iter([]), framing("ndjson"))) == []

    def broken():
        yield b"1"
        raise RuntimeError("boom")

    body = framed(broken(), framing("json"))
    assert next(body) == b"[1"
    with pytest.raises(RuntimeError):
        next(body)


def test_guarded_logs_an_error_with_the_bytes_sent(caplog):
    source = Source(fail_at=50)
    response = stream_json(source, request=WSGI, chunk_size=20)
    chunks = []

    def read_all():
        for chunk in response:
            chunks.append(chunk)

    with caplog.at_level(logging.ERROR, "django_perf.streaming"), pytest.raises(RuntimeError):
        read_all()
    body = b"".join(chunks)
    assert body.startswith(b'[{"i":0}')
    assert not body.endswith(b"]")
    assert f"stream_json() failed after {len(body)} bytes" in caplog.text


def test_closing_a_sync_body_early_closes_the_source(caplog):
    source = Source(count=10_000)
    response = stream_json(source, request=WSGI, chunk_size=10)
    with caplog.at_level(logging.DEBUG, "django_perf.streaming"):
        first = next(iter(response))
        response.close()  # what the WSGI server does when the client goes away
    assert first.startswith(b'[{"i":0}')
    assert source.closed_in is not None
    assert source.produced < 100
    assert "stopped after" in caplog.text
    assert "client went away" in caplog.text


@pytest.mark.parametrize(
    ("request_", "is_async"),
    [(WSGI, False), (ASGI, True)],
    ids=["wsgi", "asgi"],
)
def test_the_body_is_the_iterator_kind_the_server_needs(request_, is_async):
    items = [{"n": n} for n in range(50)]
    response = stream_json(iter(items), request=request_, chunk_size=7)
    assert response.is_async is is_async
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django's buffering fallback only warns
        chunks = consume_async(response) if is_async else list(response)
    assert len(chunks) > 5  # chunk by chunk, not one buffered blob
    assert json.loads(b"".join(chunks)) == items


def test_an_async_source_streams_lazily_under_wsgi():
    progress = []

    async def numbers():
        for n in range(100):
            progress.append(n)
            await asyncio.sleep(0)
            yield {"n": n}

    response = stream_ndjson(numbers(), request=WSGI, chunk_size=10)
    assert response.is_async is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iterator = iter(response)
        first = next(iterator)
        assert first.count(b"\n") == 10
        assert len(progress) <= 11  # not read to the end first
        rest = list(iterator)
    assert b"".join([first, *rest]).count(b"\n") == 100


def test_a_sync_source_under_asgi_is_read_off_the_event_loop():
    source = Source(count=30)
    response = stream_json(iter(source), request=ASGI, chunk_size=10)

    async def consume():
        loop_thread = threading.get_ident()
        body = b"".join([chunk async for chunk in response])
        return loop_thread, body

    loop_thread, body = async_to_sync(consume)()
    assert len(json.loads(body)) == 30
    assert loop_thread not in source.threads


def test_cancelling_an_async_body_closes_the_source_in_its_own_thread():
    """Django cancels the response task when the client disconnects (Django >= 5.0)."""
    gate = threading.Event()
    source = Source(count=10_000, gate=gate)
    response = stream_json(iter(source), request=ASGI, chunk_size=5)

    async def disconnect_after_the_first_chunk():
        received = []

        async def send_all():
            async for chunk in response:
                received.append(chunk)

        task = asyncio.create_task(send_all())
        while len(received) < 2:
            await asyncio.sleep(0.01)
        task.cancel()  # now waiting on the step blocked at the gate
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return received

    received = async_to_sync(disconnect_after_the_first_chunk)()
    assert received[0].startswith(b'[{"i":0}')
    assert source.closed_in in source.threads  # closed in the thread that read it
    assert source.produced <= 15
    response.close()  # Django's own cleanup afterwards is harmless


@pytest.mark.parametrize("request_", [WSGI, ASGI], ids=["wsgi", "asgi"])
def test_a_middleware_can_count_bytes_as_they_pass(request_):
    """The monitoring middleware wraps streaming_content with a generator of the same kind."""
    source = Source(count=500)
    response = stream_json(iter(source), request=request_, chunk_size=50)
    counted, seen_progress = [], []
    original = response.streaming_content

    def count(chunk):
        counted.append(len(chunk))
        seen_progress.append(source.produced)

    if response.is_async:

        async def counting():
            async for chunk in original:
                count(chunk)
                yield chunk

        response.streaming_content = counting()
        body = b"".join(consume_async(response))
    else:

        def counting():
            for chunk in original:
                count(chunk)
                yield chunk

        response.streaming_content = counting()
        body = b"".join(response)
    assert sum(counted) == len(body)
    assert json.loads(body) == [{"i": i} for i in range(500)]
    assert seen_progress[0] < 500  # the first chunk passed before the source was read


def test_the_server_kind_without_a_request():
    assert is_async_server() is False
    assert async_to_sync(sync_to_async(is_async_server))() is True  # a sync view under ASGI

    async def in_an_async_view():
        return is_async_server()

    assert async_to_sync(in_an_async_view)() is True


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: stream_json("text"), TypeError, "needs an iterable of rows, not a single str"),
        (lambda: stream_ndjson(42), TypeError, "not int"),
        (lambda: stream_json(Event.objects.all()), TypeError, "queryset of Event instances"),
        (lambda: stream_ndjson(Event.objects.all()), TypeError, "use stream_queryset"),
        (lambda: stream_csv(Event.objects.all(), header=["id"]), TypeError, r"\.values\("),
        (lambda: stream_queryset(WSGI, [1, 2]), TypeError, "needs a QuerySet, got list"),
        (lambda: stream_queryset(WSGI, Event.objects.all(), fields="id"), TypeError, "list of"),
        (lambda: stream_queryset(WSGI, Event.objects.all(), fields=["nope"]), FieldError, "nope"),
        (lambda: stream_queryset(WSGI, Event.objects.all(), format="xml"), ValueError, "format"),
        (
            lambda: stream_queryset(
                WSGI, Event.objects.annotate(blob=Value(b"x", output_field=BinaryField()))
            ),
            ValueError,
            "'blob' is a BinaryField",
        ),
    ],
)
def test_bad_arguments_fail_before_any_byte_is_sent(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_csv_rows_need_a_header_unless_they_are_dicts():
    assert b"".join(stream_csv([{"a": 1, "b": None}], request=WSGI)) == b"a,b\n1,\n"
    assert b"".join(stream_csv([(1, "x")], header=["n", "s"], request=WSGI)) == b"n,s\n1,x\n"
    with pytest.raises(TypeError, match="sequences with header"):
        b"".join(stream_csv([(1, 2)], request=WSGI))
    with pytest.raises(ValueError, match="row has 1 values but the header has 2"):
        b"".join(stream_csv([(1,)], header=["a", "b"], request=WSGI))
    with pytest.raises(TypeError, match="cannot hold bytes"):
        b"".join(stream_csv([{"a": b"raw"}], request=WSGI))


def test_a_closed_threaded_body_ends_and_can_be_closed_again():
    def chunks():
        yield b"x"

    body = ThreadedBody(guarded(chunks(), "test"))
    body.close()
    body.close()
    with pytest.raises(StopAsyncIteration):
        async_to_sync(body.__anext__)()


@pytest.mark.django_db
def test_values_querysets_are_rows_for_the_plain_helpers():
    joined = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    ids = [
        Author.objects.create(name=f"a{i}", email=f"a{i}@example.com", joined_at=joined).pk
        for i in range(3)
    ]
    rows = Author.objects.filter(id__in=ids).order_by("id")
    assert json.loads(b"".join(stream_json(rows.values("id"), request=WSGI))) == [
        {"id": i} for i in ids
    ]
    csv_body = b"".join(stream_csv(rows.values_list("id"), header=["id"], request=WSGI))
    assert csv_body.decode().split() == ["id", *map(str, ids)]
