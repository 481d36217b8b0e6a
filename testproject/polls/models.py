"""Django 5.2.19's tests/cache/models.py, unchanged (BSD-3-Clause, see tests/cache/LICENSE.django).

Django's generic cache tests check that caching a model instance does not call
a field's callable default again.
"""

from django.db import models
from django.utils import timezone


def expensive_calculation():
    expensive_calculation.num_runs += 1
    return timezone.now()


class Poll(models.Model):  # noqa: DJ008 (kept as Django wrote it)
    question = models.CharField(max_length=200)
    answer = models.CharField(max_length=200)
    pub_date = models.DateTimeField("date published", default=expensive_calculation)
