"""URLs of the test project: the blog, the admin and django-perf's own endpoints."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("perf/", include("django_perf.urls")),
    path("monitoring/", include("testproject.blog.views_monitoring")),
    path("db/", include("testproject.bulkdemo.urls")),
    path("exports/", include("testproject.blog.views_exports")),
    path("cached/", include("testproject.blog.views_invalidation")),
    path("", include("testproject.blog.urls")),
]

if settings.SERVE_STATIC and not settings.DEBUG:
    # Static files (the admin's and the dashboard's) from the app folders under gunicorn
    # or uvicorn, for the browser tests; runserver serves them itself when DEBUG is on.
    urlpatterns.insert(0, re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}))
