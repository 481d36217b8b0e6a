"""The settings object: defaults, validation that names the key, and reload on override."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_perf.conf import SETTINGS, PerfSettings, boolean, choice, number, perf_settings, strings
from tests.support.env import ROOT

SPECS = (
    boolean("ENABLED", True, "on or off"),
    number("INTERVAL", 5.0, "seconds", unit="seconds"),
    number("LIMIT", 100, "count", integer=True, exclusive=False, minimum=1),
    number("TIMEOUT", None, "optional", allow_none=True),
    choice("STORE", "database", ["database", "redis"], "where"),
    strings("EXCLUDE", ("/static/",), "paths"),
)


def test_defaults_apply_when_the_user_sets_nothing():
    conf = PerfSettings(SPECS)
    conf.validate({})
    assert conf.ENABLED is True
    assert conf.INTERVAL == 5.0
    assert conf.STORE == "database"
    assert conf.EXCLUDE == ("/static/",)
    assert conf.TIMEOUT is None


def test_user_values_override_defaults():
    conf = PerfSettings(SPECS)
    conf.validate({"INTERVAL": 2, "STORE": "redis", "EXCLUDE": ["/health/"]})
    assert conf.INTERVAL == 2
    assert conf.STORE == "redis"
    assert conf.EXCLUDE == ["/health/"]
    assert conf.LIMIT == 100


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("ENABLED", "yes", "DJANGO_PERF['ENABLED'] must be True or False; got 'yes' (str)."),
        ("INTERVAL", "5", "must be a finite number of seconds greater than 0; got '5' (str)"),
        ("INTERVAL", 0, "must be a finite number of seconds greater than 0; got 0 (int)"),
        ("INTERVAL", float("inf"), "a finite number of seconds greater than 0; got inf (float)"),
        ("INTERVAL", float("nan"), "a finite number of seconds greater than 0; got nan (float)"),
        ("INTERVAL", True, "got True (bool)"),
        ("LIMIT", 2.5, "DJANGO_PERF['LIMIT'] must be an integer at least 1; got 2.5 (float)."),
        ("LIMIT", 0, "must be an integer at least 1"),
        ("TIMEOUT", "1", "a finite number greater than 0 or None"),
        ("STORE", "memcached", "must be one of 'database', 'redis'; got 'memcached'"),
        ("EXCLUDE", "/static/", "must be a list of strings; got '/static/' (str)"),
        ("EXCLUDE", ["/a/", 3], "must be a list of strings"),
    ],
)
def test_a_wrong_type_names_the_key_and_what_it_accepts(key, value, expected):
    with pytest.raises(ImproperlyConfigured) as raised:
        PerfSettings(SPECS).validate({key: value})
    assert expected in str(raised.value)
    assert f"DJANGO_PERF[{key!r}]" in str(raised.value)


def test_an_unknown_key_is_rejected_with_a_suggestion():
    with pytest.raises(
        ImproperlyConfigured,
        match=r"DJANGO_PERF\['INTERVL'\] is not a django-perf setting\. Did you mean 'INTERVAL'\?",
    ):
        PerfSettings(SPECS).validate({"INTERVL": 3})


def test_an_unknown_key_without_a_near_match_gets_no_suggestion():
    with pytest.raises(ImproperlyConfigured) as raised:
        PerfSettings(SPECS).validate({"COLOUR": "blue"})
    assert "Did you mean" not in str(raised.value)


def test_settings_that_are_not_a_dict_are_rejected():
    with pytest.raises(
        ImproperlyConfigured, match="must be a dict of django-perf settings, got list"
    ):
        PerfSettings(SPECS).validate([("ENABLED", True)])


@pytest.mark.parametrize("value", [[], "", (), None])
def test_django_perf_set_to_something_other_than_a_dict_is_rejected(value):
    """An empty list or string is no more a dict than a full one: say so, do not ignore it."""
    with override_settings(DJANGO_PERF=value), pytest.raises(ImproperlyConfigured) as raised:
        perf_settings.STRICT  # noqa: B018
    assert "settings.DJANGO_PERF must be a dict of django-perf settings, got" in str(raised.value)


@pytest.mark.parametrize(
    "key", ["MONITORING_FLUSH_INTERVAL", "MONITORING_SYSTEM_INTERVAL", "MONITORING_SLOW_REQUEST_MS"]
)
def test_durations_must_be_finite(key):
    with pytest.raises(ImproperlyConfigured, match=rf"DJANGO_PERF\['{key}'\] must be a finite"):
        PerfSettings().validate({key: float("inf")})


@pytest.mark.parametrize("key", ["MONITORING_FLUSH_INTERVAL", "MONITORING_SYSTEM_INTERVAL"])
def test_background_intervals_are_at_most_a_day(key):
    """A thread cannot wait longer than threading.TIMEOUT_MAX: 1e10 s killed the flusher."""
    PerfSettings().validate({key: 86400})
    for value in (1e10, 10**400):  # a huge int is compared, not converted: no OverflowError
        with pytest.raises(ImproperlyConfigured, match=r"at least 0 and at most 86400"):
            PerfSettings().validate({key: value})


def test_reading_a_name_that_is_not_a_setting_is_an_attribute_error():
    conf = PerfSettings(SPECS)
    with pytest.raises(AttributeError, match="'NOPE' is not a django-perf setting"):
        conf.NOPE  # noqa: B018


def test_override_settings_reloads_the_real_settings_object():
    assert perf_settings.STRICT is False
    with override_settings(DJANGO_PERF={"STRICT": True}):
        assert perf_settings.STRICT is True
    assert perf_settings.STRICT is False


def test_a_bad_override_fails_on_the_next_read():
    with override_settings(DJANGO_PERF={"STRICT": "on"}), pytest.raises(ImproperlyConfigured):
        perf_settings.STRICT  # noqa: B018
    assert perf_settings.STRICT is False


def test_every_setting_has_help_and_a_valid_default():
    names = [spec.name for spec in SETTINGS]
    assert len(names) == len(set(names))
    for spec in SETTINGS:
        assert spec.help.strip(), spec.name
        assert spec.accepts(spec.default), spec.name
        assert spec.name.isupper(), spec.name


def test_every_setting_is_in_the_settings_reference():
    """The docs page renders the reference from SETTINGS; the directive must be on it."""
    page = (ROOT / "docs" / "settings.rst").read_text()
    assert ".. django-perf-settings::" in page


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        (
            {"max_sise": 5},
            "DJANGO_PERF['ASYNC_POOL']['max_sise'] is not an async pool option "
            "(did you mean 'max_size'?); it accepts min_size, max_size, timeout,",
        ),
        ({"name": "x"}, "DJANGO_PERF['ASYNC_POOL']['name'] is not an async pool option;"),
        ({"kwargs": {}}, "DJANGO_PERF['ASYNC_POOL']['kwargs'] is not an async pool option;"),
        (
            {"max_size": "10"},
            "DJANGO_PERF['ASYNC_POOL']['max_size'] must be an integer at least 1, or None "
            "(min_size); got '10' (str).",
        ),
        ({"min_size": -1}, "['min_size'] must be an integer at least 0"),
        ({"min_size": True}, "['min_size'] must be an integer at least 0; got True (bool)"),
        ({"timeout": 0}, "['timeout'] must be a number of seconds greater than 0"),
        ({"max_idle": float("inf")}, "['max_idle'] must be a number of seconds greater than 0"),
        ({"num_workers": 0}, "['num_workers'] must be an integer at least 1"),
        ({"reset": "reset"}, "['reset'] must be an async callable taking a connection"),
        (
            {"min_size": 5, "max_size": 2},
            "DJANGO_PERF['ASYNC_POOL']: max_size (2) must be at least min_size (5) and at least 1.",
        ),
        ({"min_size": 20}, "max_size (10, the default) must be at least min_size (20)"),
        ({"min_size": 0, "max_size": None}, "max_size (None) must be at least min_size (0)"),
    ],
)
def test_async_pool_options_are_checked_naming_the_option(pool, expected):
    with pytest.raises(ImproperlyConfigured) as raised:
        PerfSettings().validate({"ASYNC_POOL": pool})
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ({}, {"min_size": 1, "max_size": 10, "timeout": 10.0}),
        ({"max_size": 20}, {"min_size": 1, "max_size": 20, "timeout": 10.0}),
        ({"min_size": 0, "max_idle": 60}, {"min_size": 0, "max_size": 10, "timeout": 10.0,
                                           "max_idle": 60}),
        ({"min_size": 4, "max_size": None}, {"min_size": 4, "max_size": None, "timeout": 10.0}),
    ],
)  # fmt: skip
def test_async_pool_options_replace_the_defaults_key_by_key(pool, expected):
    conf = PerfSettings()
    conf.validate({"ASYNC_POOL": pool})
    options = conf.ASYNC_POOL
    assert options == expected


STARTUP = """
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_perf"], DJANGO_PERF={perf!r})
django.setup()
print("started")
"""


@pytest.mark.parametrize(
    ("perf", "message"),
    [
        (
            {"STRCT": True},
            "DJANGO_PERF['STRCT'] is not a django-perf setting. Did you mean 'STRICT'?",
        ),
        ({"STRICT": 1}, "DJANGO_PERF['STRICT'] must be True or False; got 1 (int)."),
        ([], "settings.DJANGO_PERF must be a dict of django-perf settings, got list."),
        ("", "settings.DJANGO_PERF must be a dict of django-perf settings, got str."),
        (
            {"ASYNC_POOL": {"min_size": 5, "max_size": 2}},
            "DJANGO_PERF['ASYNC_POOL']: max_size (2) must be at least min_size (5) and at least 1.",
        ),
    ],
)
def test_a_wrong_setting_fails_at_startup(perf, message):
    result = subprocess.run(
        [sys.executable, "-c", STARTUP.format(perf=perf)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr


def test_a_valid_setting_starts():
    result = subprocess.run(
        [sys.executable, "-c", STARTUP.format(perf={"STRICT": True})],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.stdout.strip() == "started", result.stderr
