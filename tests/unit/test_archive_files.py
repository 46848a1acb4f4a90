"""Writing archive files (SPEC 4): valid JSON arrays, gzipped or plain, hashed; the zip."""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.archive.files import FLUSH_BYTES, BucketWriter, FileEntry, file_digest, write_zip


def line(obj: Any) -> bytes:
    """One record as COPY sends it: compact JSON and a newline."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def records(count: int, *, pad: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"{i:08X}", "n": i, "note": "x" * pad, "q": 'a "quoted" \\ value'}
        for i in range(count)
    ]


def read_array(path: Path) -> Any:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return json.loads(raw)


def check_entry(root: Path, entry: FileEntry, expected: list[dict[str, Any]]) -> None:
    """The file is a JSON array of exactly those records, and the entry describes it."""
    path = root / entry.path
    assert read_array(path) == expected
    assert entry.records == len(expected)
    data = path.read_bytes()
    assert entry.bytes == len(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert file_digest(path) == (entry.bytes, entry.sha256)
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".partial")]
    assert leftovers == []


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_given_one_line_per_write_when_closed_then_the_file_is_the_json_array(
    tmp_path: Path, gz: bool
) -> None:
    """Rows as COPY sends them, one at a time, become one valid JSON array."""
    rows = records(5)
    relative = "samples/2024-W01.json" + (".gz" if gz else "")
    writer = BucketWriter(tmp_path, relative, gzip=gz)
    for row in rows:
        writer.write_lines(line(row))

    entry = writer.close()

    assert entry.path == relative
    check_entry(tmp_path, entry, rows)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_given_many_lines_per_write_and_flushes_between_when_closed_then_valid(
    tmp_path: Path, gz: bool
) -> None:
    """Blocks of several rows, flushed at arbitrary points, join without a missing comma."""
    rows = records(10)
    writer = BucketWriter(tmp_path, "items/2024-01.json" + (".gz" if gz else ""), gzip=gz)
    writer.write_lines(b"".join(line(r) for r in rows[:3]))
    assert writer.flush() == 3
    writer.write_lines(line(rows[3]))
    writer.write_lines(b"".join(line(r) for r in rows[4:9]))
    assert writer.flush() == 6
    assert writer.flush() == 0
    writer.write_lines(line(rows[9]))

    check_entry(tmp_path, writer.close(), rows)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_given_writes_that_cross_the_flush_threshold_when_closed_then_valid(
    tmp_path: Path, gz: bool
) -> None:
    """Automatic flushes at 256 KiB fall between rows and keep the array valid and complete."""
    rows = records(1500, pad=400)  # ~650 KiB: several automatic flushes
    writer = BucketWriter(tmp_path, "samples/2024-W02.json" + (".gz" if gz else ""), gzip=gz)
    flushed = 0
    for row in rows:
        flushed += writer.write_lines(line(row))

    assert 0 < flushed < len(rows)  # some were written before close, some wait
    check_entry(tmp_path, writer.close(), rows)


def test_given_one_write_larger_than_the_threshold_when_closed_then_valid(
    tmp_path: Path,
) -> None:
    """A single block bigger than 256 KiB is written whole."""
    rows = records(1000, pad=400)
    block = b"".join(line(r) for r in rows)
    assert len(block) > FLUSH_BYTES
    writer = BucketWriter(tmp_path, "samples/2024-W03.json.gz", gzip=True)

    assert writer.write_lines(block) == len(rows)
    writer.write_lines(line({"id": "last"}))

    check_entry(tmp_path, writer.close(), [*rows, {"id": "last"}])


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_given_no_records_when_closed_then_the_file_is_an_empty_json_array(
    tmp_path: Path, gz: bool
) -> None:
    """An empty bucket is still valid JSON: `[]`."""
    writer = BucketWriter(tmp_path, "places/0.json" + (".gz" if gz else ""), gzip=gz)

    entry = writer.close()

    check_entry(tmp_path, entry, [])
    assert entry.records == 0


def test_given_an_empty_chunk_between_rows_when_closed_then_the_array_is_still_valid(
    tmp_path: Path,
) -> None:
    """An empty write adds nothing (no stray separator)."""
    writer = BucketWriter(tmp_path, "places/1.json", gzip=False)
    writer.write_lines(line({"id": 1}))
    writer.flush()
    writer.write_lines(b"")
    writer.flush()
    writer.write_lines(line({"id": 2}))

    check_entry(tmp_path, writer.close(), [{"id": 1}, {"id": 2}])


def test_given_a_gzipped_file_then_it_is_standard_gzip_with_one_object_per_line(
    tmp_path: Path,
) -> None:
    """Readers that stream line by line (and the Arc apps) read what Ferry writes."""
    rows = records(3)
    writer = BucketWriter(tmp_path, "samples/2024-W04.json.gz", gzip=True)
    for row in rows:
        writer.write_lines(line(row))
    writer.close()

    text = gzip.decompress((tmp_path / "samples/2024-W04.json.gz").read_bytes()).decode()
    lines = text.strip().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert [json.loads(item.rstrip(",")) for item in lines[1:-1]] == rows


def test_given_an_unfinished_file_then_only_a_partial_name_exists(tmp_path: Path) -> None:
    """A folder never holds a file that looks finished but is not."""
    writer = BucketWriter(tmp_path, "items/2024-02.json", gzip=False)
    writer.write_lines(line({"id": 1}))
    writer.flush()

    assert not (tmp_path / "items/2024-02.json").exists()
    writer.close()
    assert (tmp_path / "items/2024-02.json").exists()


def test_given_an_aborted_file_then_nothing_of_it_remains(tmp_path: Path) -> None:
    """Cancel or failure leaves no partial file behind (SPEC 7, 8)."""
    writer = BucketWriter(tmp_path, "samples/2024-W05.json.gz", gzip=True)
    writer.write_lines(b"".join(line(r) for r in records(2000, pad=200)))
    writer.flush()

    writer.abort()

    assert list((tmp_path / "samples").iterdir()) == []


def test_given_an_error_inside_the_with_block_then_the_file_is_dropped_and_the_error_kept(
    tmp_path: Path,
) -> None:
    """The context manager aborts on error and lets the error through."""
    with (
        pytest.raises(RuntimeError, match="boom"),
        BucketWriter(tmp_path, "places/A.json", gzip=False) as writer,
    ):
        writer.write_lines(line({"id": "A"}))
        writer.flush()
        raise RuntimeError("boom")

    assert list((tmp_path / "places").iterdir()) == []


def test_a_file_entry_is_listed_in_the_manifest_form(tmp_path: Path) -> None:
    """manifest.json lists `path`, `records`, `bytes` and `sha256` (SPEC 4)."""
    writer = BucketWriter(tmp_path, "places/B.json", gzip=False)
    writer.write_lines(line({"id": "B"}))
    entry = writer.close()

    listed = entry.as_dict()

    assert set(listed) == {"path", "records", "bytes", "sha256"}
    assert listed["path"] == "places/B.json"
    assert listed["records"] == 1
    assert (listed["bytes"], listed["sha256"]) == file_digest(tmp_path / "places/B.json")


_chunked = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {"id": st.uuids().map(str), "v": st.floats(allow_nan=False), "t": st.text()}
        ),
        max_size=6,
    ),
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=_chunked, gz=st.booleans(), flush_after=st.sets(st.integers(0, 8)))
def test_property_any_chunking_of_whole_lines_gives_the_same_array(
    tmp_path_factory: pytest.TempPathFactory,
    chunks: list[list[dict[str, Any]]],
    gz: bool,
    flush_after: set[int],
) -> None:
    """However the rows are grouped into writes and flushes, the file holds them all, in order."""
    root = tmp_path_factory.mktemp("bucket")
    writer = BucketWriter(root, "samples/2024-W10.json" + (".gz" if gz else ""), gzip=gz)
    for index, chunk in enumerate(chunks):
        if chunk:
            writer.write_lines(b"".join(line(r) for r in chunk))
        if index in flush_after:
            writer.flush()

    entry = writer.close()

    check_entry(root, entry, [r for chunk in chunks for r in chunk])


# --- the zip ------------------------------------------------------------------------------


def test_given_an_export_folder_when_zipped_then_gz_members_are_stored_and_others_deflated(
    tmp_path: Path,
) -> None:
    """The download holds the folder; gzipped members are not compressed again (SPEC 4)."""
    source = tmp_path / "work"
    (source / "places").mkdir(parents=True)
    (source / "samples").mkdir()
    files = {
        "metadata.json": b'{"schemaVersion": "2.4.0"}\n',
        "places/0.json": b"[\n" + b'{"id":"0"},\n' * 200 + b'{"id":"0"}\n]\n',
        "samples/2024-W01.json.gz": gzip.compress(b"[\n]\n"),
    }
    for relative, data in files.items():
        (source / relative).write_bytes(data)
    target = tmp_path / "export-2024-12-30-101500.zip"

    size = write_zip(source, "export-2024-12-30-101500", target)

    assert size == target.stat().st_size
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        members = {info.filename: info for info in archive.infolist()}
        assert set(members) == {f"export-2024-12-30-101500/{name}" for name in files}
        for relative, data in files.items():
            info = members[f"export-2024-12-30-101500/{relative}"]
            assert archive.read(info) == data
            expected = zipfile.ZIP_STORED if relative.endswith(".gz") else zipfile.ZIP_DEFLATED
            assert info.compress_type == expected
