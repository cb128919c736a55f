"""Blindspot's Python client: the `blindspot` command and the model package format."""

__version__ = "0.1.0"
