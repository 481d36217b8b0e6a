"""The app's first migration: a root for the capability migrations that follow."""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []
    operations: list = []
