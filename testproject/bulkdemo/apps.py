from django.apps import AppConfig


class BulkDemoConfig(AppConfig):
    name = "testproject.bulkdemo"
    label = "bulkdemo"
    default_auto_field = "django.db.models.BigAutoField"
