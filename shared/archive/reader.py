"""Reading an unpacked archive (SPEC 4): metadata, manifest, and every record, streamed.

Data files are read as streams, never whole. The fast path handles the line-per-object
layout that Ferry and the Arc apps write: each line is parsed on its own with orjson.
Any other valid JSON array (pretty-printed, minified on one line, mixed) falls back to
ijson's C parser, which streams too. Gzip is recognised by its magic bytes, whatever the
file is called, and a gzipped member that expands past the ratio limit is refused.
"""

from __future__ import annotations

import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import ijson
import orjson
from isal import igzip
from isal.igzip_lib import IsalError

from shared.archive.unpack import RATIO_FLOOR_BYTES
from shared.errors import BadArchive, UnsupportedVersion

KINDS = ("places", "items", "samples")
SUPPORTED_MAJORS = (1, 2)
# A line longer than this is not a one-object line; the streaming parser takes over.
MAX_LINE = 4 * 1024 * 1024
_NAMES = {
    "places": re.compile(r"^[0-9A-Fa-f]\.json(\.gz)?$"),
    "items": re.compile(r"^\d{4}-\d{2}\.json(\.gz)?$"),
    "samples": re.compile(r"^\d{4}-W\d{2}\.json(\.gz)?$"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# isal declares IsalError loosely; it is an exception class (a damaged deflate stream).
_DAMAGED: tuple[type[BaseException], ...] = (
    EOFError,
    zlib.error,
    OSError,
    ValueError,
    cast(type[BaseException], IsalError),
)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One data file of the archive."""

    kind: str
    relative: str
    path: Path

    @property
    def size(self) -> int:
        """Its size as stored."""
        return self.path.stat().st_size


class _Counting(io.RawIOBase):
    """Counts decompressed bytes and stops a gzip member that expands too far."""

    def __init__(self, inner: Any, *, limit: int, name: str) -> None:
        self.inner = inner
        self.limit = limit
        self.name = name
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        size = len(data)
        self.count += size
        if self.count > self.limit:
            raise BadArchive(
                f"{self.name}: expands past the compression limit (decompression bomb?)"
            )
        buffer[:size] = data
        return size


def read_json_file(path: Path, relative: str) -> Any:
    """A small JSON document (metadata.json, manifest.json); BadArchive naming it if bad."""
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BadArchive(f"{relative}: not valid JSON ({exc})") from None


def check_metadata(root: Path) -> dict[str, Any]:
    """metadata.json, present and of a schema version Ferry reads (major 1 or 2)."""
    path = root / "metadata.json"
    if not path.is_file():
        raise BadArchive("the archive has no metadata.json")
    metadata = read_json_file(path, "metadata.json")
    if not isinstance(metadata, dict):
        raise BadArchive("metadata.json: must be a JSON object")
    version = metadata.get("schemaVersion")
    if not isinstance(version, str) or not re.match(r"^\d+(\.\d+)*$", version):
        raise BadArchive("metadata.json: schemaVersion is missing or not a version string")
    major = int(version.split(".")[0])
    if major not in SUPPORTED_MAJORS:
        raise UnsupportedVersion(
            f"metadata.json: schemaVersion {version} is not supported (majors 1 and 2 are)"
        )
    return metadata


def data_files(root: Path) -> tuple[list[DataFile], list[str]]:
    """The archive's data files in import order, and notes on files that were ignored."""
    found: list[DataFile] = []
    ignored: list[str] = []
    for kind in KINDS:
        folder = root / kind
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            relative = f"{kind}/{path.name}"
            if path.is_file() and _NAMES[kind].match(path.name):
                found.append(DataFile(kind, relative, path))
            else:
                ignored.append(relative)
    known = {"metadata.json", "manifest.json", *KINDS}
    ignored += sorted(p.name for p in root.iterdir() if p.name not in known)
    return found, ignored


def verify_manifest(root: Path, files: list[DataFile]) -> dict[str, int] | None:
    """Check every file against manifest.json (when present); returns records per file."""
    path = root / "manifest.json"
    if not path.is_file():
        return None
    manifest = read_json_file(path, "manifest.json")
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise BadArchive("manifest.json: must hold a 'files' list")
    listed: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise BadArchive("manifest.json: every entry needs a 'path'")
        listed[entry["path"]] = entry
    present = {f.relative: f for f in files}
    for relative, entry in listed.items():
        data = present.get(relative)
        if data is None:
            raise BadArchive(f"{relative}: listed in manifest.json but missing from the archive")
        size, digest = _digest(data.path)
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            raise BadArchive(f"{relative}: checksum does not match manifest.json")
    for relative in present:
        if relative not in listed:
            raise BadArchive(f"{relative}: not listed in manifest.json")
    return {p: int(e.get("records") or 0) for p, e in listed.items()}


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def _open(data: DataFile, max_ratio: float) -> io.BufferedReader:
    raw = data.path.open("rb")
    if raw.read(2) != _GZIP_MAGIC:
        raw.seek(0)
        return raw
    raw.seek(0)
    limit = max(RATIO_FLOOR_BYTES, int(data.size * max_ratio))
    counted = _Counting(igzip.IGzipFile(fileobj=raw, mode="rb"), limit=limit, name=data.relative)
    return io.BufferedReader(counted, buffer_size=1024 * 1024)


def records(data: DataFile, *, max_ratio: float) -> Iterator[tuple[int, Any]]:
    """(index, JSON value) of every element of the file's top-level array."""
    done = 0
    try:
        with _open(data, max_ratio) as stream:
            fast = _lines(stream, data.relative)
            for value in fast:
                if value is _FALLBACK:
                    break
                yield done, value
                done += 1
            else:
                return
        # Not one object per line after all: stream the whole file, skipping what was read.
        with _open(data, max_ratio) as stream:
            _expect_array(stream, data.relative)
            for index, value in enumerate(ijson.items(stream, "item", use_float=True)):
                if index >= done:
                    yield index, value
    except BadArchive:
        raise
    except ijson.JSONError as exc:
        raise BadArchive(f"{data.relative}: not a valid JSON array ({exc})") from None
    except _DAMAGED as exc:
        raise BadArchive(f"{data.relative}: damaged ({exc})") from None


T = TypeVar("T", bound=Sized)
# Bytes read at a time by `record_blocks`: ~2,000 samples.
BLOCK = 1024 * 1024
# Records per batch when `record_blocks` hands over to `records`.
VALUES_PER_BATCH = 2_000


def record_blocks(
    data: DataFile,
    *,
    max_ratio: float,
    typed: Callable[[bytes, int], T | None],
) -> Iterator[tuple[int, T | None, list[Any] | None]]:
    """The file's records in blocks: (index of the first, typed rows, JSON values).

    A line-per-object file is cut at line ends into blocks of about `BLOCK` bytes, each
    made a JSON array and handed to `typed(array, first index)`; its rows come back in
    `typed rows` when every record of the block decoded there, else the block's values
    (orjson) come back for a record-by-record decode. Where a block is not a JSON array
    of objects (another layout, a syntax error, truncation, data after the end), the rest
    of the file is read by `records` from that record on, so what is reported, and
    where, is what `records` says.
    """
    done = 0
    try:
        with _open(data, max_ratio) as stream:
            for block in _blocks(stream):
                if block is None:
                    break
                rows = typed(block, done)
                if rows is not None:
                    yield done, rows, None
                    done += len(rows)
                    continue
                try:
                    values = orjson.loads(block)
                except orjson.JSONDecodeError:
                    break
                if not all(value.__class__ is dict for value in values):
                    break  # perhaps a block cut inside an array element: `records` decides
                yield done, None, values
                done += len(values)
            else:
                return
    except BadArchive:
        raise
    except _DAMAGED as exc:
        raise BadArchive(f"{data.relative}: damaged ({exc})") from None
    batch: list[Any] = []
    try:
        for index, value in records(data, max_ratio=max_ratio):
            if index < done:
                continue
            batch.append(value)
            if len(batch) == VALUES_PER_BATCH:
                yield done, None, batch
                done += len(batch)
                batch = []
    finally:
        # The records read before a BadArchive too, as `records` yields them.
        if batch:
            yield done, None, batch


def _blocks(stream: io.BufferedReader) -> Iterator[bytes | None]:
    """JSON arrays of whole lines of a line-per-object array; None: not that layout."""
    while True:
        raw = stream.readline(MAX_LINE)
        if not raw:
            yield None
            return
        first = raw.removeprefix(_BOM).strip()
        if first:
            break
    if first != b"[":
        yield None
        return
    carry = b""
    cut_before = False  # a comma was cut off: another element must follow
    while True:
        chunk = stream.read(BLOCK)
        if not chunk:
            # The rest of the array with its closing bracket (and nothing after it, or
            # the array is not valid).
            rest = carry.lstrip()
            yield b"[" + carry if rest and not (cut_before and rest[:1] == b"]") else None
            return
        carry += chunk
        cut = carry.rfind(b",\n")
        if cut < 0:
            if len(carry) > MAX_LINE:
                yield None
                return
            continue
        if not carry[:cut].strip():
            yield None  # a comma with no element before it
            return
        yield b"[" + carry[:cut] + b"]"
        carry = carry[cut + 2 :]
        cut_before = True


_FALLBACK = object()
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"  # RFC 8259 lets a reader ignore a leading UTF-8 byte order mark


def _expect_array(stream: io.BufferedReader, relative: str) -> None:
    """Refuse a file whose top-level value is not an array (ijson would yield nothing)."""
    if stream.peek(3)[:3] == _BOM:
        stream.read(3)
    while True:
        head = stream.peek(1)[:1]  # peek: the '[' stays for the parser
        if not head:
            raise BadArchive(f"{relative}: empty file, not a JSON array")
        if head not in _WHITESPACE:
            break
        stream.read(1)
    if head != b"[":
        raise BadArchive(f"{relative}: not a JSON array (the file must hold one array)")


def _lines(stream: io.BufferedReader, relative: str) -> Iterator[Any]:
    """Values of a line-per-object array; yields _FALLBACK when the layout is different."""
    while True:
        raw = stream.readline(MAX_LINE)
        if not raw:
            raise BadArchive(f"{relative}: empty file, not a JSON array")
        first = raw.removeprefix(_BOM).strip()
        if first:
            break
    if first != b"[":
        yield _FALLBACK
        return
    # Every object but the last ends with a comma. Anything else (a missing or trailing
    # comma included) goes to the strict streaming parser, which names the error.
    comma_pending = None  # None: no object yet; True/False: did the last one end with ","
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            raise BadArchive(f"{relative}: ends before the array is closed (truncated?)")
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            yield _FALLBACK
            return
        text = line.strip()
        if not text:
            continue
        if text == b"]":
            if comma_pending:
                yield _FALLBACK
                return
            while rest := stream.read(1024 * 1024):
                if rest.strip():
                    raise BadArchive(f"{relative}: data after the end of the array")
            return
        if comma_pending is False:
            yield _FALLBACK
            return
        comma_pending = text.endswith(b",")
        if comma_pending:
            text = text[:-1]
        if text.startswith(b"{") and text.endswith(b"}"):
            try:
                yield orjson.loads(text)
                continue
            except orjson.JSONDecodeError:
                pass
        yield _FALLBACK
        return
