"""Which file column feeds which Ferry column (SPEC 13 "Import"). Pure.

By default a header matches a column when both read the same ignoring case, spaces, `_`,
`-` and camelCase (`Timeline Item ID`, `timelineItemId` and `timeline_item_id` are one).
An explicit mapping (file column → Ferry column, or None to ignore it) wins over that; the
file's columns it does not name are still matched automatically, unless that would feed
a Ferry column the mapping already feeds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ValidationFailed
from shared.tables.columns import Table

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s_\-.]+")


def normalise(name: str) -> str:
    """A header or column name as the automatic matching compares it."""
    return _SEPARATORS.sub("", _CAMEL.sub("_", name.strip())).lower()


def parse_mapping(raw: Any, table: Table) -> dict[str, str | None]:
    """A request's `mapping` (JSON object or its text), checked against the table.

    A 422 naming `mapping` for an unknown Ferry column, or two file columns mapped to one.
    """
    import orjson

    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _refuse("must be a JSON object: file column -> Ferry column or null") from None
    if not isinstance(raw, dict):
        raise _refuse("must be a JSON object: file column -> Ferry column or null")
    known = set(table.names)
    fed: dict[str, str] = {}
    mapping: dict[str, str | None] = {}
    for source, target in raw.items():
        if target is not None and not isinstance(target, str):
            raise _refuse(f"{source!r} must map to a column name or null")
        if "\x00" in source or (target and "\x00" in target):
            raise _refuse("must not contain the character U+0000")
        if target is not None:
            if target not in known:
                raise _refuse(
                    f"{source!r} maps to {target!r}, which is not a column of {table.name}",
                    column=target,
                )
            if target in fed:
                raise _refuse(
                    f"{fed[target]!r} and {source!r} both map to {target!r}", column=target
                )
            fed[target] = source
        mapping[source] = target
    return mapping


def _refuse(message: str, *, column: str | None = None) -> ValidationFailed:
    details: dict[str, Any] = {"field": "mapping"}
    if column is not None:
        details["column"] = column
    return ValidationFailed(f"mapping: {message}", details=details)


@dataclass(frozen=True, slots=True)
class Matched:
    """The mapping used: file column → Ferry column (None: ignored), and the rest."""

    used: dict[str, str | None]
    unmapped: list[str]
    # Explicit mapping entries naming no column of the file.
    absent: list[str]

    def columns(self, header: list[str]) -> list[tuple[int, str]]:
        """(position in the file, Ferry column) of every mapped column, in file order."""
        return [(i, target) for i, name in enumerate(header) if (target := self.used.get(name))]


def match(header: list[str], table: Table, explicit: Mapping[str, str | None]) -> Matched:
    """The mapping of a file's header onto a table: the explicit one, then by name."""
    by_name = {normalise(name): name for name in table.names}
    taken = {target for target in explicit.values() if target}
    used: dict[str, str | None] = {}
    unmapped: list[str] = []
    for name in header:
        if name in explicit:
            used[name] = explicit[name]
            continue
        target = by_name.get(normalise(name))
        if target is None or target in taken:
            unmapped.append(name)
            continue
        taken.add(target)
        used[name] = target
    absent = [name for name in explicit if name not in header]
    return Matched(used=used, unmapped=unmapped, absent=absent)
