"""Almanac: an offline, document-grounded support assistant."""

__version__ = "0.1.0"
