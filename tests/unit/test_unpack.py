"""Safe unpacking of uploaded archives (SPEC 11): what lands in the work folder, and what never
lands anywhere.

Every archive is built here, in `tmp_path`, byte for byte: zips through `ZipInfo` (so member
modes are explicit), tars through `TarInfo` (links, devices and fifos without touching the
file system). After every refusal the test looks at the whole of `tmp_path`: nothing may have
been written outside the destination folder.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from shared.archive.unpack import Limits, archive_root, unpack
from shared.errors import BadArchive

LIMITS = Limits(max_expanded_bytes=64 * 1024 * 1024, max_ratio=100.0)
MB = 1024 * 1024
METADATA = b'{"schemaVersion": "2.4.0", "exportMode": "bucketed"}'
PLACES = b'[\n{"id": "0A1B2C3D-0000-4000-8000-000000000001", "name": "Home"}\n]\n'
SAMPLES_GZ = gzip.compress(b"[\n]\n")
# An archive's files as (member path inside the archive folder, bytes).
ARCHIVE_FILES = (
    ("metadata.json", METADATA),
    ("places/0.json", PLACES),
    ("samples/2024-W01.json.gz", SAMPLES_GZ),
)


# --- building archives ---------------------------------------------------------------------


def zip_info(
    name: str, *, mode: int = stat.S_IFREG | 0o644, deflate: bool = True
) -> zipfile.ZipInfo:
    """A zip entry with an explicit Unix mode (what most zip tools write)."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix: the high 16 bits of external_attr hold st_mode
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    return info


def make_zip(
    path: Path,
    members: list[tuple[str, bytes]],
    *,
    deflate: bool = True,
    dirs: tuple[str, ...] = (),
) -> Path:
    """A zip of regular files (and directory entries `dirs`)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in dirs:
            archive.writestr(zip_info(name, mode=stat.S_IFDIR | 0o755, deflate=False), b"")
        for name, data in members:
            archive.writestr(zip_info(name, deflate=deflate), data)
    return path


def tar_entry(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    """A tar header (regular file, folder, link, device…) and its data."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_700_000_000
    return info, data


def make_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]], *, gz: bool = False) -> Path:
    """A tar (or tar.gz) of TarInfo entries: (info, data) pairs."""
    with tarfile.open(path, mode="w:gz" if gz else "w") as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def files_under(folder: Path) -> set[str]:
    """Every file, link and folder under `folder`, as relative paths."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(upload: Path, tmp_path: Path, *, limits: Limits = LIMITS) -> str:
    """Unpack `upload` into tmp_path/dest expecting BadArchive; returns its message.

    Also asserts that nothing was written anywhere in tmp_path outside `dest`.
    """
    dest = tmp_path / "dest"
    before = files_under(tmp_path)
    with pytest.raises(BadArchive) as caught:
        unpack(upload, dest, limits=limits)
    outside = {
        p for p in files_under(tmp_path) - before if p != "dest" and not p.startswith("dest/")
    }
    assert outside == set(), f"written outside the destination: {outside}"
    assert caught.value.code == "bad_archive"
    return caught.value.message


def tree(dest: Path) -> dict[str, bytes]:
    """Regular files under dest with their contents."""
    return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def incompressible(size: int, seed: int = 7) -> bytes:
    """Bytes deflate cannot shrink (deterministic)."""
    return random.Random(seed).randbytes(size)


def extracted(tmp_path: Path) -> dict[str, bytes]:
    """What an unpack into tmp_path/dest left there (nothing when it never started)."""
    dest = tmp_path / "dest"
    return tree(dest) if dest.exists() else {}


# --- what a person uploads: zip, tar, tar.gz, with or without a folder ----------------------


@pytest.mark.parametrize("folder", ["", "export-2024-05-01-120000/"])
def test_given_a_zip_with_or_without_a_top_folder_when_unpacked_then_files_land_and_root_is_found(
    tmp_path: Path, folder: str
) -> None:
    """Given a zip of an archive (files at the top, or in one folder as Ferry writes it),
    When unpacked, Then every file is there byte for byte and archive_root finds metadata.json."""
    members = [(folder + name, data) for name, data in ARCHIVE_FILES]
    dirs = (folder,) if folder else ()
    upload = make_zip(tmp_path / "upload.zip", members, dirs=dirs)
    dest = tmp_path / "dest"

    written = unpack(upload, dest, limits=LIMITS)

    assert tree(dest) == {folder + name: data for name, data in ARCHIVE_FILES}
    assert written == sum(len(data) for _, data in ARCHIVE_FILES)
    root = archive_root(dest)
    assert root == (dest / folder.rstrip("/") if folder else dest)
    assert (root / "metadata.json").read_bytes() == METADATA


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("folder", ["", "export-2024-05-01-120000/"])
def test_given_a_tar_with_or_without_a_top_folder_when_unpacked_then_files_land_and_root_is_found(
    tmp_path: Path, gz: bool, folder: str
) -> None:
    """Given a tar or tar.gz of an archive, When unpacked, Then every file is there and the
    root holding metadata.json is found."""
    entries = [tar_entry(folder, kind=tarfile.DIRTYPE)] if folder else []
    entries += [tar_entry(folder + "places", kind=tarfile.DIRTYPE)]
    entries += [tar_entry(folder + name, data) for name, data in ARCHIVE_FILES]
    upload = make_tar(tmp_path / "upload.tar", entries, gz=gz)
    dest = tmp_path / "dest"

    unpack(upload, dest, limits=LIMITS)

    assert tree(dest) == {folder + name: data for name, data in ARCHIVE_FILES}
    root = archive_root(dest)
    assert (root / "metadata.json").read_bytes() == METADATA


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
def test_given_a_tar_made_with_tar_dash_c_folder_dot_when_unpacked_then_its_files_land(
    tmp_path: Path, gz: bool
) -> None:
    """Given `tar -C export -czf upload.tar.gz .` (GNU tar writes a './' folder entry first,
    then './metadata.json', …), When unpacked, Then the archive's files land at the top.

    This is the most common way to make a tarball of a folder's contents."""
    entries = [tar_entry("./", kind=tarfile.DIRTYPE), tar_entry("./places/", kind=tarfile.DIRTYPE)]
    entries += [tar_entry("./" + name, data) for name, data in ARCHIVE_FILES]
    upload = make_tar(tmp_path / "upload.tar", entries, gz=gz)
    dest = tmp_path / "dest"

    unpack(upload, dest, limits=LIMITS)

    assert tree(dest) == dict(ARCHIVE_FILES)
    assert archive_root(dest) == dest


