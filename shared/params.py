"""Job parameters: parsed from request bodies, stored on the job, read back by pipelines.

Every refusal names the field (`details.field`), so a client can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import BadRequest, ValidationFailed
from shared.timefmt import format_iso, parse_iso

# samples (the default) and none give archives the Arc apps read; with all, the apps read
# no places and no items (they take only plain .json there), so it is for Ferry and tools.
COMPRESS_CHOICES = ("samples", "all", "none")


def refuse(field: str, message: str) -> ValidationFailed:
    """A 422 naming the field (`details.field`) with a message that starts with it."""
    return ValidationFailed(f"{field}: {message}", details={"field": field})


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportArchiveParams:
    """What an archive export selects and how it writes it."""

    start: datetime | None = None
    end: datetime | None = None
    incremental: bool = False
    compress: str = "samples"

    def gzip(self, folder: str) -> bool:
        """Whether files of `folder` (places, items, samples) are gzipped."""
        if self.compress == "all":
            return True
        if self.compress == "none":
            return False
        return folder == "samples"

    def to_json(self) -> dict[str, Any]:
        """The form stored in `jobs.params`."""
        out: dict[str, Any] = {"incremental": self.incremental, "compress": self.compress}
        if self.start is not None:
            out["from"] = format_iso(self.start)
        if self.end is not None:
            out["to"] = format_iso(self.end)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportArchiveParams:
        """Read back the stored form."""
        return cls(
            start=parse_iso(data["from"]) if data.get("from") else None,
            end=parse_iso(data["to"]) if data.get("to") else None,
            incremental=bool(data.get("incremental", False)),
            compress=data.get("compress", "samples"),
        )


def parse_export_request(body: Any) -> tuple[str, dict[str, Any]]:
    """Validate an archive `POST /exports` body; returns the job type and its stored params."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", details={"field": "body"})
    kind = body.get("type")
    if kind is None:
        raise refuse("type", "is required")
    if kind != "archive":
        # A table export's body is parsed by shared.tables.params (the service routes it).
        raise refuse("type", "must be 'archive' or 'table'")
    allowed = {"type", "from", "to", "incremental", "compress"}
    for key in body:
        if key not in allowed:
            raise refuse(key, "is not a known field")
    start = optional_date(body, "from")
    end = optional_date(body, "to")
    if start is not None and end is not None and end <= start:
        raise refuse("to", "must be after 'from'")
    incremental = body.get("incremental", False)
    if not isinstance(incremental, bool):
        raise refuse("incremental", "must be true or false")
    if incremental and (start is not None or end is not None):
        raise refuse("incremental", "cannot be combined with 'from' or 'to'")
    compress = body.get("compress", "samples")
    if compress not in COMPRESS_CHOICES:
        raise refuse("compress", f"must be one of {', '.join(COMPRESS_CHOICES)}")
    params = ExportArchiveParams(start=start, end=end, incremental=incremental, compress=compress)
    return "export.archive", params.to_json()


def optional_date(body: dict[str, Any], field: str) -> datetime | None:
    """An ISO 8601 date of the body, or None when absent; a 422 naming the field if bad."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse(field, "must be an ISO 8601 date string")
    try:
        return parse_iso(value)
    except ValueError:
        raise refuse(field, "must be an ISO 8601 date, like 2024-01-31T00:00:00Z") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportArchiveParams:
    """How an archive import treats its report and the account's existing records."""

    confirm: bool = False
    on_conflict: str = "skip"
    skip_invalid: bool = False
    filename: str = ""
    bytes: int = 0

    job_type = "import.archive"

    def to_json(self) -> dict[str, Any]:
        """The form stored in `jobs.params`."""
        return {
            "confirm": self.confirm,
            "on_conflict": self.on_conflict,
            "skip_invalid": self.skip_invalid,
            "filename": self.filename,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportArchiveParams:
        """Read back the stored form."""
        return cls(
            confirm=bool(data.get("confirm", False)),
            on_conflict=str(data.get("on_conflict", "skip")),
            skip_invalid=bool(data.get("skip_invalid", False)),
            filename=str(data.get("filename", "")),
            bytes=int(data.get("bytes", 0)),
        )
