"""Sphinx configuration for the django-perf documentation."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent / "_ext")]

from django_perf import __version__  # noqa: E402

project = "django-perf"
author = "django-perf developers"
copyright = "2026, django-perf developers"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "perf_settings"]
intersphinx_mapping = {}  # no network at build time
html_theme = "furo"
html_title = f"django-perf {release}"
html_static_path = ["_static"]
exclude_patterns = ["_build"]
nitpicky = False
