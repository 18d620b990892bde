"""identity: an async GraphQL identity API."""

__version__ = "0.1.0"
