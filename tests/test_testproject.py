"""The test project: DATABASE_URL parsing, demo data, and the ``demo`` command."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from testproject.blog.models import Article, Comment, Event
from testproject.blog.seed import SeedSize, seed
from testproject.dburl import SQLITE_OPTIONS, database_from_url
from tests.support.demo import start_demo
from tests.support.env import without_extras
from tests.support.servers import free_port, wait_for_port

BASE = Path("/srv/app")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://bob:s%3Acret@db.example:6543/shop?sslmode=require",
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "shop",
                "USER": "bob",
                "PASSWORD": "s:cret",
                "HOST": "db.example",
                "PORT": "6543",
                "OPTIONS": {"sslmode": "require"},
            },
        ),
        (
            "postgres:///app?host=/var/run/postgresql",
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "app",
                "USER": "",
                "PASSWORD": "",
                "HOST": "/var/run/postgresql",
                "PORT": "",
                "OPTIONS": {},
            },
        ),
        (
            "sqlite:///db.sqlite3",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "/srv/app/db.sqlite3",
                "OPTIONS": SQLITE_OPTIONS,
            },
        ),
        (
            "sqlite:////tmp/x.db",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "/tmp/x.db",
                "OPTIONS": SQLITE_OPTIONS,
            },
        ),
        ("sqlite://:memory:", {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}),
    ],
)
def test_database_from_url(url, expected):
    assert database_from_url(url, BASE) == expected


def test_an_unsupported_database_url_names_the_scheme():
    with pytest.raises(ImproperlyConfigured, match="scheme 'mysql' is not supported"):
        database_from_url("mysql://u@h/db", BASE)


@pytest.mark.django_db
def test_seed_creates_the_demo_rows_once():
    size = SeedSize(authors=5, articles=50, comments=120, events=80)
    added = seed(size)
    assert added == {"authors": 5, "tags": 15, "articles": 50, "comments": 120, "events": 80}
    assert Article.objects.count() == 50
    assert Article.tags.through.objects.count() >= 50
    assert seed(size) == {}
    assert (Article.objects.count(), Comment.objects.count(), Event.objects.count()) == (
        50,
        120,
        80,
    )


@pytest.mark.django_db
def test_demo_sets_up_without_serving_and_never_duplicates(monkeypatch, capsys):
    monkeypatch.setenv("DJANGO_PERF_DEMO_PASSWORD", "open-sesame")
    call_command("demo", no_serve=True)
    first = capsys.readouterr().out
    assert (
        "Seeded demo data: 40 authors, 15 tags, 2000 articles, 6000 comments, 5000 events." in first
    )
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password("open-sesame")

    monkeypatch.delenv("DJANGO_PERF_DEMO_PASSWORD")
    call_command("demo", no_serve=True)
    second = capsys.readouterr().out
    assert "Demo data already present; nothing added." in second
    assert "password is unchanged" in second
    assert Article.objects.count() == 2000
    assert get_user_model().objects.filter(username="admin").count() == 1
    admin.refresh_from_db()
    assert admin.check_password("open-sesame")


@pytest.mark.django_db
def test_demo_reset_password_prints_a_new_working_password(capsys):
    call_command("demo", no_serve=True)
    call_command("demo", no_serve=True, reset_password=True)
    out = capsys.readouterr().out
    password = re.findall(r"Admin login: admin / (\S+)", out)[-1]
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_core_only_hides_every_extra_but_not_the_core():
    """The demo test below runs without the extras only if this folder really hides them."""
    probe = (
        "import importlib\n"
        "for name in ('psycopg', 'django_redis', 'redis', 'channels', 'orjson', 'msgpack',\n"
        "             'prometheus_client', 'memory_profiler', 'django.contrib.postgres.fields'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise SystemExit(name + ' imported')\n"
        "import django, psutil\n"
        "print('core ok')\n"
    )
    env = without_extras(dict(os.environ))
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "core ok"


@pytest.mark.sqlite
def test_demo_command_serves_the_site_on_a_fresh_sqlite_database(tmp_path):
    """The README's first command, as a new user runs it: no settings, no servers, no extras."""
    port = free_port()
    process = start_demo(tmp_path, port, core_only=True)
    try:
        wait_for_port(port, timeout=60, process=process)
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        login = httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert home.status_code == 200
    assert home.text.count('<li><a href="/articles/') == 20
    assert login.status_code == 200
    assert "Admin login: admin / " in output
    assert f"Serving on http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output
