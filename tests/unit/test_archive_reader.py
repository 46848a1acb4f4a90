"""Reading an unpacked archive (SPEC 4, 11): every valid JSON array yields its records, in
order, gzipped or not; anything else is BadArchive naming the file; metadata and manifest
are checked before a record is read.

Files are written by hand into `tmp_path`, in every layout the Arc apps and other writers
produce, and in the broken shapes an interrupted copy or a bad writer leaves.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from shared.archive.reader import (
    DataFile,
    check_metadata,
    data_files,
    record_blocks,
    records,
    verify_manifest,
)
from shared.errors import BadArchive, UnsupportedVersion

RATIO = 100.0
PLACE_ID = "0A1B2C3D-0000-4000-8000-{:012d}"


def place(n: int) -> dict[str, Any]:
    """A place-like record with nested values, floats and unicode."""
    return {
        "id": PLACE_ID.format(n),
        "name": f"Café {n} \u2014 \u6771\u4eac",
        "latitude": 51.5 + n / 1000,
        "longitude": -0.125,
        "isStale": False,
        "visitCount": n,
        "source": None,
        "tags": {"a": [1, 2, {"b": "}],["}]},
    }


RECORDS = [place(n) for n in range(5)]


def write(tmp_path: Path, relative: str, content: bytes, *, gz: bool = False) -> DataFile:
    """Write a data file under tmp_path (gzipped when asked) and describe it."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if gz else content)
    return DataFile(relative.split("/", maxsplit=1)[0], relative, path)


def read(data: DataFile, *, max_ratio: float = RATIO) -> list[tuple[int, Any]]:
    return list(records(data, max_ratio=max_ratio))


def line_per_object(values: list[Any]) -> bytes:
    """What Ferry and the Arc apps write: one object per line inside the array."""
    if not values:
        return b"[\n]\n"
    return (
        b"[\n" + b",\n".join(json.dumps(v, ensure_ascii=False).encode() for v in values) + b"\n]\n"
    )


def refused(data: DataFile, *, max_ratio: float = RATIO) -> str:
    """Reading every record fails with BadArchive naming the file; returns the message."""
    with pytest.raises(BadArchive) as caught:
        read(data, max_ratio=max_ratio)
    assert data.relative in caught.value.message, caught.value.message
    assert caught.value.code == "bad_archive"
    return caught.value.message


# --- every valid layout ---------------------------------------------------------------------


