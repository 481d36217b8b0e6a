"""The demo domain: authors write articles, readers comment, and page events are recorded."""
