"""Fixtures for monitoring tests: a fresh recorder, settings overrides, the test URLconf."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from django_perf.conf import perf_settings
from django_perf.monitoring.recorder import Recorder, get_recorder, reset_recorder


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """This process's recorder, empty; middleware built during the test records into it."""
    reset_recorder()
    yield get_recorder()
    reset_recorder()


@pytest.fixture
def perf(settings) -> Iterator:
    """``perf(**keys)``: override DJANGO_PERF keys for the test; returns the fresh recorder."""
    overrides = []

    def apply(**keys):
        current = dict(settings.DJANGO_PERF)
        current.update(keys)
        override = override_settings(DJANGO_PERF=current)
        override.enable()
        overrides.append(override)
        reset_recorder()
        perf_settings.validate()
        return get_recorder()

    yield apply
    for override in reversed(overrides):
        override.disable()
    reset_recorder()


@pytest.fixture
def monitoring_urls(settings) -> None:
    settings.ROOT_URLCONF = "tests.monitoring.urls"
