"""Streaming responses that send large querysets with flat memory under WSGI and ASGI."""
