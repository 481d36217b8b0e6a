"""URLs of django-perf's own endpoints; include them with ``path("perf/", include(...))``."""

from django.urls import path

from .monitoring.prometheus import metrics_view

app_name = "django_perf"

urlpatterns: list = [
    path("metrics", metrics_view, name="metrics"),
]
