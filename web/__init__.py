"""The web entrypoint: a thin Flask app (`ferry web`). It never imports the worker."""

from __future__ import annotations

from web.app import create_app

__all__ = ["create_app"]
