from django.apps import AppConfig


class BlogConfig(AppConfig):
    name = "testproject.blog"
    label = "blog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import invalidation  # noqa: F401  (registers what cached pages depend on)
