from django.urls import path

from . import views

app_name = "blog"

urlpatterns = [
    path("", views.home, name="home"),
    path("articles/<slug:slug>/", views.article_detail, name="article"),
    path("authors/<int:pk>/", views.author_detail, name="author"),
    path("health/", views.health, name="health"),
]
