from django.contrib import admin

from .models import Article, Author, Comment, Event, Tag


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "joined_at"]
    search_fields = ["name", "email"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "author", "status", "published_at"]
    list_filter = ["status"]
    list_select_related = ["author"]
    search_fields = ["title"]
    raw_id_fields = ["author"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["author_name", "article", "created_at"]
    raw_id_fields = ["article"]


admin.site.register(Tag)
admin.site.register(Event)
