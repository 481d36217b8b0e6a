"""The Django app configuration: validates settings and wires checks and signals at startup."""

from django.apps import AppConfig
from django.core.signals import setting_changed


class DjangoPerfConfig(AppConfig):
    name = "django_perf"
    label = "django_perf"
    verbose_name = "Performance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (importing registers the system checks)
        from .cache import registry
        from .conf import perf_settings, reload_on_change
        from .db.pools import track_connections

        # A wrong DJANGO_PERF fails here, at startup, with the key's name.
        perf_settings.validate()
        setting_changed.connect(reload_on_change, dispatch_uid="django_perf.conf")
        track_connections()
        # Model signals and the bulk helpers' rows_changed drive cache invalidation.
        registry.connect()
