"""django-perf: make Django sites fast and show how fast they are."""

__version__ = "0.1.0"
