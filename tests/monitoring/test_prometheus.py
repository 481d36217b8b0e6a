"""The Prometheus endpoint: the shared store's numbers, behind a token or a staff login."""

import http.client
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from django_perf.monitoring import flush
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import Sample, get_store
from tests.support.http import serve

pytestmark = pytest.mark.django_db
URL = "/perf/metrics"


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def user(*, staff, permission):
    account = User.objects.create_user("ops", password="pw", is_staff=staff)
    if permission:
        account.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    client = Client()
    client.force_login(account)
    return client


def test_anonymous_scrapes_are_refused_with_a_bearer_challenge():
    response = Client().get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="django-perf metrics"'
    assert b"django_perf.view_metrics" in response.content


@pytest.mark.parametrize(("staff", "permission"), [(True, False), (False, True)])
def test_staff_and_the_permission_are_both_needed(staff, permission):
    assert user(staff=staff, permission=permission).get(URL).status_code == 403


def test_staff_with_the_permission_can_read():
    response = user(staff=True, permission=True).get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_the_token_opens_the_endpoint_and_a_wrong_one_does_not(perf):
    perf(MONITORING_METRICS_TOKEN="s3cret-token-for-tests")
    good = Client(headers={"Authorization": "Bearer s3cret-token-for-tests"})
    assert good.get(URL).status_code == 200
    assert Client(headers={"Authorization": "Bearer nope"}).get(URL).status_code == 401
    assert good.post(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("token", ["s3cret-token-ascii-0123", "s3cret-tökén-0123", "s3cret-voilà"])
def test_the_token_works_over_real_http_ascii_or_not(server_env, token):
    """What curl and Prometheus send, the token's UTF-8 bytes, through uvicorn. ('à' ends in
    0xA0, which str.strip() takes for a space; Django's runserver strips it before us.)"""
    with serve("uvicorn", {**server_env, "METRICS_TOKEN": token}) as server:

        def scrape(authorization: bytes) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                connection.putrequest("GET", URL)
                connection.putheader("Authorization", authorization)
                connection.endheaders()
                return connection.getresponse().status
            finally:
                connection.close()

        assert scrape(b"Bearer " + token.encode()) == 200
        assert scrape(b"Bearer " + token.encode() + b" ") == 200
        assert scrape(b"Bearer " + token.encode()[:-1]) == 401
        # The same characters in another encoding are other bytes: refused.
        assert scrape(b"Bearer " + token.encode("latin-1")) == (200 if token.isascii() else 401)


def test_a_scrape_shows_the_stores_totals(recorder, perf, monitoring_urls):
    perf(MONITORING_METRICS_TOKEN="t0ken-t0ken-t0ken")
    client = Client(raise_request_exception=False)
    for _ in range(5):
        client.get("/monitoring/fast/")
    client.get("/monitoring/fail/")
    client.get("/test/cache/")
    flush()
    store = get_store()
    store.write({Key(0, "/elsewhere/", "GET", "2xx"): _series(7)})  # another worker's flush
    store.write({}, [Sample("web-9", 4321, time.time(), _sample_data())])
    text = Client(headers={"Authorization": "Bearer t0ken-t0ken-t0ken"}).get(URL).content.decode()
    found = samples(text)
    fast = (("method", "GET"), ("route", "/monitoring/fast/"), ("status", "2xx"))
    assert found[("django_perf_http_requests_total", fast)] == 5
    assert found[("django_perf_http_request_duration_seconds_count", fast)] == 5
    inf = tuple(sorted((*fast, ("le", "+Inf"))))
    assert found[("django_perf_http_request_duration_seconds_bucket", inf)] == 5
    other = (("method", "GET"), ("route", "/elsewhere/"), ("status", "2xx"))
    assert found[("django_perf_http_requests_total", other)] == 7
    fail = (("method", "GET"), ("route", "/monitoring/fail/"), ("status", "5xx"))
    assert found[("django_perf_http_requests_total", fail)] == 1
    assert found[("django_perf_cache_events_total", (("event", "hit"), ("tier", "memory")))] == 3
    assert found[("django_perf_host_memory_percent", (("host", "web-9"),))] == 41.5
    assert (
        found[("django_perf_process_resident_memory_bytes", (("host", "web-9"), ("pid", "4321")))]
        == 1e8
    )
    assert (
        "django_perf_http_request_duration_5m_seconds",
        (("quantile", "0.99"), ("route", "/monitoring/fast/")),
    ) in found


def _scrape(token="t0ken-t0ken-t0ken"):
    response = Client(headers={"Authorization": f"Bearer {token}"}).get(URL)
    assert response.status_code == 200
    return response.content.decode()


def test_each_label_set_is_exposed_once_however_the_store_splits_it(perf, monitoring_urls):
    """A route's queries under two status classes and two minutes are one {route, alias}."""
    perf(MONITORING_METRICS_TOKEN="t0ken-t0ken-t0ken")
    minute = int(time.time()) // 60 * 60
    rows = {}
    for start, status, n in ((minute - 60, "2xx", 3), (minute, "2xx", 2), (minute, "4xx", 1)):
        series = _series(n)
        series.slow = 1
        series.extra.update({"queries.default": 2.0 * n, "query_us.default": 10.0 * n})
        rows[Key(start, "/a/", "GET", status)] = series
    get_store().write(rows)
    text = _scrape()
    lines = [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) == len(set(lines)), "a label set is exposed twice"
    found = samples(text)
    route_alias = (("alias", "default"), ("route", "/a/"))
    assert found[("django_perf_db_queries_total", route_alias)] == 12
    assert found[("django_perf_db_query_seconds_total", route_alias)] == pytest.approx(60e-6)
    assert found[("django_perf_http_slow_requests_total", (("route", "/a/"),))] == 3


def test_counters_are_scaled_to_the_traffic_a_sample_stands_for(perf, monitoring_urls):
    """At a 10% sample each recorded request counts ten times, as in perf_stats."""
    perf(MONITORING_METRICS_TOKEN="t0ken-t0ken-t0ken")
    series = _series(10)
    series.weight = 100.0
    series.slow, series.n_plus_one = 3, 2
    series.request_bytes, series.response_bytes = 50, 700
    series.extra.update({"queries.default": 40.0, "cache.memory.hit": 5.0})
    get_store().write({Key(int(time.time()) // 60 * 60, "/s/", "GET", "2xx"): series})
    found = samples(_scrape())
    route = (("route", "/s/"),)
    labels = (("method", "GET"), ("route", "/s/"), ("status", "2xx"))
    assert found[("django_perf_http_requests_total", labels)] == 100
    assert found[("django_perf_http_slow_requests_total", route)] == 30
    assert found[("django_perf_http_n_plus_one_requests_total", route)] == 20
    assert found[("django_perf_http_request_body_bytes_total", labels)] == 500
    assert found[("django_perf_http_response_body_bytes_total", labels)] == 7000
    assert found[("django_perf_db_queries_total", (("alias", "default"), *route))] == 400
    assert found[("django_perf_cache_events_total", (("event", "hit"), ("tier", "memory")))] == 50
    # The latency histogram describes the recorded requests themselves.
    assert found[("django_perf_http_request_duration_seconds_count", labels)] == 10


def test_cache_seconds_are_not_exposed_as_cache_events(perf, monitoring_urls):
    """A timing cache adds ``cache.<tier>.seconds`` to a request's tally: time, not an event."""
    perf(MONITORING_METRICS_TOKEN="t0ken-t0ken-t0ken")
    series = _series(1)
    series.extra.update({"cache.memory.hit": 3.0, "cache.memory.seconds": 0.25})
    get_store().write({Key(int(time.time()) // 60 * 60, "/c/", "GET", "2xx"): series})
    events = {
        labels: value
        for (name, labels), value in samples(_scrape()).items()
        if name == "django_perf_cache_events_total"
    }
    assert events == {(("event", "hit"), ("tier", "memory")): 3}


def _collect(store):
    """One scrape of ``store``'s counters: {(name, labels): value}."""
    from prometheus_client import CollectorRegistry, generate_latest

    from django_perf.monitoring.prometheus import StoreCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, now=NOW_FOR_COUNTERS))
    text = generate_latest(registry).decode()
    counters = {
        family.name for family in text_string_to_metric_families(text) if family.type == "counter"
    }
    return {
        (name, labels): value
        for (name, labels), value in samples(text).items()
        if name.removesuffix("_total") in counters
    }


def _sampled(n, rate, body=0):
    """``n`` requests recorded at sample ``rate``, weights summed in floats as a fold does."""
    series = _series(n)
    series.weight = 0.0
    for _ in range(n):
        series.weight += 1 / rate
    series.request_bytes = body
    series.extra.update({"queries.default": 2.0 * n, "query_us.default": 30.0 * n})
    return series


def _assert_never_down(before, after):
    down = {k: (v, after[k]) for k, v in before.items() if after.get(k, v) < v}
    assert not down, f"counters went down between two scrapes: {down}"


NOW_FOR_COUNTERS = 1_800_000_000


@pytest.mark.parametrize("store_name", ["database", pytest.param("redis", marks=pytest.mark.redis)])
def test_counters_never_go_down_at_a_constant_sample_rate(store_name, request):
    """Scaled counters (bytes, queries, ...) are sums times weight / requests: that ratio
    must not wobble by a float rounding from one flush to the next."""
    if store_name == "redis":
        from django_perf.monitoring.store.redis import RedisStore

        store = RedisStore(request.getfixturevalue("redis_url"), prefix="counters")
    else:
        store = get_store()
    key = Key(NOW_FOR_COUNTERS - 60, "/a/", "GET", "2xx")
    other = Key(NOW_FOR_COUNTERS - 60, "/a/", "GET", "4xx")
    store.write({key: _sampled(1, 0.3, body=12345), other: _sampled(1, 0.3)})
    previous = _collect(store)
    for n in range(1, 60):
        store.write({key: _sampled(n % 4 + 1, 0.3), other: _sampled(1, 0.3)})
        current = _collect(store)
        _assert_never_down(previous, current)
        previous = current
    labels = (("method", "GET"), ("route", "/a/"), ("status", "2xx"))
    assert previous[("django_perf_http_request_body_bytes_total", labels)] == pytest.approx(
        12345 / 0.3, rel=1e-4
    )


@pytest.mark.django_db(transaction=True)
def test_requests_total_never_goes_down_across_a_maintenance_merge():
    """The database store adds raw rows to the totals in one order when read and in another
    when maintenance merges them: the weights must add up the same either way."""
    from django_perf.monitoring.store.database import DatabaseStore

    store = DatabaseStore(lease_seconds=0)
    key = Key(NOW_FOR_COUNTERS - 60, "/a/", "GET", "2xx")
    previous = _collect(store)
    for n in range(1, 30):
        for k in (n, 2 * n + 1, 3):
            store.write({key: _sampled(k, 0.3)})
        for step in ("written", "merged"):
            current = _collect(store)
            _assert_never_down(previous, current)
            previous = current
            if step == "written":
                store.maintain(force=True)


def _series(n):
    series = Series()
    series.buckets[200] = n
    series.requests = n
    series.weight = float(n)
    series.duration_us = 5000 * n
    return series


def _sample_data():
    return {
        "system": {"memory_percent": 41.5, "load": [0.5, 0.4, 0.3]},
        "process": {"rss": 100_000_000},
    }
