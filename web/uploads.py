"""Uploads are parsed straight into storage: no second copy of a multi-gigabyte file."""

from __future__ import annotations

import contextlib
import os
import unicodedata
from typing import IO, Any

from flask import Flask, Request, current_app, g


class FerryRequest(Request):
    """A request whose uploaded files stream into storage's incoming folder."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        received = current_app.extensions["ferry"].storage.incoming_file()
        g.setdefault("received_files", []).append(received.name)
        return received


def display_name(filename: str) -> str:
    """An upload's file name as kept on the job: shown, never used as a path, so control
    characters (which PostgreSQL's jsonb cannot hold, for U+0000) are dropped."""
    kept = "".join(c for c in filename if unicodedata.category(c) != "Cc")
    return kept.strip() or "upload"


def adopted(path: str) -> None:
    """Say a received file now belongs to a job (not removed after the request)."""
    files: list[str] = g.get("received_files", [])
    if path in files:
        files.remove(path)


def init_app(app: Flask) -> None:
    """Use FerryRequest and remove received files no job adopted."""
    app.request_class = FerryRequest

    @app.teardown_request
    def remove_unadopted(_: Any) -> None:
        for path in g.pop("received_files", []):
            with contextlib.suppress(OSError):
                os.unlink(path)
