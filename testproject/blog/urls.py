from django.urls import path

from . import views, views_cache

app_name = "blog"

urlpatterns = [
    path("", views.home, name="home"),
    path("articles/<slug:slug>/", views.article_detail, name="article"),
    path("authors/<int:pk>/", views.author_detail, name="author"),
    path("health/", views.health, name="health"),
    path("cache/", views_cache.cache_demo, name="cache-demo"),
]
