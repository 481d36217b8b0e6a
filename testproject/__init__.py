"""A real Django project that exercises every django-perf feature; the demo and the tests use it."""
