"""The Poll table of Django's generic cache tests."""

from django.db import migrations, models

import testproject.polls.models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Poll",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("question", models.CharField(max_length=200)),
                ("answer", models.CharField(max_length=200)),
                (
                    "pub_date",
                    models.DateTimeField(
                        default=testproject.polls.models.expensive_calculation,
                        verbose_name="date published",
                    ),
                ),
            ],
        ),
    ]