def test_given_a_zip_written_by_pythons_writestr_when_unpacked_then_its_files_land(
    tmp_path: Path,
) -> None:
    """Given a zip made by Python's `ZipFile.writestr(name, data)` (permission bits 0o600 and no
    file-type bits in external_attr, as many scripts and tools write), When unpacked, Then the
    regular files are extracted (they are neither links nor devices)."""
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in ARCHIVE_FILES:
            archive.writestr(name, data)
    dest = tmp_path / "dest"

    unpack(upload, dest, limits=LIMITS)

    assert tree(dest) == dict(ARCHIVE_FILES)


def test_given_a_zip_from_a_dos_tool_with_no_unix_mode_when_unpacked_then_its_files_land(
    tmp_path: Path,
) -> None:
    """Given a zip whose entries carry no Unix mode at all (Windows and Java tools), When
    unpacked, Then the files are extracted."""
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for name, data in ARCHIVE_FILES:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 0
            info.external_attr = 0x20  # MS-DOS "archive" attribute, no Unix mode
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    dest = tmp_path / "dest"

    unpack(upload, dest, limits=LIMITS)

    assert tree(dest) == dict(ARCHIVE_FILES)


def test_given_a_folder_without_metadata_when_finding_the_root_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given an unpacked archive with no metadata.json at the top or in its one folder (or with
    two top folders), When the root is looked for, Then BadArchive naming metadata.json."""
    one = tmp_path / "one" / "export"
    (one / "places").mkdir(parents=True)
    (one / "places" / "0.json").write_bytes(PLACES)
    with pytest.raises(BadArchive, match=r"metadata\.json"):
        archive_root(tmp_path / "one")
    two = tmp_path / "two"
    for name in ("a", "b"):
        (two / name).mkdir(parents=True)
        (two / name / "metadata.json").write_bytes(METADATA)
    with pytest.raises(BadArchive, match=r"metadata\.json"):
        archive_root(two)


def test_given_a_macos_zip_with_a_resource_folder_when_finding_the_root_then_the_export_folder(
    tmp_path: Path,
) -> None:
    """Given a zip made by macOS Finder (the export folder plus `__MACOSX/`), When the root is
    looked for, Then it is the export folder."""
    members = [("export/" + name, data) for name, data in ARCHIVE_FILES]
    members.append(("__MACOSX/export/._metadata.json", b"\x00\x05\x16\x07"))
    upload = make_zip(tmp_path / "upload.zip", members)
    dest = tmp_path / "dest"

    unpack(upload, dest, limits=LIMITS)

    assert archive_root(dest) == dest / "export"


# --- members that would escape, or are not regular files -----------------------------------


ESCAPING_NAMES = [
    "../evil.json",
    "export/../../evil.json",
    "export/places/../../../evil.json",
    "..\\evil.json",
    "/etc/ferry-evil",
    "C:\\evil.json",
    "C:/evil.json",
    "\\\\server\\share\\evil.json",
]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_given_a_zip_member_escaping_the_folder_when_unpacked_then_bad_archive_and_nothing_written(
    tmp_path: Path, name: str
) -> None:
    """Given a zip with a member named `..`-wise or absolutely, When unpacked, Then BadArchive
    naming the member, and not a byte anywhere (the good members are not extracted either)."""
    upload = make_zip(tmp_path / "upload.zip", [*ARCHIVE_FILES, (name, b"owned")])

    message = refused(upload, tmp_path)

    assert repr(name) in message or name in message
    assert not (tmp_path / "evil.json").exists()
    assert extracted(tmp_path) == {}


def test_given_an_absolute_member_pointing_into_a_real_folder_when_unpacked_then_it_is_not_written(
    tmp_path: Path,
) -> None:
    """Given a tar and a zip whose member is the absolute path of a file next to the work folder,
    When unpacked, Then BadArchive and that file does not appear."""
    target = tmp_path / "outside" / "abs.json"
    target.parent.mkdir()
    for upload in (
        make_zip(tmp_path / "upload.zip", [(str(target), b"owned"), *ARCHIVE_FILES]),
        make_tar(tmp_path / "upload.tar", [tar_entry(str(target), b"owned")]),
    ):
        refused(upload, tmp_path)
        assert not target.exists()


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_given_a_tar_member_escaping_the_folder_when_unpacked_then_bad_archive_and_nothing_written(
    tmp_path: Path, name: str
) -> None:
    """Given a tar with a member named `..`-wise or absolutely, When unpacked, Then BadArchive
    and nothing is written outside the destination."""
    entries = [tar_entry(n, d) for n, d in ARCHIVE_FILES[:1]] + [tar_entry(name, b"owned")]
    upload = make_tar(tmp_path / "upload.tar", entries)

    refused(upload, tmp_path)

    assert not (tmp_path / "evil.json").exists()


def test_given_a_zip_symlink_member_when_unpacked_then_bad_archive_and_no_link_is_made(
    tmp_path: Path,
) -> None:
    """Given a zip holding a symlink (external_attr S_IFLNK) to a folder outside, followed by a
    file written 'through' it, When unpacked, Then BadArchive and nothing lands outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr(zip_info("metadata.json"), METADATA)
        archive.writestr(zip_info("places", mode=stat.S_IFLNK | 0o777), str(outside).encode())
        archive.writestr(zip_info("places/0.json"), PLACES)

    message = refused(upload, tmp_path)

    assert "link" in message
    assert list(outside.iterdir()) == []
    assert not any(p.is_symlink() for p in (tmp_path / "dest").rglob("*"))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE], ids=["symlink", "hardlink"])
