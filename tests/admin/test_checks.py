"""The dashboard's system check: W404 when nothing records the requests it would show."""

from django.conf import settings
from django.test import override_settings

from django_perf import checks

MIDDLEWARE = "django_perf.monitoring.PerformanceMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"


def ids(messages):
    return [m.id for m in messages]


def test_the_test_project_passes():
    assert checks.check_dashboard_has_data() == []


def test_w404_without_the_middleware():
    with override_settings(MIDDLEWARE=[COMMON]):
        [warning] = checks.check_dashboard_has_data()
    assert warning.id == "django_perf.W404"
    assert f"{MIDDLEWARE} is not in MIDDLEWARE" in warning.msg
    assert warning.hint.startswith(f"Put {MIDDLEWARE} first")


def test_no_w404_for_the_middleware_under_its_modules_own_path():
    defined_in = "django_perf.monitoring.middleware.PerformanceMiddleware"
    with override_settings(MIDDLEWARE=[defined_in, COMMON]):
        assert checks.check_dashboard_has_data() == []


def test_w404_with_monitoring_disabled(perf):
    perf(MONITORING_ENABLED=False)
    [warning] = checks.check_dashboard_has_data()
    assert "MONITORING_ENABLED'] is False" in warning.msg


def test_no_w404_without_the_admin():
    apps = [app for app in settings.INSTALLED_APPS if app != "django.contrib.admin"]
    with override_settings(INSTALLED_APPS=apps, MIDDLEWARE=[COMMON]):
        assert ids(checks.check_dashboard_has_data()) == []
