"""The dashboard in a real browser: headless Chromium against gunicorn, after real traffic.

gunicorn (two workers) serves the test project on the test database; real
HTTP traffic goes through it first and its workers flush the metrics. Then
Chromium (Debian's ``chromium`` driven by ``chromium-driver`` through
Selenium) logs in to the admin, opens the Performance page, checks that the
charts drew with data, refreshes it through the JSON endpoint, switches the
window, drills into a route, runs an invalidation through its confirmation
step, and saves screenshots (``DJANGO_PERF_SCREENSHOTS``, default: a
``django-perf-screenshots`` folder in the temporary directory). Smaller cases
(a stalled refresh, long routes, the form shown again with errors) run on
Django's live server, with no traffic.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.test import Client

from django_perf.cache.models import CacheEntry
from django_perf.dashboard import views
from django_perf.monitoring import stats
from testproject.blog.seed import SeedSize, seed
from testproject.blog.traffic import demo_paths, send
from tests.support.http import serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
QUERIES_ROUTE = "/monitoring/queries/<int:n>/"
DASHBOARD = "/admin/django_perf/dashboard/"


def screenshots() -> Path:
    folder = Path(
        os.environ.get("DJANGO_PERF_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "django-perf-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing)"
        if os.environ.get("DJANGO_PERF_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        # Where the browser was last: the first thing to look at when the test fails.
        driver.save_screenshot(str(screenshots() / "last.png"))
        (screenshots() / "last.html").write_text(driver.page_source)
        driver.quit()


@pytest.fixture
def site(server_env) -> Iterator:
    """gunicorn with two workers that flush every second, after real traffic went through it."""
    seed(SeedSize(authors=4, articles=30, comments=60, events=0))
    # Hashed with the server's default hasher (the tests' own settings use a faster one).
    hasher = PBKDF2PasswordHasher()
    password = hasher.encode("browser-pw", hasher.salt())
    User.objects.create_superuser("admin", "admin@example.com", password=None)
    User.objects.filter(username="admin").update(password=password)
    env = {
        **server_env,
        "METRICS_FLUSH_INTERVAL": "0.5",
        "METRICS_SYSTEM_INTERVAL": "1",
        "DJANGO_SERVE_STATIC": "1",
    }
    with serve("gunicorn", env, workers=2) as server:
        paths = demo_paths(rounds=2)
        statuses = send(server.url, paths)
        assert statuses[200] >= len(paths) - 5
        assert statuses[500] == 1
        send(server.url, ["/cache/"])  # puts demo:counts in the cache (invalidated below)
        deadline = time.monotonic() + 30
        while stats.overall(stats.read(300), 300).count < len(paths) + 1:
            assert time.monotonic() < deadline, "the workers did not flush their metrics"
            time.sleep(0.25)
        while not stats.system_stats():
            assert time.monotonic() < deadline, "the workers took no system sample"
            time.sleep(0.25)
        yield server


def wait_for(driver, css: str, timeout: float = 15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def chart_points(driver, chart_id: str) -> int:
    from selenium.webdriver.common.by import By

    svg = driver.find_element(By.CSS_SELECTOR, f"#{chart_id} svg.perf-svg")
    return int(svg.get_attribute("data-points"))


def test_the_dashboard_in_chromium(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = screenshots()
    driver = browser

    # Log in through the admin's own form.
    driver.get(site.url + "/admin/django_perf/dashboard/")
    assert "/admin/login/" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys("browser-pw")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, ".perf #perf-cards")
    assert driver.current_url == site.url + "/admin/django_perf/dashboard/"
    assert driver.find_element(By.CSS_SELECTOR, ".breadcrumbs").text == (
        "Home \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} Performance "
        "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} Dashboard"
    )
    # The admin's stylesheet and ours applied: the cards are laid out in a grid.
    cards = driver.find_element(By.CSS_SELECTOR, ".perf-cards")
    assert cards.value_of_css_property("display") == "grid"

    # The charts drew with data; the memory chart from the workers' system samples.
    for chart in ("chart-requests", "chart-latency", "chart-errors", "chart-cache"):
        assert chart_points(driver, chart) > 0, chart
    assert chart_points(driver, "chart-memory") > 0
    line = driver.find_element(By.CSS_SELECTOR, "#chart-requests path.perf-line")
    assert line.size["width"] > 100  # drawn across the chart, not collapsed
    labels = [c.text for c in driver.find_elements(By.CSS_SELECTOR, ".perf-card-label")]
    assert "CACHE HIT RATIO: MEMORY" in labels
    assert any(label.startswith("DATABASE POOL") for label in labels)
    driver.save_screenshot(str(shots / "dashboard-1h.png"))

    # Auto-refresh: ticking the box refreshes at once through the JSON endpoint.
    root = driver.find_element(By.CSS_SELECTOR, ".perf[data-poll-url]")
    toggle = driver.find_element(By.ID, "perf-auto")
    toggle.click()
    toggle.click()
    WebDriverWait(driver, 15).until(lambda d: root.get_attribute("data-refreshed"))
    status = driver.find_element(By.ID, "perf-status").text
    assert status.startswith("Read from the database")
    assert chart_points(driver, "chart-requests") > 0  # the swapped-in charts

    # The dark theme (the admin's toggle keeps it in localStorage).
    driver.execute_script("localStorage.setItem('theme', 'dark')")
    driver.refresh()
    wait_for(driver, ".perf #perf-cards")
    background = driver.find_element(By.CSS_SELECTOR, ".perf-card").value_of_css_property(
        "background-color"
    )
    assert background == "rgba(18, 18, 18, 1)"  # the admin's dark --body-bg
    driver.save_screenshot(str(shots / "dashboard-dark.png"))
    driver.execute_script("localStorage.setItem('theme', 'light')")

    # Switch the window: 5 minutes (steps of a minute), then 24 hours (steps of an hour).
    driver.find_element(By.CSS_SELECTOR, 'a.perf-window[data-window="5m"]').click()
    WebDriverWait(driver, 15).until(lambda d: "window=5m" in d.current_url)
    assert driver.find_element(By.CSS_SELECTOR, "a.perf-window.selected").text == "5m"
    assert chart_points(driver, "chart-requests") > 0
    driver.save_screenshot(str(shots / "dashboard-5m.png"))
    driver.find_element(By.CSS_SELECTOR, 'a.perf-window[data-window="24h"]').click()
    WebDriverWait(driver, 15).until(lambda d: "window=24h" in d.current_url)
    selected = driver.find_element(By.CSS_SELECTOR, "a.perf-window.selected")
    assert selected.text == "24h"
    assert chart_points(driver, "chart-requests") > 0
    driver.save_screenshot(str(shots / "dashboard-24h.png"))

    # Drill into a route from the table.
    link = driver.find_element(By.LINK_TEXT, QUERIES_ROUTE)
    link.click()
    wait_for(driver, "#route-chart-queries")
    assert driver.title.startswith(f"Route {QUERIES_ROUTE} |")
    bars = driver.find_elements(By.CSS_SELECTOR, "#route-chart-queries rect.perf-bar")
    assert [b.find_element(By.TAG_NAME, "title").get_attribute("textContent") for b in bars] == [
        "11-20: 4"
    ]
    assert driver.find_elements(By.CSS_SELECTOR, "#route-chart-histogram rect.perf-bar")
    codes = driver.find_element(By.ID, "perf-status-table").text
    assert "200" in codes
    driver.save_screenshot(str(shots / "route.png"))

    # Invalidate a key, through the confirmation step.
    assert CacheEntry.objects.filter(cache_key__contains="demo:counts").exists()
    driver.get(site.url + "/admin/django_perf/dashboard/")
    form = wait_for(driver, "#perf-invalidate")
    form.find_element(By.CSS_SELECTOR, "input[name=kind][value=key]").click()
    form.find_element(By.NAME, "values").send_keys("demo:counts")
    form.find_element(By.ID, "perf-invalidate-submit").click()
    confirm = wait_for(driver, "#perf-confirm-submit")
    dry_run = driver.find_element(By.ID, "perf-per-tier").text
    assert "database 1" in dry_run
    assert CacheEntry.objects.filter(cache_key__contains="demo:counts").exists()
    driver.save_screenshot(str(shots / "invalidate-confirm.png"))
    confirm.click()
    wait_for(driver, ".messagelist .success")
    report = driver.find_element(By.ID, "perf-per-tier").text
    assert "database 1" in report
    assert not CacheEntry.objects.filter(cache_key__contains="demo:counts").exists()
    driver.save_screenshot(str(shots / "invalidate-done.png"))

    names = ("dashboard-1h", "dashboard-dark", "dashboard-5m", "dashboard-24h", "route")
    for name in (*names, "invalidate-confirm", "invalidate-done"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def signed_in(live_server, transactional_db, browser) -> str:
    """Django's live server, the browser signed in to it as a superuser: the server's URL."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    cookie = django_settings.SESSION_COOKIE_NAME
    browser.get(live_server.url + "/static/django_perf/dashboard.css")  # a page to set it on
    browser.add_cookie({"name": cookie, "value": client.cookies[cookie].value, "path": "/"})
    return live_server.url