def test_given_a_tar_link_member_when_unpacked_then_bad_archive_and_nothing_lands_outside(
    tmp_path: Path, kind: bytes
) -> None:
    """Given a tar holding a link to something outside (symbolic or hard), then a file written
    through it, When unpacked, Then BadArchive naming the link, and nothing outside changes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.json"
    victim.write_bytes(b"mine")
    link, _ = tar_entry("places", kind=kind)
    link.linkname = str(outside) if kind == tarfile.SYMTYPE else str(victim)
    entries = [tar_entry("metadata.json", METADATA), (link, b""), tar_entry("places/0.json", b"x")]
    upload = make_tar(tmp_path / "upload.tar", entries)

    message = refused(upload, tmp_path)

    assert "places" in message and "link" in message
    assert sorted(p.name for p in outside.iterdir()) == ["victim.json"]
    assert victim.read_bytes() == b"mine"


@pytest.mark.parametrize(
    "kind",
    [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE],
    ids=["character-device", "block-device", "fifo"],
)
def test_given_a_tar_device_or_fifo_member_when_unpacked_then_bad_archive(
    tmp_path: Path, kind: bytes
) -> None:
    """Given a tar holding a device node or a fifo, When unpacked, Then BadArchive naming it."""
    special, _ = tar_entry("samples/2024-W01.json.gz", kind=kind)
    upload = make_tar(
        tmp_path / "upload.tar", [tar_entry("metadata.json", METADATA), (special, b"")]
    )

    message = refused(upload, tmp_path)

    assert "samples/2024-W01.json.gz" in message


def test_given_a_zip_member_with_a_device_mode_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given a zip entry whose Unix mode says fifo, When unpacked, Then BadArchive."""
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr(zip_info("metadata.json"), METADATA)
        archive.writestr(zip_info("places/0.json", mode=stat.S_IFIFO | 0o644), PLACES)

    assert "places/0.json" in refused(upload, tmp_path)


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize(
    "second",
    ["places/0.json", "./places//0.json"],
    ids=["same-name", "same-path-spelled-differently"],
)
def test_given_a_duplicate_member_when_unpacked_then_bad_archive(
    tmp_path: Path, fmt: str, second: str
) -> None:
    """Given a zip or tar with the same file twice (the second would silently win), When
    unpacked, Then BadArchive naming the file."""
    members = [("metadata.json", METADATA), ("places/0.json", PLACES), (second, b"[]")]
    if fmt == "zip":
        duplicate = second == "places/0.json"
        with pytest.warns(UserWarning) if duplicate else contextlib.nullcontext():
            upload = make_zip(tmp_path / "upload.zip", members)
    else:
        upload = make_tar(tmp_path / "upload.tar", [tar_entry(n, d) for n, d in members])

    assert "places/0.json" in refused(upload, tmp_path)


