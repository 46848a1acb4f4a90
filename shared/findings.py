"""Problems found in an import's input: the first 100 in order, and how many. Pure."""

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
        self.note({"file": file, "index": index, "field": field_name, "reason": reason})

    def note(self, item: dict[str, Any]) -> None:
        """Count one problem given as its listed form; keep it if fewer than LISTED are."""
        self.total += 1
        if len(self.listed) < LISTED:
            self.listed.append(item)

    def extend(self, rows: list[dict[str, Any]], total: int) -> None:
        """Count `total` problems of which `rows` are examples."""
        self.total += total
        room = LISTED - len(self.listed)
        self.listed.extend(rows[: max(0, room)])
