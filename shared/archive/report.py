"""An import's validation report (SPEC 11): counts, errors and warnings, the first 100 each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LISTED = 100


@dataclass(slots=True)
class Findings:
    """Problems of one severity: the first LISTED in order, and how many there were."""

    listed: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    def add(self, file: str, index: int | None, field_name: str, reason: str) -> None:
        """Count one problem; keep it if fewer than LISTED are kept."""
        self.total += 1
        if len(self.listed) < LISTED:
            self.listed.append(
                {"file": file, "index": index, "field": field_name, "reason": reason}
            )

    def extend(self, rows: list[dict[str, Any]], total: int) -> None:
        """Count `total` problems of which `rows` are examples."""
        self.total += total
        room = LISTED - len(self.listed)
        self.listed.extend(rows[: max(0, room)])


@dataclass(slots=True)
class Report:
    """What validation found, as the job's `preview` shows it."""

    errors: Findings = field(default_factory=Findings)
    warnings: Findings = field(default_factory=Findings)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    archive: dict[str, Any] = field(default_factory=dict)

    def count(self, kind: str, key: str, amount: int = 1) -> None:
        """Add to a per-kind counter (records, invalid, staged, existing, …)."""
        bucket = self.counts.setdefault(kind, {})
        bucket[key] = bucket.get(key, 0) + amount

    def as_dict(self, *, on_conflict: str, skip_invalid: bool) -> dict[str, Any]:
        """The `preview` object."""
        return {
            "archive": self.archive,
            "counts": self.counts,
            "on_conflict": on_conflict,
            "skip_invalid": skip_invalid,
            "errors": self.errors.listed,
            "error_count": self.errors.total,
            "warnings": self.warnings.listed,
            "warning_count": self.warnings.total,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read back a stored preview."""
        report = cls(counts=data.get("counts", {}), archive=data.get("archive", {}))
        report.errors = Findings(list(data.get("errors", [])), int(data.get("error_count", 0)))
        report.warnings = Findings(
            list(data.get("warnings", [])), int(data.get("warning_count", 0))
        )
        return report