LAYOUTS = {
    "line-per-object": line_per_object(RECORDS),
    "pretty-printed": json.dumps(RECORDS, indent=2, sort_keys=True).encode(),
    "pretty-printed-tabs-crlf": json.dumps(RECORDS, indent="\t").replace("\n", "\r\n").encode(),
    "minified-one-line": json.dumps(RECORDS, separators=(",", ":")).encode(),
    "one-line-with-spaces": json.dumps(RECORDS).encode(),
    "mixed": (
        b"[\n"
        + json.dumps(RECORDS[0]).encode()
        + b",\n"
        + json.dumps(RECORDS[1]).encode()
        + b",\n"
        + json.dumps(RECORDS[2], indent=2).encode()
        + b"\n, "
        + json.dumps(RECORDS[3]).encode()
        + b","
        + json.dumps(RECORDS[4]).encode()
        + b"]"
    ),
    "leading-comma-lines": b"[\n" + b"\n,".join(json.dumps(v).encode() for v in RECORDS) + b"\n]\n",
    "whitespace-around": b"\n\n   \t"
    + line_per_object(RECORDS).replace(b"\n", b"  \n")
    + b"\n\n  \t \n",
    "utf8-bom-free-non-ascii-escaped": json.dumps(RECORDS, ensure_ascii=True).encode(),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_given_any_valid_json_array_layout_when_read_then_every_record_in_order(
    tmp_path: Path, layout: str, gz: bool
) -> None:
    """Given the same records laid out one per line, pretty-printed, minified or mixed, plain
    or gzipped, When read, Then (index, record) for each, in order, equal to what was written."""
    suffix = ".json.gz" if gz else ".json"
    data = write(tmp_path, f"places/0{suffix}", LAYOUTS[layout], gz=gz)

    assert read(data) == list(enumerate(RECORDS))


@pytest.mark.parametrize(
    ("name", "gz"),
    [("samples/2024-W01.json", True), ("samples/2024-W01.json.gz", False)],
    ids=["gzipped-named-json", "plain-named-gz"],
)
def test_given_a_file_whose_name_lies_about_gzip_when_read_then_the_bytes_decide(
    tmp_path: Path, name: str, gz: bool
) -> None:
    """Given a gzipped file named .json, or a plain one named .json.gz, When read, Then the
    records come out: gzip is recognised by its magic bytes, not by the name."""
    data = write(tmp_path, name, line_per_object(RECORDS), gz=gz)

    assert read(data) == list(enumerate(RECORDS))


@pytest.mark.parametrize("content", [b"[]", b"[\n]\n", b"  [ ]  \n", b"\n[\n\n]\n\n"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_given_an_empty_array_when_read_then_no_records(
    tmp_path: Path, content: bytes, gz: bool
) -> None:
    """Given an empty array (a week with no samples), When read, Then no records and no error."""
    data = write(tmp_path, "samples/2024-W01.json", content, gz=gz)

    assert read(data) == []


@pytest.mark.parametrize("pretty", [False, True], ids=["one-object-line", "whole-file-one-line"])
def test_given_a_line_longer_than_four_megabytes_when_read_then_every_record(
    tmp_path: Path, pretty: bool
) -> None:
    """Given a very long single line (one 5 MB object on its line, or a whole 5 MB array
    minified on one line), When read, Then every record comes out whole."""
    big = {"id": PLACE_ID.format(1), "name": "x" * (5 * 1024 * 1024)}
    values = [RECORDS[0], big, RECORDS[2]]
    if pretty:
        content = json.dumps(values, separators=(",", ":")).encode()
    else:
        content = line_per_object(values)
    assert max(len(line) for line in content.split(b"\n")) > 4 * 1024 * 1024
    data = write(tmp_path, "places/1.json", content)

    assert read(data) == list(enumerate(values))


def test_given_many_records_gzipped_when_read_then_all_come_out_with_their_indexes(
    tmp_path: Path,
) -> None:
    """Given 20 000 sample-like records gzipped at an ordinary ratio, When read, Then all 20 000,
    indexed 0…19 999, unchanged."""
    rng = random.Random(3)
    values = [
        {"id": f"{i:08X}-0000-4000-8000-000000000000", "latitude": rng.uniform(-90, 90)}
        for i in range(20_000)
    ]
    data = write(tmp_path, "samples/2024-W01.json.gz", line_per_object(values), gz=True)

    got = read(data)

    assert [i for i, _ in got] == list(range(20_000))
    assert [v for _, v in got] == values


# --- broken files: BadArchive naming the file -----------------------------------------------


BROKEN = {
    "truncated-line-per-object": line_per_object(RECORDS)[:-40],
    "truncated-before-close": line_per_object(RECORDS)[:-3],
    "truncated-pretty": json.dumps(RECORDS, indent=2).encode()[:-30],
    "truncated-minified": json.dumps(RECORDS).encode()[:-1],
    "garbage-line-in-the-middle": line_per_object(RECORDS).replace(
        json.dumps(RECORDS[2], ensure_ascii=False).encode(), b'{"id": nope}'
    ),
    "missing-comma-between-lines": line_per_object(RECORDS).replace(b"},\n", b"}\n", 1),
    "trailing-comma-before-close": line_per_object(RECORDS).replace(b"}\n]", b"},\n]"),
    "double-comma": line_per_object(RECORDS).replace(b"},\n", b"},,\n", 1),
    "unterminated-string": line_per_object(RECORDS).replace(b'"Caf', b'"Caf\n', 1),
    "top-level-object": json.dumps({"places": RECORDS}).encode(),
    "top-level-object-with-item-key": json.dumps({"item": RECORDS}, indent=2).encode(),
    "top-level-string": b'"not an array"',
    "top-level-number": b"42",
    "data-after-the-array": line_per_object(RECORDS) + b"[]\n",
    "data-after-minified-array": json.dumps(RECORDS).encode() + b" {}",
    "two-arrays-on-one-line": b"[] []",
    "empty-file": b"",
    "only-whitespace": b" \n\t\n",
    "invalid-utf8": line_per_object(RECORDS).replace("é".encode(), b"\xff\xfe", 1),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_given_a_file_that_is_not_one_valid_json_array_when_read_then_bad_archive_naming_it(
    tmp_path: Path, case: str, gz: bool
) -> None:
    """Given a truncated file, invalid JSON in the middle, a top-level value that is not an
    array, or data after the array, When every record is read, Then BadArchive naming the file
    (SPEC 11: 'truncated or invalid JSON → bad_archive naming the file')."""
    data = write(tmp_path, f"items/2024-05.json{'.gz' if gz else ''}", BROKEN[case], gz=gz)

    refused(data)


def _gzipped_records(count: int = 20_000) -> bytes:
    rng = random.Random(5)
    values = [{"i": i, "v": rng.random()} for i in range(count)]
    return gzip.compress(line_per_object(values))


@pytest.mark.parametrize("offset", [20, 200, 1_000, 5_000, -20_000])
def test_given_a_gzip_file_with_damaged_bytes_when_read_then_bad_archive_naming_it(
    tmp_path: Path, offset: int
) -> None:
    """Given a gzipped week whose compressed bytes were flipped in transit, When read, Then
    BadArchive naming the file (SPEC 11: 'corrupt gzip → bad_archive naming the file')."""
    raw = bytearray(_gzipped_records())
    start = offset % len(raw)
    for index in range(start, start + 60):
        raw[index] ^= 0xA5
    data = write(tmp_path, "samples/2024-W07.json.gz", bytes(raw))

    refused(data)


def test_given_a_gzip_file_with_a_bad_checksum_when_read_then_bad_archive_naming_it(
    tmp_path: Path,
) -> None:
    """Given a gzipped week whose trailing CRC does not match, When read, Then BadArchive."""
    raw = bytearray(_gzipped_records(2_000))
    raw[-6] ^= 0xFF
    data = write(tmp_path, "samples/2024-W07.json.gz", bytes(raw))

    refused(data)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_given_a_truncated_gzip_file_when_read_then_bad_archive_naming_it(
    tmp_path: Path, keep: float
) -> None:
    """Given a gzipped week cut short (an interrupted copy), When read, Then BadArchive."""
    raw = _gzipped_records()
    data = write(tmp_path, "samples/2024-W07.json.gz", raw[: int(len(raw) * keep)])

    refused(data)


def test_given_a_gzip_member_expanding_past_the_ratio_when_read_then_bad_archive_naming_it(
    tmp_path: Path,
) -> None:
    """Given a small .json.gz that expands far past 100:1 (a valid but enormous array of the
    same record), When read, Then BadArchive naming the file, long before it is all inflated."""
    content = b"[\n" + b'{"a":1},\n' * 3_000_000 + b'{"a":1}\n]\n'
    packed = gzip.compress(content, compresslevel=9)
    assert len(content) / len(packed) > 200
    data = write(tmp_path, "samples/2024-W09.json.gz", packed)

    message = refused(data)

    assert "bomb" in message or "limit" in message


# --- metadata.json --------------------------------------------------------------------------


def _metadata(tmp_path: Path, content: Any) -> Path:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    (tmp_path / "metadata.json").write_bytes(raw)
    return tmp_path


@pytest.mark.parametrize("version", ["1.2.0", "2.4.0", "2.0", "1", "2.10.3"])
def test_given_a_schema_version_of_major_one_or_two_when_checked_then_accepted(
    tmp_path: Path, version: str
) -> None:
    """Given metadata.json with schemaVersion of major 1 or 2, When checked, Then the metadata
    comes back as written."""
    metadata = {"schemaVersion": version, "exportMode": "bucketed", "exportType": "full"}

    assert check_metadata(_metadata(tmp_path, metadata)) == metadata


@pytest.mark.parametrize("version", ["3.0.0", "0.9.1", "10.1.0"])
def test_given_a_schema_version_of_another_major_when_checked_then_unsupported_version(
    tmp_path: Path, version: str
) -> None:
    """Given schemaVersion 3.0.0 (or 0.x, 10.x), When checked, Then UnsupportedVersion naming
    the version (SPEC 11: major not 1 or 2 → unsupported_version)."""
    with pytest.raises(UnsupportedVersion) as caught:
        check_metadata(_metadata(tmp_path, {"schemaVersion": version}))

    assert caught.value.code == "unsupported_version"
    assert version in caught.value.message


def test_given_no_metadata_json_when_checked_then_bad_archive(tmp_path: Path) -> None:
    """Given an archive folder without metadata.json, When checked, Then BadArchive naming it."""
    (tmp_path / "places").mkdir()

    with pytest.raises(BadArchive) as caught:
        check_metadata(tmp_path)

    assert "metadata.json" in caught.value.message


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"schemaVersion": None},
        {"schemaVersion": 2},
        {"schemaVersion": 2.4},
        {"schemaVersion": ""},
        {"schemaVersion": "two"},
        {"schemaVersion": "v2.4.0"},
        {"schemaVersion": "2.x"},
        {"schemaVersion": ["2.4.0"]},
        ["schemaVersion", "2.4.0"],
        b"{not json",
        b"",
    ],
    ids=[
        "missing",
        "null",
        "number",
        "float",
        "empty",
        "word",
        "v-prefix",
        "x-minor",
        "list",
        "not-an-object",
        "invalid-json",
        "empty-file",
    ],
)
def test_given_a_missing_or_garbage_schema_version_when_checked_then_bad_archive(
    tmp_path: Path, content: Any
) -> None:
    """Given metadata.json without a readable schemaVersion (or not a JSON object at all),
    When checked, Then BadArchive naming metadata.json."""
    with pytest.raises(BadArchive) as caught:
        check_metadata(_metadata(tmp_path, content))

    assert caught.value.code == "bad_archive"
    assert "metadata.json" in caught.value.message


# --- manifest.json --------------------------------------------------------------------------


def _archive(tmp_path: Path) -> tuple[Path, list[DataFile]]:
    """An archive folder with three data files and a manifest that matches them."""
    root = tmp_path / "export"
    files = {
        "places/0.json": line_per_object(RECORDS[:2]),
        "items/2024-05.json": line_per_object([]),
        "samples/2024-W19.json.gz": gzip.compress(line_per_object(RECORDS)),
    }
    entries = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        entries.append(
            {
                "path": relative,
                "records": {"places": 2, "items": 0, "samples": 5}[relative.split("/")[0]],
                "bytes": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
    (root / "metadata.json").write_text(json.dumps({"schemaVersion": "2.4.0"}))
    (root / "manifest.json").write_text(json.dumps({"files": entries}))
    found, _ = data_files(root)
    return root, found


def test_given_a_manifest_matching_every_file_when_verified_then_records_per_file(
    tmp_path: Path,
) -> None:
    """Given manifest.json listing every data file with its size and sha256, When verified,
    Then the record counts per file come back."""
    root, files = _archive(tmp_path)

    assert verify_manifest(root, files) == {
        "places/0.json": 2,
        "items/2024-05.json": 0,
        "samples/2024-W19.json.gz": 5,
    }


@pytest.mark.parametrize("change", ["one-byte-flipped", "same-size-other-bytes", "appended"])
def test_given_a_file_that_differs_from_the_manifest_when_verified_then_bad_archive_naming_it(
    tmp_path: Path, change: str
) -> None:
    """Given a data file changed after the manifest was written, When verified, Then
    BadArchive naming that file (SPEC 11: checksum mismatch → bad_archive naming the file)."""
    root, files = _archive(tmp_path)
    path = root / "places/0.json"
    raw = bytearray(path.read_bytes())
    if change == "one-byte-flipped":
        raw[10] ^= 0x01
    elif change == "same-size-other-bytes":
        raw = bytearray(raw.replace(b"Home", b"Hame").replace(b"51.5", b"51.6"))
    else:
        raw += b"\n"
    path.write_bytes(bytes(raw))

    with pytest.raises(BadArchive) as caught:
        verify_manifest(root, files)

    assert "places/0.json" in caught.value.message


def test_given_a_listed_file_missing_from_the_archive_when_verified_then_bad_archive_naming_it(
    tmp_path: Path,
) -> None:
    """Given a manifest listing a file that is not in the archive, When verified, Then
    BadArchive naming the missing file."""
    root, files = _archive(tmp_path)
    (root / "items/2024-05.json").unlink()
    files, _ = data_files(root)

    with pytest.raises(BadArchive) as caught:
        verify_manifest(root, files)

    assert "items/2024-05.json" in caught.value.message


def test_given_a_data_file_not_in_the_manifest_when_verified_then_bad_archive_naming_it(
    tmp_path: Path,
) -> None:
    """Given a data file that the manifest does not list (added afterwards), When verified,
    Then BadArchive naming it."""
    root, _ = _archive(tmp_path)
    (root / "items/2024-06.json").write_bytes(line_per_object(RECORDS))
    files, _ = data_files(root)

    with pytest.raises(BadArchive) as caught:
        verify_manifest(root, files)

    assert "items/2024-06.json" in caught.value.message


def test_given_no_manifest_when_verified_then_none(tmp_path: Path) -> None:
    """Given an archive without manifest.json (the Arc apps write none), When verified, Then
    None: nothing to check, and no error."""
    root, files = _archive(tmp_path)
    (root / "manifest.json").unlink()

    assert verify_manifest(root, files) is None


@pytest.mark.parametrize(
    "content",
    [b"{broken", b"[]", b'{"files": {}}', b'{"files": [{"records": 1}]}', b'{"files": [3]}'],
    ids=["invalid-json", "array", "files-not-a-list", "entry-without-path", "entry-not-object"],
)
def test_given_a_malformed_manifest_when_verified_then_bad_archive_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    """Given a manifest.json that is not the documented shape, When verified, Then BadArchive
    naming manifest.json."""
    root, files = _archive(tmp_path)
    (root / "manifest.json").write_bytes(content)

    with pytest.raises(BadArchive) as caught:
        verify_manifest(root, files)

    assert "manifest.json" in caught.value.message


# --- which files are data -------------------------------------------------------------------


def test_given_unknown_files_when_listing_data_files_then_they_are_ignored_and_reported(
    tmp_path: Path,
) -> None:
    """Given an archive with its data files plus notes, stray names and unknown folders, When
    data files are listed, Then only the data files, in import order (places, items, samples;
    sorted), and every other name is reported as ignored."""
    root = tmp_path / "export"
    data = [
        "places/0.json",
        "places/F.json.gz",
        "places/a.json",
        "items/2024-05.json",
        "items/2023-12.json.gz",
        "samples/2024-W01.json.gz",
        "samples/2020-W53.json",
    ]
    stray = [
        "places/notes.txt",
        "places/10.json",
        "items/2024-5.json",
        "items/2024-05.csv",
        "samples/2024-01.json",
        "samples/.DS_Store",
    ]
    for relative in data + stray:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"[]")
    (root / "samples" / "old").mkdir()
    (root / "metadata.json").write_text("{}")
    (root / "manifest.json").write_text('{"files": []}')
    (root / "README.md").write_text("hello")
    (root / "photos").mkdir()

    found, ignored = data_files(root)

    assert [(f.kind, f.relative) for f in found] == [
        ("places", "places/0.json"),
        ("places", "places/F.json.gz"),
        ("places", "places/a.json"),
        ("items", "items/2023-12.json.gz"),
        ("items", "items/2024-05.json"),
        ("samples", "samples/2020-W53.json"),
        ("samples", "samples/2024-W01.json.gz"),
    ]
    assert all(f.path == root / f.relative for f in found)
    assert sorted(ignored) == sorted([*stray, "samples/old", "README.md", "photos"])


# --- record_blocks: the import's block reader gives what records() gives ------------------


def _flatten(blocks: Any) -> list[tuple[int, Any]]:
    """(index, value) of every record the blocks hold, checking each block's first index."""
    out: list[tuple[int, Any]] = []
    for start, rows, values in blocks:
        assert start == len(out)
        out += list(enumerate(rows if rows is not None else values, start))
    return out


def _typed(accept: bool) -> Any:
    """A typed decoder that takes every block (its values, parsed) or none."""

    def typed(block: bytes, start: int) -> list[Any] | None:
        if not accept:
            return None
        try:
            values = json.loads(block)
        except ValueError:
            return None
        return values if all(isinstance(v, dict) for v in values) else None

    return typed


def _blocks_of(data: DataFile, typed: Any) -> list[tuple[int, Any]]:
    return _flatten(record_blocks(data, max_ratio=RATIO, typed=typed))


@pytest.mark.parametrize("accept", [False, True], ids=["record-by-record", "typed"])
@pytest.mark.parametrize("block", [1, 64, 1024 * 1024], ids=["tiny", "small", "default"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_given_any_layout_when_read_in_blocks_then_the_records_of_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    layout: str,
    gz: bool,
    block: int,
    accept: bool,
) -> None:
    """Given any valid layout and any block size, When read in blocks (typed or not), Then
    exactly the (index, record) pairs `records` yields: a block cut inside a pretty-printed
    object hands over to `records` from the first record it did not deliver."""
    monkeypatch.setattr("shared.archive.reader.BLOCK", block)
    suffix = ".json.gz" if gz else ".json"
    data = write(tmp_path, f"places/0{suffix}", LAYOUTS[layout], gz=gz)

    assert _blocks_of(data, _typed(accept)) == read(data) == list(enumerate(RECORDS))


BROKEN_AT_A_CUT = {
    **BROKEN,
    "comma-first": b"[\n,\n" + line_per_object(RECORDS)[2:],
    "comma-alone-on-a-line": line_per_object(RECORDS).replace(b"},\n", b"},\n,\n", 1),
    "trailing-comma-then-blank-lines": line_per_object(RECORDS).replace(b"}\n]", b"},\n\n \n]"),
}


@pytest.mark.parametrize("block", [1, 64, 1024 * 1024], ids=["tiny", "small", "default"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("case", list(BROKEN_AT_A_CUT))
def test_given_a_broken_file_when_read_in_blocks_then_the_records_and_error_of_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, gz: bool, block: int
) -> None:
    """Given a broken file, When read in blocks, Then the records before the damage that
    `records` yields, and then the same BadArchive, word for word."""
    monkeypatch.setattr("shared.archive.reader.BLOCK", block)
    content = BROKEN_AT_A_CUT[case]
    data = write(tmp_path, f"items/2024-05.json{'.gz' if gz else ''}", content, gz=gz)
    expected: list[tuple[int, Any]] = []
    with pytest.raises(BadArchive) as plain:
        for pair in records(data, max_ratio=RATIO):
            expected.append(pair)
    got: list[tuple[int, Any]] = []
    with pytest.raises(BadArchive) as blocked:
        for start, _, values in record_blocks(data, max_ratio=RATIO, typed=_typed(False)):
            got += list(enumerate(values or [], start))

    assert str(blocked.value) == str(plain.value)
    assert got == expected


def test_given_an_array_element_cut_by_a_block_when_read_then_records_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given elements that are arrays spread over lines (a cut inside one still parses as
    an array), When read in blocks, Then the elements as `records` yields them, whole."""
    monkeypatch.setattr("shared.archive.reader.BLOCK", 8)
    values = [RECORDS[0], [1, 2, 3], RECORDS[1]]
    content = b"[\n" + json.dumps(values[0]).encode() + b",\n[1,\n2,\n3],\n"
    content += json.dumps(values[2]).encode() + b"\n]\n"
    data = write(tmp_path, "places/2.json", content)

    assert _blocks_of(data, _typed(False)) == read(data) == list(enumerate(values))


@pytest.mark.parametrize("pretty", [False, True], ids=["one-object-line", "whole-file-one-line"])
def test_given_a_line_longer_than_four_megabytes_when_read_in_blocks_then_every_record(
    tmp_path: Path, pretty: bool
) -> None:
    """Given a 5 MB line (one object, or the whole array), When read in blocks, Then every
    record whole, as `records` yields them (no block grows past the line limit)."""
    big = {"id": PLACE_ID.format(1), "name": "x" * (5 * 1024 * 1024)}
    values = [RECORDS[0], big, RECORDS[2]]
    content = (
        json.dumps(values, separators=(",", ":")).encode() if pretty else line_per_object(values)
    )
    data = write(tmp_path, "places/1.json", content)

    assert _blocks_of(data, _typed(True)) == read(data) == list(enumerate(values))
