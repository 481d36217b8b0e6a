from django.apps import AppConfig


class PollsConfig(AppConfig):
    name = "testproject.polls"
    label = "polls"
    default_auto_field = "django.db.models.AutoField"
