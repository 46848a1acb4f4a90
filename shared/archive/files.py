"""Writing archive files: JSON arrays of one object per line, gzipped or plain, hashed.

A `BucketWriter` takes newline-separated JSON objects exactly as COPY sends them and
turns them into a valid JSON array without parsing anything: each newline becomes a
separator. It hashes the bytes as stored (sha256 for manifest.json) while writing.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from isal import igzip

# isal at level 1 compresses several times faster than zlib at its default level 6;
# bench/export.py shows the export keeping pace with the server at this level.
GZIP_LEVEL = 1
# Rows are gathered up to this many bytes before one write: fewer, larger writes.
FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A finished data file as manifest.json lists it."""

    path: str
    records: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {
            "path": self.path,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


class _HashingFile:
    """A write-only file wrapper that counts and hashes what reaches the disk."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class BucketWriter:
    """Writes one bucket file (`places/A.json`, `samples/2024-W01.json.gz`, …)."""

    def __init__(self, root: Path, relative: str, *, gzip: bool) -> None:
        self.relative = relative
        self.path = root / relative
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name; renamed only once complete, so a folder never
        # holds a file that looks finished but is not.
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._raw = self._partial.open("wb")
        self._hashing = _HashingFile(self._raw)
        self._out: Any = (
            igzip.IGzipFile(fileobj=self._hashing, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
            if gzip
            else self._hashing
        )
        self._out.write(b"[\n")
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._separator = b""
        self.records = 0

    def write_lines(self, data: bytes) -> int:
        """Add newline-terminated JSON objects; returns how many records were flushed."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            return self.flush()
        return 0

    def flush(self) -> int:
        """Write what is gathered; returns the number of records written."""
        if not self._pending:
            return 0
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if not block:
            return 0
        count = block.count(b"\n")
        # Every object ends with a newline; the last one's separator waits for the next
        # block, or is dropped when the file closes.
        self._out.write(self._separator + block[:-1].replace(b"\n", b",\n"))
        self._separator = b",\n"
        self.records += count
        return count

    def close(self) -> FileEntry:
        """Finish the array, sync the file and move it to its final name."""
        self.flush()
        self._out.write(b"\n]\n")
        if self._out is not self._hashing:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._partial, self.path)
        return FileEntry(
            self.relative, self.records, self._hashing.size, self._hashing.digest.hexdigest()
        )

    def abort(self) -> None:
        """Drop a half-written file."""
        try:
            self._raw.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> BucketWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def write_zip(
    source: Path, folder_name: str, target: Path, *, check: Callable[[], None] | None = None
) -> int:
    """Zip `source` as `folder_name/…`; gzipped members are stored, the rest deflated.

    An empty folder gets an entry of its own: the Arc apps refuse an archive that lacks
    `places/`, `items/` or `samples/`, even an empty one. `check` runs before each
    member, so a cancel stops a long zip between files.
    """
    paths = sorted(source.rglob("*"))
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for path in paths:
            if check is not None:
                check()
            relative = path.relative_to(source).as_posix()
            if path.is_dir():
                if not any(path.iterdir()):
                    archive.write(path, f"{folder_name}/{relative}/")
                continue
            method = zipfile.ZIP_STORED if path.name.endswith(".gz") else zipfile.ZIP_DEFLATED
            archive.write(path, f"{folder_name}/{relative}", compress_type=method)
    return target.stat().st_size
