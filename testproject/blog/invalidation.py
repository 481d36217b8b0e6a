"""What the blog's cached pages are built from: cache invalidation registrations.

Imported by ``BlogConfig.ready()``. The cached pages live in ``views_invalidation.py``.
"""

from django_perf.cache.invalidation import register

from .models import Article, Author

#: Every cached list of articles (the cached home page) is stored under this tag.
ARTICLES = "blog:articles"


def article_key(slug: str) -> str:
    return f"blog:article:{slug}"


# An article's own page is cached under its slug; lists of articles under ARTICLES.
# A changed slug also drops the old slug's key (previous=True, the default).
register(Article, keys=lambda article: [article_key(article.slug)], tags=lambda article: [ARTICLES])


@register(Author)
class AuthorPages:
    """Author names appear on article pages and lists: a rename drops both."""

    def keys(self, author: Author) -> list[str]:
        slugs = author.articles.values_list("slug", flat=True)
        return [article_key(slug) for slug in slugs]

    def tags(self, author: Author) -> list[str]:
        return [ARTICLES]
