"""An import's validation report (SPEC 11): counts, errors and warnings, the first 100 each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.findings import LISTED, Findings

__all__ = ["LISTED", "Findings", "Report"]


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
