"""URLs of the test project: the blog, the admin and django-perf's own endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("perf/", include("django_perf.urls")),
    path("monitoring/", include("testproject.blog.views_monitoring")),
    path("db/", include("testproject.bulkdemo.urls")),
    path("exports/", include("testproject.blog.views_exports")),
    path("cached/", include("testproject.blog.views_invalidation")),
    path("", include("testproject.blog.urls")),
]