def status_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "perf-status").text


def wait_for_status(driver, prefix: str, timeout: float = 15) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: status_text(d).startswith(prefix))
    return status_text(driver)


def test_a_refresh_with_no_answer_is_given_up_and_the_next_one_tries_again(
    signed_in, browser, monkeypatch
):
    monkeypatch.setattr(views, "REFRESH_SECONDS", 2)  # the page's shortest interval
    driver = browser
    driver.get(signed_in + DASHBOARD)
    root = wait_for(driver, ".perf[data-poll-url]")
    assert root.get_attribute("data-refresh") == "2"
    wait_for_status(driver, "Read from the ")
    # The browser holds every request to the endpoint unanswered: a stalled server.
    driver.execute_cdp_cmd("Fetch.enable", {"patterns": [{"urlPattern": "*/dashboard/data/*"}]})
    try:
        assert wait_for_status(driver, "Refresh failed") == "Refresh failed: no answer in 1 s"
    finally:
        driver.execute_cdp_cmd("Fetch.disable", {})
    wait_for_status(driver, "Read from the ")
    assert root.get_attribute("data-refreshed")


def shown(driver, css: str) -> bool:
    return driver.execute_script(
        "var e = document.querySelector(arguments[0]); return !!(e && e.offsetParent);", css
    )


