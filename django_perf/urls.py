"""URLs of django-perf's own endpoints; include them with ``path("perf/", include(...))``."""

app_name = "django_perf"

urlpatterns: list = []