def test_given_a_file_and_a_folder_of_the_same_name_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given an archive holding `places` as a file and `places/0.json` below it (a collision no
    file system can hold), When unpacked, Then BadArchive (the archive is wrong, not the disk:
    an OSError here would be retried as a storage problem)."""
    members = [("metadata.json", METADATA), ("places", b"x"), ("places/0.json", PLACES)]
    zip_upload = make_zip(tmp_path / "upload.zip", members)
    tar_upload = make_tar(tmp_path / "upload.tar", [tar_entry(n, d) for n, d in members])

    for upload, dest in ((zip_upload, "dest-zip"), (tar_upload, "dest-tar")):
        with pytest.raises(BadArchive):
            unpack(upload, tmp_path / dest, limits=LIMITS)


def test_given_an_encrypted_zip_when_unpacked_then_bad_archive(tmp_path: Path) -> None:
    """Given a zip whose members are flagged encrypted (Ferry has no password), When unpacked,
    Then BadArchive, not an unexpected error."""
    upload = make_zip(tmp_path / "upload.zip", list(ARCHIVE_FILES))
    raw = bytearray(upload.read_bytes())
    # General purpose bit 0 (encrypted) in every local header and central directory entry.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.find(signature)
        while start != -1:
            raw[start + offset] |= 1
            start = raw.find(signature, start + 4)
    upload.write_bytes(bytes(raw))

    refused(upload, tmp_path)


# --- not an archive at all ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is not an archive\n" * 20,
        METADATA,
        gzip.compress(PLACES),
        b"\x00" * 1024,
        b"PK\x03\x04" + b"\x00" * 100,
    ],
    ids=["empty", "text", "json", "gzipped-json", "zeros", "zip-header-only"],
)
def test_given_something_that_is_not_a_zip_or_tar_when_unpacked_then_bad_archive(
    tmp_path: Path, content: bytes
) -> None:
    """Given an upload that is neither a zip nor a tar (nor a gzipped tar), When unpacked, Then
    BadArchive and nothing is extracted."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(content)

    refused(upload, tmp_path)

    assert extracted(tmp_path) == {}


def test_given_a_damaged_zip_when_unpacked_then_bad_archive(tmp_path: Path) -> None:
    """Given a zip whose compressed data was damaged in transit, When unpacked, Then
    BadArchive (the CRC or the deflate stream catches it)."""
    upload = make_zip(tmp_path / "upload.zip", [("metadata.json", METADATA * 200)])
    raw = bytearray(upload.read_bytes())
    data_start = 30 + len("metadata.json")
    for index in range(data_start + 5, data_start + 25):
        raw[index] ^= 0x5A
    upload.write_bytes(bytes(raw))

    refused(upload, tmp_path)


