"""Safe unpacking of an uploaded archive (zip, tar, tar.gz) into a work folder (SPEC 11).

Everything is checked before a byte is extracted: member names may not be absolute or
climb out with `..`; links, devices and other special members are refused; the
expanded size and the compression ratio must stay under their limits (decompression
bombs). Extraction then counts the bytes it actually writes, so a member that lies about
its size is caught too.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from shared.errors import BadArchive

MAX_MEMBERS = 100_000
# Read errors that mean a damaged archive (write errors stay OSError: a storage problem).
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
# Below this size a member's own ratio is not judged: tiny files compress wildly.
RATIO_FLOOR_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """How big an archive may expand, and how compressed it may be."""

    max_expanded_bytes: int
    max_ratio: float


@dataclass(frozen=True, slots=True)
class Member:
    """A regular file to extract: its safe relative path and declared size."""

    path: PurePosixPath
    size: int
    compressed: int | None  # zip only: the member's compressed size


def safe_path(name: str) -> PurePosixPath:
    """The member name as a relative path inside the folder, or BadArchive."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise BadArchive(f"archive member {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(cleaned).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadArchive(f"archive member {name!r} escapes the archive folder")
    if not parts:
        raise BadArchive(f"archive member {name!r} has no name")
    return PurePosixPath(*parts)


def _check_running_total(total: int, upload_bytes: int, limits: Limits) -> None:
    if total > limits.max_expanded_bytes:
        raise BadArchive(
            f"archive expands past the limit of {limits.max_expanded_bytes} bytes"
            " (decompression bomb?)"
        )
    if total > RATIO_FLOOR_BYTES and total / max(1, upload_bytes) > limits.max_ratio:
        raise BadArchive(
            f"archive expands more than {limits.max_ratio:.0f}:1, over the limit"
            " (decompression bomb?)"
        )


def _check_totals(members: list[Member], upload_bytes: int, limits: Limits) -> None:
    if len(members) > MAX_MEMBERS:
        raise BadArchive(f"archive has more than {MAX_MEMBERS} members")
    _check_running_total(sum(m.size for m in members), upload_bytes, limits)
    for member in members:
        if (
            member.compressed is not None
            and member.size > RATIO_FLOOR_BYTES
            and member.size / max(1, member.compressed) > limits.max_ratio
        ):
            ratio = member.size / max(1, member.compressed)
            raise BadArchive(
                f"archive member {member.path} expands {ratio:.0f}:1, over the limit of"
                f" {limits.max_ratio:.0f}:1 (decompression bomb?)"
            )


# --- zip ----------------------------------------------------------------------------------


def _zip_members(archive: zipfile.ZipFile) -> list[Member]:
    members = []
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise BadArchive(f"archive member {info.filename!r} is encrypted")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise BadArchive(f"archive member {info.filename!r} is a link")
        # Zips written without Unix modes carry no file-type bits: those are plain files.
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise BadArchive(f"archive member {info.filename!r} is not a regular file")
        if info.is_dir() or kind == stat.S_IFDIR:
            _check_dir_name(info.filename)
            continue
        members.append(Member(safe_path(info.filename), info.file_size, info.compress_size))
    return members


def _check_dir_name(name: str) -> None:
    """A folder entry may be the archive's root ('.'), but may not escape it either."""
    if PurePosixPath(name.replace("\\", "/")).parts in ((), (".",)):
        return
    safe_path(name)


# --- tar ----------------------------------------------------------------------------------


def _tar_members(upload: Path, limits: Limits) -> list[Member]:
    """Read every header once (streaming, data skipped) and refuse anything unsafe.

    Sizes are added up header by header, so a bomb is refused as soon as its headers
    say so, before the rest of it is decompressed.
    """
    upload_bytes = upload.stat().st_size
    total = 0
    members = []
    try:
        with tarfile.open(upload, mode="r|*") as archive:
            for info in archive:
                if info.issym() or info.islnk():
                    raise BadArchive(f"archive member {info.name!r} is a link")
                if info.isdir():
                    _check_dir_name(info.name)
                    continue
                path = safe_path(info.name)
                if not info.isreg():
                    raise BadArchive(f"archive member {info.name!r} is not a regular file")
                members.append(Member(path, info.size, None))
                total += info.size
                _check_running_total(total, upload_bytes, limits)
                if len(members) > MAX_MEMBERS:
                    raise BadArchive(f"archive has more than {MAX_MEMBERS} members")
    except _DAMAGED as exc:
        raise BadArchive(f"the tar archive is damaged: {exc}") from None
    return members


def _is_tar(upload: Path) -> bool:
    try:
        with tarfile.open(upload, mode="r|*") as archive:
            return archive.next() is not None
    except (*_DAMAGED, OSError):
        return False


# --- extraction ---------------------------------------------------------------------------


def _copy_limited(
    source: IO[bytes], target: Path, *, declared: int, name: str, budget: list[int]
) -> None:
    written = 0
    with target.open("xb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > declared:
                raise BadArchive(f"archive member {name} is larger than it says")
            if budget[0] < 0:
                raise BadArchive("archive expands over the limit (decompression bomb?)")
            out.write(chunk)


def _targets(members: list[Member], dest: Path) -> Iterator[tuple[Member, Path]]:
    root = dest.resolve()
    files = {m.path for m in members}
    if len(files) != len(members):
        seen: set[PurePosixPath] = set()
        for member in members:
            if member.path in seen:
                raise BadArchive(f"archive member {member.path} appears twice")
            seen.add(member.path)
    for member in members:
        for parent in member.path.parents:
            if parent in files:
                raise BadArchive(f"archive member {parent} is both a file and a folder")
        target = (root / member.path).resolve()
        if not target.is_relative_to(root):
            raise BadArchive(f"archive member {member.path} escapes the archive folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        yield member, target


def unpack(upload: Path, dest: Path, *, limits: Limits) -> int:
    """Check, then extract `upload` into the empty folder `dest`; returns bytes written."""
    upload_bytes = upload.stat().st_size
    dest.mkdir(parents=True, exist_ok=True)
    budget = [limits.max_expanded_bytes]
    if zipfile.is_zipfile(upload):
        try:
            with zipfile.ZipFile(upload) as archive:
                members = _zip_members(archive)
                _check_totals(members, upload_bytes, limits)
                names = {safe_path(i.filename): i for i in archive.infolist() if not i.is_dir()}
                for member, target in _targets(members, dest):
                    with archive.open(names[member.path]) as source:
                        _copy_limited(
                            source,
                            target,
                            declared=member.size,
                            name=str(member.path),
                            budget=budget,
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise BadArchive(f"the zip archive is damaged: {exc}") from None
    elif _is_tar(upload):
        members = _tar_members(upload, limits)
        _check_totals(members, upload_bytes, limits)
        by_path = {m.path: (m, t) for m, t in _targets(members, dest)}
        try:
            with tarfile.open(upload, mode="r|*") as archive:
                for info in archive:
                    if not info.isreg():
                        continue
                    member, target = by_path[safe_path(info.name)]
                    extracted = archive.extractfile(info)
                    if extracted is None:
                        raise BadArchive(f"archive member {info.name!r} cannot be read")
                    source = extracted
                    _copy_limited(
                        source,
                        target,
                        declared=member.size,
                        name=str(member.path),
                        budget=budget,
                    )
        except _DAMAGED as exc:
            raise BadArchive(f"the tar archive is damaged: {exc}") from None
    else:
        raise BadArchive("the upload is not a zip or tar archive")
    return limits.max_expanded_bytes - budget[0]


def archive_root(folder: Path) -> Path:
    """The folder holding metadata.json: the top level, or its single sub-folder."""
    if (folder / "metadata.json").is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "metadata.json").is_file():
        return entries[0]
    raise BadArchive("the archive has no metadata.json (at its top or in one top folder)")


def clear(folder: Path) -> None:
    """Remove an extraction folder."""
    shutil.rmtree(folder, ignore_errors=True)
