"""The Channels consumer under uvicorn and daphne: same bytes, and it stops when clients leave."""

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.streaming.expected import FORMATS, PLAIN_FIELDS
from tests.streaming.test_live_failures import (
    CHUNK,
    hang_up_after_the_first_chunk,
    middle_event_id,
    read_until_the_connection_breaks,
    rss,
    stopped_streams,
    wait_for_no_backends,
)
from tests.streaming.test_live_formats import expected_body

pytestmark = pytest.mark.django_db

POSTGRES = os.environ.get("DJANGO_PERF_TEST_DB", "postgres") == "postgres"


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
def test_the_consumer_streams_the_same_bytes_as_the_view(kind, format, exports, request):
    server = request.getfixturevalue(kind)
    params = {"fields": ",".join(PLAIN_FIELDS), "chunk_size": "500"}
    with exports.client(server) as client:
        python = client.get(f"/channels/events.{format}", params={**params, "path": "python"})
        auto = client.get(f"/channels/events.{format}", params=params)
    assert python.status_code == auto.status_code == 200
    assert python.headers["x-stream-path"] == "python"
    assert auto.headers["x-stream-path"] == ("copy" if POSTGRES else "python")
    assert python.content == auto.content == expected_body(format)


def test_the_consumer_refuses_anonymous_clients(exports, uvicorn):
    response = httpx.get(uvicorn.url + "/channels/events.json", timeout=10)
    assert response.status_code == 403


def test_the_consumer_sends_a_download_name_and_empty_documents(exports, uvicorn):
    params = {"empty": "1", "filename": "events.csv", "fields": "id,kind"}
    with exports.client(uvicorn) as client:
        response = client.get("/channels/events.csv", params=params)
        enveloped = client.get("/channels/events.json", params={"empty": "1", "envelope": "e"})
    assert response.headers["content-disposition"] == 'attachment; filename="events.csv"'
    assert response.content == b"id,kind\n"
    assert enveloped.content == b'{"e":[]}'


def test_an_error_in_the_consumer_breaks_the_connection(exports, uvicorn):
    params = {"fail_at": str(middle_event_id()), "fail": "python", "chunk_size": str(CHUNK)}
    with exports.client(uvicorn) as client:
        _response, received, error = read_until_the_connection_breaks(
            client, "/channels/events.json", {**params, "fields": "id,kind"}
        )
    assert isinstance(error, httpx.RemoteProtocolError)
    assert received.startswith(b'[{"id":')
    assert not received.endswith(b"]")
    if POSTGRES:
        assert wait_for_no_backends() == []


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
def test_the_consumer_stops_when_clients_hang_up(kind, exports, request):
    """Channels' own AsyncHttpConsumer would read every row for nobody (channels#1249)."""
    server = request.getfixturevalue(kind)
    cookie = exports.cookies["sessionid"]
    base = f"/channels/events.ndjson?fields=id,kind,occurred_at,score,note&chunk_size={CHUNK}"
    paths = [f"{base}&slow=0.001&path=python"]
    if POSTGRES:
        paths.append(f"{base}&slow=0.001")
    log_before = len(stopped_streams(server.log()))

    def round_of(clients):
        urls = [paths[i % len(paths)] for i in range(clients)]
        with ThreadPoolExecutor(10) as pool:
            return set(
                pool.map(lambda url: hang_up_after_the_first_chunk(server.port, url, cookie), urls)
            )

    for _warm_up in range(2):  # imports, caches, connections, the monitoring's first flushes
        assert round_of(10) == {200}
    time.sleep(1)
    if POSTGRES:
        assert wait_for_no_backends() == []
    before = rss(server)
    assert round_of(50) == {200}
    if POSTGRES:
        assert wait_for_no_backends() == []
    deadline = time.monotonic() + 15
    while len(stopped_streams(server.log())) < log_before + 70 and time.monotonic() < deadline:
        time.sleep(0.1)
    stops = stopped_streams(server.log())[log_before:]
    assert len(stops) == 70
    assert max(stops) < 150 * exports.events / 10
    assert rss(server) - before < 8 * 2**20
    assert not re.search(r"took too long to shut down", server.log())


def test_a_consumer_without_a_queryset_says_what_is_missing():
    from django_perf.streaming import QuerysetStreamConsumer

    class Incomplete(QuerysetStreamConsumer):
        pass

    with pytest.raises(NotImplementedError, match="Incomplete needs a queryset attribute"):
        Incomplete().get_queryset()
