"""Pages of the demo blog; later features (caching, streaming, metrics) are shown on these."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Article, Author


def home(request: HttpRequest) -> HttpResponse:
    articles = (
        Article.objects.filter(status=Article.Status.PUBLISHED)
        .select_related("author")
        .only("title", "slug", "published_at", "author__name")[:20]
    )
    return render(request, "blog/home.html", {"articles": articles})


def article_detail(request: HttpRequest, slug: str) -> HttpResponse:
    article = get_object_or_404(Article.objects.select_related("author"), slug=slug)
    comments = article.comments.all()[:50]
    return render(request, "blog/article.html", {"article": article, "comments": comments})


def author_detail(request: HttpRequest, pk: int) -> HttpResponse:
    author = get_object_or_404(Author, pk=pk)
    articles = author.articles.filter(status=Article.Status.PUBLISHED)[:50]
    return render(request, "blog/author.html", {"author": author, "articles": articles})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
