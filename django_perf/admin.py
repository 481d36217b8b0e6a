"""django-perf in the Django admin: the "Performance" dashboard (see ``dashboard/``)."""

from django.contrib import admin

from .dashboard.admin import DashboardAdmin
from .dashboard.models import Dashboard

admin.site.register(Dashboard, DashboardAdmin)
