"""Deterministic demo data: a few thousand rows that the django-perf features work on."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import Article, Author, Comment, Event, Tag

WORDS = [
    "cache", "latency", "query", "index", "stream", "worker", "pool", "signal", "tier", "redis",
    "postgres", "django", "request", "response", "bulk", "batch", "copy", "histogram", "memory",
]  # fmt: skip
TAG_NAMES = [
    "performance", "caching", "databases", "python", "django", "postgres", "redis",
    "streaming", "monitoring", "async", "testing", "operations", "security", "orm", "http",
]  # fmt: skip


@dataclass(frozen=True)
class SeedSize:
    authors: int = 40
    articles: int = 2000
    comments: int = 6000
    events: int = 5000


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


@transaction.atomic
def seed(size: SeedSize = SeedSize(), *, random_seed: int = 2026) -> dict[str, int]:
    """Create the demo rows unless articles already exist; return how many rows were added."""
    if Article.objects.exists():
        return {}
    rng = random.Random(random_seed)
    now = timezone.now().replace(microsecond=0)
    tags = Tag.objects.bulk_create([Tag(name=name) for name in TAG_NAMES])
    authors = Author.objects.bulk_create(
        Author(
            name=f"Author {i}",
            email=f"author{i}@example.com",
            bio=_sentence(rng, 12),
            joined_at=now - dt.timedelta(days=rng.randint(30, 2000)),
        )
        for i in range(size.authors)
    )
    articles = Article.objects.bulk_create(
        Article(
            author=rng.choice(authors),
            title=(title := f"{_sentence(rng, 5)} {i}"),
            slug=slugify(title),
            body="\n\n".join(_sentence(rng, 40) for _ in range(3)),
            status=Article.Status.DRAFT if i % 10 == 0 else Article.Status.PUBLISHED,
            published_at=now - dt.timedelta(minutes=rng.randint(0, 500_000)),
            word_count=120,
            rating=Decimal(rng.randint(0, 500)) / 100,
        )
        for i in range(size.articles)
    )
    Through = Article.tags.through
    Through.objects.bulk_create(
        Through(article_id=article.pk, tag_id=tag.pk)
        for article in articles
        for tag in rng.sample(tags, rng.randint(1, 3))
    )
    Comment.objects.bulk_create(
        Comment(
            article=rng.choice(articles),
            author_name=f"reader{rng.randint(1, 500)}",
            body=_sentence(rng, 15),
            created_at=now - dt.timedelta(minutes=rng.randint(0, 100_000)),
        )
        for _ in range(size.comments)
    )
    Event.objects.bulk_create(
        Event(
            uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
            article=rng.choice(articles) if i % 7 else None,
            kind=rng.choice(["view", "click", "share", "scroll"]),
            occurred_at=(at := now - dt.timedelta(seconds=rng.randint(0, 30 * 86400))),
            day=at.date(),
            local_time=at.time(),
            duration=dt.timedelta(milliseconds=rng.randint(1, 600_000)),
            score=round(rng.random() * 100, 3),
            amount=Decimal(rng.randint(0, 10**8)) / 10**4,
            count=rng.randint(-1000, 1000),
            total=rng.randint(0, 2**40),
            is_bot=rng.random() < 0.1,
            consented=rng.choice([True, False, None]),
            payload={"path": f"/articles/{i}/", "ref": rng.choice(["search", "social", None])},
            note=None if i % 3 else _sentence(rng, 4),
        )
        for i in range(size.events)
    )
    return {
        "authors": len(authors),
        "tags": len(tags),
        "articles": len(articles),
        "comments": size.comments,
        "events": size.events,
    }
