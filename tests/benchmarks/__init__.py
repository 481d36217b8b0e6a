"""Measured comparisons with the baselines django-perf replaces (``python -m tests.benchmarks``)."""
