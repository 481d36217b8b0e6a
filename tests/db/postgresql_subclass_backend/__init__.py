"""A third-party style database backend built on Django's PostgreSQL one, for the pool checks."""
