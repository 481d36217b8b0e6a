"""Reading a django-perf setting on a hot path vs reading the raw dict from django.conf.settings.

Middleware reads settings on every request, so ``perf_settings.X`` must cost no
more than what code would do without it: ``settings.DJANGO_PERF.get("X", default)``.
"""

from django.conf import settings

from django_perf.conf import perf_settings
from tests.benchmarks.harness import Case, Comparison, Goal, per_op

NUMBER = 200_000


def comparisons() -> list[Comparison]:
    perf_settings.validate()

    def raw_dict() -> object:
        return getattr(settings, "DJANGO_PERF", {}).get("STRICT", False)

    def perf() -> object:
        return perf_settings.STRICT

    return [
        Comparison(
            "read one setting",
            baseline=Case("settings.DJANGO_PERF.get()", per_op(raw_dict, NUMBER)),
            candidates=[Case("perf_settings.STRICT", per_op(perf, NUMBER), Goal("<=", 1.0))],
        )
    ]
