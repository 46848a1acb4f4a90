"""metadata.json with `deletedIds` streamed in from per-kind id files (SPEC 4)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.archive.export import write_metadata

METADATA = {"schemaVersion": "2.4.0", "exportType": "incremental", "stats": {"placeCount": 0}}


def _ids(folder: Path, kind: str, ids: list[str]) -> Path:
    path = folder / f"{kind}.jsonl"
    path.write_bytes(b"".join(json.dumps(i).encode() + b"\n" for i in ids))
    return path


def test_given_deleted_ids_when_written_then_metadata_is_valid_json_listing_them(
    tmp_path: Path,
) -> None:
    deleted = {
        "places": _ids(tmp_path, "places", ["A1B2C3D4-0000-4000-8000-000000000001"]),
        "items": _ids(tmp_path, "items", []),
        "samples": _ids(tmp_path, "samples", [f"S-{n}" for n in range(3)]),
    }

    write_metadata(tmp_path / "metadata.json", METADATA, deleted)

    assert json.loads((tmp_path / "metadata.json").read_bytes()) == {
        **METADATA,
        "deletedIds": {
            "places": ["A1B2C3D4-0000-4000-8000-000000000001"],
            "items": [],
            "samples": ["S-0", "S-1", "S-2"],
        },
    }


def test_given_no_deleted_ids_when_written_then_metadata_has_no_such_key(tmp_path: Path) -> None:
    write_metadata(tmp_path / "metadata.json", METADATA, None)

    assert json.loads((tmp_path / "metadata.json").read_bytes()) == METADATA