def test_the_invalidation_form_shown_again_with_errors_shows_only_its_kinds_fields(
    signed_in, browser
):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(signed_in + DASHBOARD)
    form = wait_for(driver, "#perf-invalidate")
    form.find_element(By.CSS_SELECTOR, "input[name=kind][value=model]").click()
    form.find_element(By.ID, "perf-invalidate-submit").click()  # no model given
    wait_for(driver, ".errornote")
    assert shown(driver, ".perf-form .field-model")
    assert not shown(driver, ".perf-form .field-values")
    driver.find_element(By.CSS_SELECTOR, "input[name=kind][value=key]").click()
    assert shown(driver, ".perf-form .field-values")
    assert not shown(driver, ".perf-form .field-model")


def test_a_long_route_wraps_in_its_pages_title_and_breadcrumbs(signed_in, browser):
    from selenium.webdriver.common.by import By

    route = "/long/" + "x" * 300 + "/<slug:s>/"
    driver = browser
    driver.get(f"{signed_in}{DASHBOARD}route/?route={route}")
    wait_for(driver, "#perf-cards")
    assert driver.find_element(By.CSS_SELECTOR, "#content h1").text == f"Route {route}"
    width, visible = driver.execute_script(
        "var page = document.documentElement; return [page.scrollWidth, page.clientWidth];"
    )
    assert width <= visible, f"the route page is {width}px wide in a {visible}px window"


def clock(status: str) -> int:
    """Seconds since midnight of the H:i:s time that ends a status line."""
    assert status.startswith("Read from the "), status
    match = re.fullmatch(r".* at (\d\d):(\d\d):(\d\d)", status)
    assert match, f"not an H:i:s time: {status!r}"
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


def test_the_status_line_keeps_the_sites_time_zone_and_format_after_a_refresh(
    signed_in, browser, monkeypatch, settings
):
    from selenium.webdriver.support.ui import WebDriverWait

    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: far from the browser's own zone
    monkeypatch.setattr(views, "REFRESH_SECONDS", 2)
    driver = browser
    driver.get(signed_in + DASHBOARD)
    root = wait_for(driver, ".perf[data-poll-url]")
    first = clock(status_text(driver))  # as the server wrote it
    WebDriverWait(driver, 15).until(lambda d: root.get_attribute("data-refreshed"))
    refreshed = clock(status_text(driver))
    assert 0 <= (refreshed - first) % 86400 < 60
