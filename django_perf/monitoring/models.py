"""Tables of the database metrics store (the default store when Redis is not configured).

``MetricSeries`` rows hold one series each (a JSON payload of histogram
buckets and sums). Workers only ever *insert* raw rows, so flushes from many
processes never contend; a maintenance pass, one process at a time, merges
raw rows into per-minute rows and the lifetime totals, rolls old minutes up
into hours and deletes what is past retention, each step in one transaction.
"""

from __future__ import annotations

from django.db import models


class MetricSeries(models.Model):
    """One series (route x method x status class) for one period, at one resolution."""

    RAW = 0  # a flush from one process, not merged yet
    MINUTE = 60
    HOUR = 3600
    TOTAL = -1  # lifetime totals (what Prometheus counters need), start = 0

    resolution = models.SmallIntegerField()
    start = models.BigIntegerField(help_text="Start of the period, Unix seconds.")
    route = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    status = models.CharField(max_length=5)
    payload = models.TextField(help_text='JSON: {"h": {bucket: count}, "s": {sum: value}}')

    class Meta:
        app_label = "django_perf"
        indexes = [models.Index(fields=["start", "resolution"], name="django_perf_series_start")]
        permissions = [("view_metrics", "Can view performance metrics")]
        verbose_name = "metric series"
        verbose_name_plural = "metric series"

    def __str__(self) -> str:
        return f"{self.route} {self.method} {self.status} @{self.start}/{self.resolution}"


class SystemSample(models.Model):
    """The latest psutil sample of one process (and its host) in one minute."""

    start = models.BigIntegerField(help_text="Minute of the sample, Unix seconds.")
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    taken_at = models.FloatField()
    payload = models.TextField(help_text="JSON: host and process metrics.")

    class Meta:
        app_label = "django_perf"
        constraints = [
            models.UniqueConstraint(fields=["start", "host", "pid"], name="django_perf_sample_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid} @{self.start}"


class MetricsLease(models.Model):
    """A named lease: the one process doing maintenance holds it until ``until``."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=100, default="")
    until = models.FloatField(default=0)

    class Meta:
        app_label = "django_perf"

    def __str__(self) -> str:
        return f"{self.name} ({self.holder} until {self.until})"


class SlowRequestLog(models.Model):
    """One slow request (``MONITORING_SLOW_REQUEST_MS``): the slow log the admin page shows."""

    at = models.FloatField(help_text="When the request ended, Unix seconds.")
    route = models.CharField(max_length=255)
    duration_ms = models.FloatField()
    payload = models.TextField(help_text="JSON: the SlowRequest fields.")

    class Meta:
        app_label = "django_perf"
        indexes = [models.Index(fields=["route", "at"], name="django_perf_slow_route_at")]

    def __str__(self) -> str:
        return f"{self.route} {self.duration_ms:.1f} ms @{self.at}"
