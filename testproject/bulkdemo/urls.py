from django.urls import path

from . import views

app_name = "bulkdemo"

urlpatterns = [
    path("articles/", views.articles, name="articles"),
    path("articles-sync/", views.articles_sync, name="articles-sync"),
    path("article-count/", views.article_count, name="article-count"),
    path("scope-probe/", views.scope_probe, name="scope-probe"),
    path("scope-probe-sync/", views.scope_probe_sync, name="scope-probe-sync"),
]
