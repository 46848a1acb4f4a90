"""URL parts: ids in paths are UUIDs, matched by the router itself.

A path whose id is not a UUID matches no route, so it is a 404 like an unknown id, on every
route that declares `<uuid:...>` — the store never sees a malformed id.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import BaseConverter


class IdConverter(BaseConverter):
    """A UUID in its 8-4-4-4-12 text form, handed to the view as lowercase text."""

    regex = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    part_isolating = True

    def to_python(self, value: str) -> str:
        """The id as Ferry stores it."""
        return value.lower()

    def to_url(self, value: Any) -> str:
        """The id as it appears in a URL."""
        return str(value)


def init_app(app: Flask) -> None:
    """Make `<uuid:name>` yield text ids (Werkzeug's own yields `uuid.UUID` objects)."""
    app.url_map.converters["uuid"] = IdConverter
