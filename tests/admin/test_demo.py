"""``manage.py demo`` sends real traffic before it serves: a new user's dashboard has charts."""

import re

import httpx
import pytest

from tests.support.demo import start_demo
from tests.support.servers import free_port, wait_for_port


def log_in(client: httpx.Client, password: str) -> None:
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/admin/login/?next=/admin/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302, response.text


@pytest.mark.sqlite
def test_the_demo_serves_a_dashboard_with_charts_from_its_first_page(tmp_path):
    port = free_port()
    process = start_demo(tmp_path, port, DJANGO_PERF_DEMO_PASSWORD="demo-pw")
    try:
        wait_for_port(port, timeout=90, process=process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            log_in(client, "demo-pw")
            data = client.get("/admin/django_perf/dashboard/data/?window=5m").json()
            page = client.get("/admin/django_perf/dashboard/").text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    sent = re.search(r"Sent (\d+) requests through the site \((.*?)\)", output)
    assert sent, output
    assert int(sent.group(1)) > 50
    assert "1 x 500" in sent.group(2)
    assert data["totals"]["count"] >= int(sent.group(1))  # the login requests count too
    assert data["totals"]["status_classes"]["5xx"] == 1
    assert len(data["routes"]) >= 8
    assert data["slow"][0]["path"] == "/monitoring/slow/650/"
    assert data["hosts"]  # the warm-up took a system sample
    assert data["hosts"][0]["cpu_percent"] is not None  # measured over the warm-up
    assert data["cache"]["memory"]["hits"] > 0
    assert "perf-chart-empty" not in page  # every chart drew, memory included
    assert page.count('class="perf-svg"') == 5
    assert output.index("Sent ") < output.index("Serving on")
