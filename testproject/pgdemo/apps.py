from django.apps import AppConfig


class PgDemoConfig(AppConfig):
    name = "testproject.pgdemo"
    label = "pgdemo"
    default_auto_field = "django.db.models.BigAutoField"
