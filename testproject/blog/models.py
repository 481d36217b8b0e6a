"""A small blog whose tables the django-perf features are exercised on."""

import uuid

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    bio = models.TextField(blank=True)
    joined_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"

    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    tags = models.ManyToManyField(Tag, related_name="articles", blank=True)
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PUBLISHED)
    published_at = models.DateTimeField(db_index=True)
    word_count = models.PositiveIntegerField(default=0)
    rating = models.DecimalField(max_digits=4, decimal_places=2, default=0)

    class Meta:
        ordering = ["-published_at"]

    def __str__(self) -> str:
        return self.title


class Comment(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    author_name = models.CharField(max_length=100)
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.author_name} on {self.article_id}"


class Event(models.Model):
    """A page event; its columns cover the field types bulk writes and streaming must handle."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True)
    article = models.ForeignKey(Article, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=20)
    occurred_at = models.DateTimeField()
    day = models.DateField()
    local_time = models.TimeField()
    duration = models.DurationField()
    score = models.FloatField()
    amount = models.DecimalField(max_digits=12, decimal_places=4)
    count = models.IntegerField()
    total = models.BigIntegerField()
    is_bot = models.BooleanField(default=False)
    consented = models.BooleanField(null=True)
    payload = models.JSONField(default=dict)
    note = models.TextField(null=True, blank=True)  # noqa: DJ001 (NULL vs "" is a tested case)

    def __str__(self) -> str:
        return f"{self.kind} at {self.occurred_at:%Y-%m-%d %H:%M}"