def test_given_a_truncated_tar_gz_when_unpacked_then_bad_archive(tmp_path: Path) -> None:
    """Given a tar.gz cut off half way (an interrupted copy), When unpacked, Then BadArchive."""
    entries = [tar_entry(n, d) for n, d in ARCHIVE_FILES]
    entries.append(tar_entry("samples/2024-W02.json", incompressible(200_000)))
    upload = make_tar(tmp_path / "upload.tar.gz", entries, gz=True)
    upload.write_bytes(upload.read_bytes()[: upload.stat().st_size // 2])

    refused(upload, tmp_path)


# --- decompression bombs --------------------------------------------------------------------


def test_given_an_archive_expanding_past_the_size_limit_when_unpacked_then_bad_archive_first(
    tmp_path: Path,
) -> None:
    """Given a zip whose members add up to more than max_expanded_bytes (each one small and
    incompressible), When unpacked, Then BadArchive before a byte is extracted."""
    members = [
        (f"samples/2024-W{week:02d}.json", incompressible(300_000, week)) for week in (1, 2, 3)
    ]
    upload = make_zip(tmp_path / "upload.zip", [("metadata.json", METADATA), *members])
    limits = Limits(max_expanded_bytes=800_000, max_ratio=100.0)

    message = refused(upload, tmp_path, limits=limits)

    assert "limit" in message
    assert extracted(tmp_path) == {}


def test_given_a_tar_expanding_past_the_size_limit_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given a plain tar whose files total more than max_expanded_bytes, When unpacked, Then
    BadArchive and nothing is extracted."""
    entries = [tar_entry("metadata.json", METADATA), tar_entry("big.json", incompressible(600_000))]
    upload = make_tar(tmp_path / "upload.tar", entries)

    refused(upload, tmp_path, limits=Limits(max_expanded_bytes=500_000, max_ratio=100.0))

    assert extracted(tmp_path) == {}


def test_given_a_zip_of_zeros_expanding_a_thousand_fold_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given a zip whose only data is 16 MB of zeros deflated (about 1000:1), under the size
    limit, When unpacked, Then BadArchive as a decompression bomb."""
    upload = make_zip(
        tmp_path / "upload.zip", [("metadata.json", METADATA), ("zeros.json", bytes(16 * MB))]
    )

    message = refused(upload, tmp_path)

    assert "bomb" in message


def test_given_one_member_compressed_over_the_ratio_when_unpacked_then_bad_archive_naming_it(
    tmp_path: Path,
) -> None:
    """Given a zip whose total ratio is modest (an incompressible stored member pads it) but one
    member expands about 1000:1, When unpacked, Then BadArchive naming that member."""
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr(zip_info("metadata.json"), METADATA)
        archive.writestr(zip_info("padding.bin", deflate=False), incompressible(MB))
        archive.writestr(zip_info("samples/2024-W01.json"), bytes(4 * MB))
    assert upload.stat().st_size > MB  # the whole expands about 5:1

    message = refused(upload, tmp_path)

    assert "samples/2024-W01.json" in message


def test_given_a_member_compressed_under_the_ratio_when_unpacked_then_it_is_extracted(
    tmp_path: Path,
) -> None:
    """Given a 2 MB member that compresses about 40:1 (ordinary, repetitive JSON compresses
    like this), When unpacked, Then it is extracted whole: the guard only stops bombs."""
    data = bytearray(2 * MB)
    noise = incompressible(2 * MB // 40)
    for start in range(0, len(noise), 1000):
        data[start * 40 : start * 40 + 1000] = noise[start : start + 1000]
    upload = make_zip(
        tmp_path / "upload.zip", [("metadata.json", METADATA), ("big.json", bytes(data))]
    )
    info = zipfile.ZipFile(upload).getinfo("big.json")
    assert 10 < info.file_size / info.compress_size < 100

    unpack(upload, tmp_path / "dest", limits=LIMITS)

    assert (tmp_path / "dest" / "big.json").read_bytes() == bytes(data)


def test_given_a_tar_gz_expanding_over_the_ratio_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given a tar.gz of 16 MB of zeros (about 1000:1), When unpacked, Then BadArchive as a
    decompression bomb and nothing is extracted."""
    entries = [tar_entry("metadata.json", METADATA), tar_entry("zeros.json", bytes(16 * MB))]
    upload = make_tar(tmp_path / "upload.tar.gz", entries, gz=True)

    message = refused(upload, tmp_path)

    assert "bomb" in message
    assert extracted(tmp_path) == {}


def _lying_zip(path: Path, data: bytes, *, declared: int, crc_of_prefix: bool) -> Path:
    """A zip whose one member says it expands to `declared` bytes but really holds `data`."""
    make_zip(path, [("metadata.json", data)])
    raw = bytearray(path.read_bytes())
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", raw, central + 24, declared)  # central directory: the same
    if crc_of_prefix:
        crc = zlib.crc32(data[:declared])
        struct.pack_into("<I", raw, local + 14, crc)
        struct.pack_into("<I", raw, central + 16, crc)
    path.write_bytes(bytes(raw))
    return path


def test_given_a_zip_member_declaring_fewer_bytes_than_it_holds_when_unpacked_then_bad_archive(
    tmp_path: Path,
) -> None:
    """Given a zip whose central directory says a member is 10 bytes while it inflates to
    100 000, When unpacked, Then the lie is caught during extraction: BadArchive, and no more
    than the declared 10 bytes were ever written."""
    upload = _lying_zip(tmp_path / "upload.zip", b"A" * 100_000, declared=10, crc_of_prefix=False)
    assert zipfile.ZipFile(upload).getinfo("metadata.json").file_size == 10

    refused(upload, tmp_path)

    written = tmp_path / "dest" / "metadata.json"
    assert not written.exists() or written.stat().st_size <= 10


def test_given_a_lying_zip_member_with_a_matching_crc_when_unpacked_then_never_past_its_size(
    tmp_path: Path,
) -> None:
    """Given a member declaring 10 bytes whose CRC matches its first 10 bytes (so the zip's own
    check passes) while it inflates to 100 000, When unpacked, Then no more than the declared
    10 bytes land, however the unpacker treats it."""
    upload = _lying_zip(tmp_path / "upload.zip", b"A" * 100_000, declared=10, crc_of_prefix=True)
    dest = tmp_path / "dest"

    with contextlib.suppress(BadArchive):
        unpack(upload, dest, limits=LIMITS)

    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= 10


def test_given_a_stream_yielding_more_than_the_declared_size_when_extracting_then_bad_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a zip reader that hands out more bytes than the entry declares (a lying member
    past the zip library's own checks), When unpacked, Then extraction counts what it writes
    and stops with BadArchive, no more than the declared size plus one read on disk."""
    upload = make_zip(tmp_path / "upload.zip", [("metadata.json", METADATA)])
    real_open = zipfile.ZipFile.open

    def open_more(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object) -> object:
        real_open(self, name, *args, **kwargs).close()  # type: ignore[arg-type]
        return io.BytesIO(METADATA + bytes(8 * MB))

    monkeypatch.setattr(zipfile.ZipFile, "open", open_more)

    message = refused(upload, tmp_path)

    assert "metadata.json" in message
    written = tmp_path / "dest" / "metadata.json"
    assert not written.exists() or written.stat().st_size <= len(METADATA)


def test_given_a_tar_gz_bomb_when_unpacked_then_refused_from_its_headers_not_after_inflating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a tar.gz whose member header declares 32 MB (zeros, ~1000:1) against a 1 MB limit,
    When unpacked, Then BadArchive, having inflated little more than the limit: a tar header
    states its member's size, so a bomb is known before its data is read. (Inflating first
    costs ~7 s of a worker per GB; a 2 GB upload of zeros holds ~2 TB.)"""
    entries = [tar_entry("metadata.json", METADATA), tar_entry("zeros.json", bytes(32 * MB))]
    upload = make_tar(tmp_path / "upload.tar.gz", entries, gz=True)
    inflated = [0]
    real_decompressobj = zlib.decompressobj

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def decompress(self, data: bytes, *args: Any) -> bytes:
            out = self.inner.decompress(data, *args)
            inflated[0] += len(out)
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(
        zlib, "decompressobj", lambda *a, **k: Counting(real_decompressobj(*a, **k))
    )

    refused(upload, tmp_path, limits=Limits(max_expanded_bytes=MB, max_ratio=100.0))

    assert inflated[0] < 4 * MB, f"inflated {inflated[0]} bytes before refusing"
