"""Hostile and broken archives (SPEC 11): the import fails with the named code, nothing is
written outside the job's work folder, nothing partial stays, the account is untouched.

Import jobs run in-process through the job runner on real PostgreSQL and a real storage
folder (the upload is put where the web app would put it). Before each import the account
holds a seeded timeline; afterwards a digest of its places, items and samples must be the
same. The upload forms and their limits are driven through the real Flask app.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import stat
import tarfile
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.states import JobType
from shared.jobs.store import Job, JobStore
from shared.params import ImportArchiveParams
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from tests.polling import wait_for
from web import create_app

MB = 1024 * 1024
FOLDER = "export-2024-05-02-080000/"
ENDED = {"failed", "succeeded", "cancelled", "awaiting_confirmation"}
TABLES = ("places", "timeline_items", "samples")
# From the work folder storage/work/{job}/{attempt}/archive, five `..` reach tmp_path.
CLIMB = "../../../../../"


# --- a valid archive, and ways to break it ----------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4()).upper()


def json_array(values: list[Any]) -> bytes:
    """A JSON array, one object per line (what Ferry and the Arc apps write)."""
    return b"[\n" + b",\n".join(json.dumps(v).encode() for v in values) + b"\n]\n"


def valid_files() -> dict[str, bytes]:
    """A small, valid archive (SPEC 4): a place, a visit at it, two samples in the visit."""
    place_id, item_id = new_id(), new_id()
    saved = "2024-05-01T10:00:00Z"
    place = {
        "id": place_id,
        "name": "Home",
        "latitude": 51.5,
        "longitude": -0.12,
        "lastSaved": saved,
    }
    item = {
        "base": {
            "id": item_id,
            "isVisit": True,
            "startDate": "2024-05-01T08:00:00Z",
            "endDate": "2024-05-01T09:00:00Z",
            "lastSaved": saved,
        },
        "visit": {"itemId": item_id, "placeId": place_id, "latitude": 51.5, "longitude": -0.12},
    }
    samples = [
        {
            "id": new_id(),
            "date": f"2024-05-01T08:{minute:02d}:00Z",
            "timelineItemId": item_id,
            "latitude": 51.5,
            "longitude": -0.12,
            "lastSaved": saved,
        }
        for minute in (10, 20)
    ]
    return {
        "metadata.json": json.dumps(
            {
                "schemaVersion": "2.4.0",
                "exportId": str(uuid.uuid4()),
                "exportMode": "bucketed",
                "exportType": "full",
                "stats": {"placeCount": 1, "itemCount": 1, "sampleCount": 2},
            }
        ).encode(),
        f"places/{place_id[0]}.json": json_array([place]),
        "items/2024-05.json": json_array([item]),
        "samples/2024-W18.json.gz": gzip.compress(json_array(samples)),
    }


def with_manifest(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files plus a manifest.json that matches them as they are now."""
    records = {path: _count(path, data) for path, data in files.items() if "/" in path}
    entries = [
        {
            "path": path,
            "records": records[path],
            "bytes": len(files[path]),
            "sha256": hashlib.sha256(files[path]).hexdigest(),
        }
        for path in sorted(records)
    ]
    return {**files, "manifest.json": json.dumps({"files": entries}).encode()}


def _count(path: str, data: bytes) -> int:
    """Records in a data file; 0 for the broken ones (their manifest entry still hashes them)."""
    try:
        return len(json.loads(gzip.decompress(data) if path.endswith(".gz") else data))
    except (ValueError, OSError, EOFError, zlib.error):
        return 0


def zip_info(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 5, 2, 8, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def make_zip(
    files: dict[str, bytes], *, folder: str = FOLDER, extra: Sequence[zipfile.ZipInfo] = ()
) -> bytes:
    """A zip of the archive's files inside `folder` (as Ferry's download is), plus raw extras.

    `extra` entries carry their own data in `.comment` (popped before writing)."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)  # a duplicate name is the point of one case
        for path, data in files.items():
            archive.writestr(zip_info(folder + path), data)
        for info in extra:
            data, info.comment = info.comment, b""
            archive.writestr(info, data)
    return out.getvalue()


def raw_member(name: str, data: bytes, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zip_info(name, mode)
    info.comment = data
    return info


def tar_member(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = linkname
    info.mtime = 1_714_636_800
    return info, data


def make_tar(
    files: dict[str, bytes],
    *,
    folder: str = FOLDER,
    gz: bool = True,
    extra: Sequence[tuple[tarfile.TarInfo, bytes]] = (),
    dot_entries: bool = False,
) -> bytes:
    """A tar (or tar.gz) of the archive's files, as `tar -czf` makes it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w") as archive:
        entries = [tar_member("./", kind=tarfile.DIRTYPE)] if dot_entries else []
        entries += [tar_member(folder + path, data) for path, data in files.items()]
        for info, data in [*entries, *extra]:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def flip(data: bytes, start: int, count: int = 60) -> bytes:
    raw = bytearray(data)
    for index in range(start, start + count):
        raw[index] ^= 0xA5
    return bytes(raw)


# --- running imports in-process --------------------------------------------------------------


@dataclass
class Importer:
    """Runs import jobs for one account through the real runner, and inspects what they left."""

    settings: Settings
    engine: Engine
    account_id: str
    root: Path  # tmp_path: the storage folder and every "outside" target live under it
    live: MemoryLiveStore = field(default_factory=MemoryLiveStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.settings.storage_root)

    @property
    def store(self) -> JobStore:
        return JobStore(self.engine)

    def submit(self, upload: bytes, *, confirm: bool = True) -> str:
        """Store the upload where the web app puts it and create the job; returns its id."""
        job_id = str(uuid.uuid4())
        path = self.storage.upload_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(upload)
        params = ImportArchiveParams(confirm=confirm, filename="upload", bytes=len(upload))
        self.store.create(
            account_id=self.account_id,
            type=JobType.IMPORT_ARCHIVE,
            params=params.to_json(),
            job_id=job_id,
        )
        return job_id

    def run(self, job_id: str, *, settings: Settings | None = None) -> Job:
        """Run attempts (waiting out retry delays) until the job ends or waits."""
        runner = JobRunner(
            pipelines=PIPELINES,
            settings=settings or self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            name="test-worker",
        )

        def ended() -> Job | None:
            runner.run(job_id)
            job = self.store.get(job_id)
            return job if job.status in ENDED else None

        job = wait_for(ended, timeout=60, what=f"import {job_id} to end")
        assert job is not None
        return job

    def digest(self) -> dict[str, tuple[int, str]]:
        """Row count and an md5 over every row of the account's places, items and samples."""
        found = {}
        with raw_connection(self.settings.database_url) as conn:
            for table in TABLES:
                row = conn.execute(
                    f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '')"
                    f" FROM {table} t WHERE account_id = %s",
                    (self.account_id,),
                ).fetchone()
                assert row is not None
                found[table] = (int(row[0]), str(row[1]))
        return found

    def staging_tables(self) -> list[str]:
        with raw_connection(self.settings.database_url) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'ferry_staging'"
            ).fetchall()
        return [r[0] for r in rows]

    def paths(self) -> set[str]:
        """Every file, folder and link under tmp_path, relative to it."""
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}


@pytest.fixture
def importer(
    settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> Importer:
    """An account with a seeded timeline, and a way to import into it."""
    person, _ = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=2,
        samples_per_day=60,
        seed=4,
        start=datetime(2024, 4, 28, tzinfo=UTC),
    )
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.json").write_bytes(b"mine")
    return Importer(settings=settings, engine=engine, account_id=person.id, root=tmp_path)


# --- the control: a valid archive imports ---------------------------------------------------


CONTAINERS: dict[str, Callable[[dict[str, bytes]], bytes]] = {
    "zip-in-folder": make_zip,
    "zip-flat": lambda files: make_zip(files, folder=""),
    "tar.gz-in-folder": make_tar,
    "tar-flat": lambda files: make_tar(files, folder="", gz=False),
    "tar.gz-made-with-tar-C-dir-dot": lambda files: make_tar(files, folder="./", dot_entries=True),
}


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_given_a_valid_archive_when_imported_then_it_succeeds_and_the_account_changes(
    importer: Importer, container: str
) -> None:
    """Given a valid archive in each container a person may upload (the control for every
    refusal below), When imported with confirm, Then it succeeds, its records arrive, and the
    upload, work folder and staging tables are gone."""
    before = importer.digest()
    job_id = importer.submit(CONTAINERS[container](with_manifest(valid_files())))

    job = importer.run(job_id)

    assert job.status == "succeeded", job.error
    after = importer.digest()
    assert {t: after[t][0] - before[t][0] for t in TABLES} == {
        "places": 1,
        "timeline_items": 1,
        "samples": 2,
    }
    assert not importer.storage.upload_path(job_id).parent.exists()
    assert importer.storage.work_dirs(job_id) == {}
    assert importer.staging_tables() == []


# --- every hostile or broken archive --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A bad upload, the code SPEC 11 names for it, and the file its message must name."""

    build: Callable[[Path], bytes]
    code: str
    names: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)


def _replace(path: str, data: bytes, *, manifest: bool = True) -> Callable[[Path], bytes]:
    """A zip whose file `path` holds `data` (the manifest, when kept, matches it)."""

    def build(_: Path) -> bytes:
        files = valid_files()
        if path.startswith("places/"):
            path_now = next(p for p in files if p.startswith("places/"))
            del files[path_now]
        files[path] = data
        return make_zip(with_manifest(files) if manifest else files)

    return build


def _gz_bomb() -> bytes:
    return gzip.compress(b"[\n" + b'{"a":1},\n' * 2_000_000 + b'{"a":1}\n]\n', compresslevel=9)


def _samples_gz() -> bytes:
    rng = random.Random(9)
    values = [
        {"id": new_id(), "date": "2024-05-01T08:10:00Z", "latitude": rng.uniform(-90, 90)}
        for _ in range(3_000)
    ]
    return gzip.compress(json_array(values))


def _checksum_mismatch(_: Path) -> bytes:
    files = with_manifest(valid_files())
    files["items/2024-05.json"] = files["items/2024-05.json"].replace(b"08:00:00Z", b"07:00:00Z")
    return make_zip(files)


def _listed_but_missing(_: Path) -> bytes:
    files = with_manifest(valid_files())
    del files["items/2024-05.json"]
    return make_zip(files)


def _not_listed(_: Path) -> bytes:
    files = with_manifest(valid_files())
    files["items/2024-06.json"] = json_array([])
    return make_zip(files)


def _encrypted(_: Path) -> bytes:
    raw = bytearray(make_zip(valid_files()))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.find(signature)
        while start != -1:
            raw[start + offset] |= 1
            start = raw.find(signature, start + 4)
    return bytes(raw)


def _big_extra(_: Path) -> bytes:
    files = valid_files()
    files["notes.bin"] = random.Random(1).randbytes(400_000)
    return make_zip(files)


CASES: dict[str, Case] = {
    # not an archive at all
    "not-a-zip-or-tar": Case(lambda _: b"this is not an archive\n" * 50, "bad_archive"),
    "a-bare-json-file": Case(lambda _: valid_files()["metadata.json"], "bad_archive"),
    "a-truncated-zip": Case(lambda _: make_zip(valid_files())[:-200], "bad_archive"),
    "an-encrypted-zip": Case(_encrypted, "bad_archive"),
    # members escaping the work folder
    "zip-member-with-dotdot": Case(
        lambda _: make_zip(
            valid_files(), extra=[raw_member(CLIMB + "outside/evil.json", b"owned")]
        ),
        "bad_archive",
    ),
    "tar-member-with-dotdot": Case(
        lambda _: make_tar(
            valid_files(), extra=[tar_member(CLIMB + "outside/evil.json", b"owned")]
        ),
        "bad_archive",
    ),
    "zip-member-with-absolute-path": Case(
        lambda root: make_zip(
            valid_files(), extra=[raw_member(str(root / "outside" / "abs.json"), b"owned")]
        ),
        "bad_archive",
    ),
    "tar-member-with-absolute-path": Case(
        lambda root: make_tar(
            valid_files(), extra=[tar_member(str(root / "outside" / "abs.json"), b"owned")]
        ),
        "bad_archive",
    ),
    "zip-member-with-windows-drive": Case(
        lambda _: make_zip(valid_files(), extra=[raw_member("C:\\evil.json", b"owned")]),
        "bad_archive",
    ),
    "zip-symlink-then-file-through-it": Case(
        lambda root: make_zip(
            {},
            extra=[
                raw_member(FOLDER + "metadata.json", valid_files()["metadata.json"]),
                raw_member(FOLDER + "places", str(root / "outside").encode(), stat.S_IFLNK | 0o777),
                raw_member(FOLDER + "places/0.json", b"owned"),
            ],
        ),
        "bad_archive",
    ),
    "tar-symlink-then-file-through-it": Case(
        lambda root: make_tar(
            {"metadata.json": valid_files()["metadata.json"]},
            extra=[
                tar_member(FOLDER + "places", kind=tarfile.SYMTYPE, linkname=str(root / "outside")),
                tar_member(FOLDER + "places/0.json", b"owned"),
            ],
        ),
        "bad_archive",
    ),
    "tar-hardlink-to-a-file-outside": Case(
        lambda root: make_tar(
            valid_files(),
            extra=[
                tar_member(
                    FOLDER + "items/2024-06.json",
                    kind=tarfile.LNKTYPE,
                    linkname=str(root / "outside" / "victim.json"),
                )
            ],
        ),
        "bad_archive",
    ),
    "tar-fifo": Case(
        lambda _: make_tar(
            valid_files(), extra=[tar_member(FOLDER + "items/2024-06.json", kind=tarfile.FIFOTYPE)]
        ),
        "bad_archive",
    ),
    "zip-duplicate-member": Case(
        lambda _: make_zip(
            valid_files(), extra=[raw_member(FOLDER + "items/2024-05.json", json_array([]))]
        ),
        "bad_archive",
    ),
    "zip-file-and-folder-of-one-name": Case(
        lambda _: make_zip(valid_files(), extra=[raw_member(FOLDER + "samples", b"x")]),
        "bad_archive",
    ),
    # decompression bombs
    "expanded-size-over-the-limit": Case(
        _big_extra, "bad_archive", limits={"max_expanded_bytes": 300_000}
    ),
    "zip-member-of-zeros-over-100-to-1": Case(
        lambda _: make_zip(valid_files(), extra=[raw_member(FOLDER + "zeros.bin", bytes(16 * MB))]),
        "bad_archive",
    ),
    "tar.gz-of-zeros-over-100-to-1": Case(
        lambda _: make_tar(valid_files(), extra=[tar_member(FOLDER + "zeros.bin", bytes(16 * MB))]),
        "bad_archive",
    ),
    "gzipped-week-over-100-to-1": Case(
        _replace("samples/2024-W18.json.gz", _gz_bomb()),
        "bad_archive",
        names="samples/2024-W18.json.gz",
    ),
    # metadata.json and its version
    "no-metadata-json": Case(
        lambda _: make_zip({k: v for k, v in valid_files().items() if k != "metadata.json"}),
        "bad_archive",
        names="metadata.json",
    ),
    "schema-version-3": Case(
        _replace("metadata.json", b'{"schemaVersion": "3.0.0"}'),
        "unsupported_version",
        names="metadata.json",
    ),
    "schema-version-garbage": Case(
        _replace("metadata.json", b'{"schemaVersion": "latest"}'),
        "bad_archive",
        names="metadata.json",
    ),
    "metadata-not-json": Case(
        _replace("metadata.json", b"{schemaVersion: 2"), "bad_archive", names="metadata.json"
    ),
    # manifest.json
    "checksum-mismatch": Case(_checksum_mismatch, "bad_archive", names="items/2024-05.json"),
    "listed-file-missing": Case(_listed_but_missing, "bad_archive", names="items/2024-05.json"),
    "data-file-not-listed": Case(_not_listed, "bad_archive", names="items/2024-06.json"),
    # broken data files (the manifest, where present, matches the broken bytes)
    "corrupt-gzip": Case(
        _replace("samples/2024-W18.json.gz", flip(_samples_gz(), 200)),
        "bad_archive",
        names="samples/2024-W18.json.gz",
    ),
    "corrupt-gzip-late": Case(
        _replace("samples/2024-W18.json.gz", flip(_samples_gz(), 20_000, 16), manifest=False),
        "bad_archive",
        names="samples/2024-W18.json.gz",
    ),
    "truncated-gzip": Case(
        _replace("samples/2024-W18.json.gz", _samples_gz()[:30_000]),
        "bad_archive",
        names="samples/2024-W18.json.gz",
    ),
    "truncated-json": Case(
        _replace("items/2024-05.json", json_array([{"base": {}}, {"base": {}}])[:-12]),
        "bad_archive",
        names="items/2024-05.json",
    ),
    "invalid-json-in-the-middle": Case(
        _replace("places/0.json", b'[\n{"id": "x"},\n{"id": nope},\n{"id": "y"}\n]\n'),
        "bad_archive",
        names="places/0.json",
    ),
    "top-level-object-not-array": Case(
        _replace("items/2024-05.json", b'{"items": []}', manifest=False),
        "bad_archive",
        names="items/2024-05.json",
    ),
    # records that parse but fail validation, with confirm=true
    "invalid-record": Case(
        _replace(
            "places/0.json",
            json_array(
                [
                    {
                        "id": new_id(),
                        "name": "Nowhere",
                        "latitude": 123.0,
                        "longitude": 0.0,
                        "lastSaved": "2024-05-01T10:00:00Z",
                    }
                ]
            ),
        ),
        "validation_failed",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_given_a_bad_archive_when_imported_then_failed_with_its_code_and_nothing_changed(
    importer: Importer, case: str
) -> None:
    """Given a hostile or broken upload and an account with data, When imported with confirm,
    Then the job fails with SPEC 11's code (naming the file where SPEC says so), nothing is
    written outside the job's work folder, the work folder and staging tables are gone, the
    upload is kept as it came (for a restart, SPEC 8), and the account's places, items and
    samples are exactly as before."""
    spec = CASES[case]
    settings = importer.settings.with_overrides(**spec.limits) if spec.limits else None
    upload = spec.build(importer.root)
    before = importer.digest()
    job_id = importer.submit(upload)
    paths_before = importer.paths()

    job = importer.run(job_id, settings=settings)

    assert job.status == "failed", (job.status, job.error)
    assert job.error is not None
    assert job.error["code"] == spec.code, job.error
    if spec.names:
        assert spec.names in job.error["message"], job.error
    assert importer.storage.upload_path(job_id).read_bytes() == upload
    assert importer.storage.work_dirs(job_id) == {}
    new = importer.paths() - paths_before
    assert new <= {"storage/work"}, f"written outside the work folder: {sorted(new)}"
    assert (importer.root / "outside" / "victim.json").read_bytes() == b"mine"
    assert sorted(p.name for p in (importer.root / "outside").iterdir()) == ["victim.json"]
    assert importer.staging_tables() == []
    assert importer.digest() == before


def test_given_an_invalid_record_and_confirm_when_imported_then_the_report_names_it(
    importer: Importer,
) -> None:
    """Given a place with latitude 123 and confirm=true, When imported, Then validation_failed
    and the preview lists the file, index, field and reason of the problem."""
    job_id = importer.submit(CASES["invalid-record"].build(importer.root))

    job = importer.run(job_id)

    assert job.status == "failed"
    assert job.error is not None and job.error["code"] == "validation_failed"
    assert job.preview is not None
    assert job.preview["error_count"] == 1
    (problem,) = job.preview["errors"]
    assert problem["file"] == "places/0.json"
    assert problem["index"] == 0
    assert problem["field"] == "latitude"
    assert problem["reason"]


# --- the upload form, through the web app ---------------------------------------------------


@dataclass
class Web:
    client: FlaskClient
    settings: Settings
    engine: Engine
    publisher: RecordingPublisher

    def post(self, token: str, form: dict[str, Any]) -> Any:
        return self.client.post(
            "/api/v1/imports",
            data=form,
            headers={"Authorization": f"Bearer {token}"},
            content_type="multipart/form-data",
        )

    def stored(self) -> list[str]:
        """Files kept under storage's uploads folder (its .incoming folder included)."""
        uploads = self.settings.storage_root / "uploads"
        if not uploads.exists():
            return []
        return sorted(str(p.relative_to(uploads)) for p in uploads.rglob("*") if p.is_file())

    def jobs(self) -> int:
        with raw_connection(self.settings.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        return int(row[0]) if row else 0


def _web(settings: Settings, engine: Engine) -> Iterator[Web]:
    publisher = RecordingPublisher()
    app = create_app(settings, live=MemoryLiveStore(), publisher=publisher)
    app.config["TESTING"] = True
    yield Web(app.test_client(), settings, engine, publisher)
    app.extensions["ferry"].engine.dispose()


LIMIT = 200_000


@pytest.fixture
def web(settings: Settings, engine: Engine) -> Iterator[Web]:
    """The real app, with an upload limit of 200 000 bytes."""
    yield from _web(settings.with_overrides(max_upload_bytes=LIMIT), engine)


def upload_of(size: int) -> tuple[io.BytesIO, str]:
    return io.BytesIO(random.Random(size).randbytes(size)), "export.zip"


def assert_refused(response: Any, status: int, code: str, field_name: str | None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    if field_name is not None:
        assert error["details"].get("field") == field_name, error
        assert field_name in error["message"], error


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 100_000, LIMIT + 3 * MB])
def test_given_an_upload_over_the_limit_when_posted_then_413_and_nothing_stored(
    web: Web, account: tuple[Account, str], size: int
) -> None:
    """Given FERRY_MAX_UPLOAD_BYTES = 200 000 and a bigger upload (by a byte, by 100 kB, by
    megabytes), When posted, Then 413, no job, nothing published, and no file under uploads
    (the .incoming folder included)."""
    _, token = account

    response = web.post(token, {"file": upload_of(size), "confirm": "true"})

    assert_refused(response, 413, "payload_too_large", None)
    assert web.stored() == []
    assert web.jobs() == 0
    assert web.publisher.job_ids() == []


def test_given_an_upload_at_the_limit_when_posted_then_accepted_and_stored(
    web: Web, account: tuple[Account, str]
) -> None:
    """Given an upload of exactly FERRY_MAX_UPLOAD_BYTES, When posted, Then 202 and it is kept
    as the job's upload, byte for byte (the control for the refusals)."""
    _, token = account
    body, _ = upload_of(LIMIT)

    response = web.post(token, {"file": (io.BytesIO(body.getvalue()), "export.zip")})

    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job"]["id"]
    assert web.stored() == [f"{job_id}/upload"]
    path = LocalStorage(web.settings.storage_root).upload_path(job_id)
    assert path.read_bytes() == body.getvalue()
    assert web.publisher.job_ids() == [job_id]


@pytest.mark.parametrize(
    ("form", "field_name"),
    [
        ({"confirm": "true"}, "file"),
        ({"file": (io.BytesIO(b""), ""), "confirm": "true"}, "file"),
        ({"on_conflict": "overwrite"}, "on_conflict"),
        ({"on_conflict": "SKIP"}, "on_conflict"),
        ({"confirm": "maybe"}, "confirm"),
        ({"confirm": "2"}, "confirm"),
        ({"skip_invalid": "sure"}, "skip_invalid"),
        ({"mode": "fast"}, "mode"),
        ({"type": "table"}, "table"),
        ({"type": "archives"}, "type"),
    ],
    ids=[
        "no-file-field",
        "file-without-name",
        "on-conflict-unknown",
        "on-conflict-wrong-case",
        "confirm-word",
        "confirm-number",
        "skip-invalid-word",
        "unknown-field",
        "table-without-table",
        "type-unknown",
    ],
)
def test_given_a_bad_import_form_when_posted_then_422_naming_the_field_and_nothing_stored(
    web: Web, account: tuple[Account, str], form: dict[str, Any], field_name: str
) -> None:
    """Given an import form with a missing file, a bad on_conflict, confirm or skip_invalid, or
    an unknown field, When posted, Then 422 naming that field, no job, and the received file
    (if any) is not kept."""
    _, token = account
    if field_name != "file":
        form = {**form, "file": (io.BytesIO(make_zip(valid_files())), "export.zip")}

    response = web.post(token, form)

    assert_refused(response, 422, "validation_failed", field_name)
    assert web.stored() == []
    assert web.jobs() == 0


def test_given_an_import_not_awaiting_confirmation_when_confirmed_then_409_and_it_stays(
    web: Web, account: tuple[Account, str]
) -> None:
    """Given a queued import (and a failed one), When confirmed, Then 409 and the job keeps its
    status: only an import at awaiting_confirmation can be confirmed."""
    person, token = account
    headers = {"Authorization": f"Bearer {token}"}
    response = web.post(token, {"file": (io.BytesIO(b"not an archive"), "x.zip")})
    assert response.status_code == 202
    queued = response.get_json()["job"]["id"]

    answer = web.client.post(f"/api/v1/jobs/{queued}/confirm", headers=headers)

    assert_refused(answer, 409, "conflict", None)
    assert JobStore(web.engine).get(queued).status == "queued"

    importer = Importer(
        settings=web.settings, engine=web.engine, account_id=person.id, root=Path("/nonexistent")
    )
    failed = importer.run(queued)
    assert failed.status == "failed"
    answer = web.client.post(f"/api/v1/jobs/{failed.id}/confirm", headers=headers, json={})
    assert_refused(answer, 409, "conflict", None)
    assert JobStore(web.engine).get(failed.id).status == "failed"


def test_given_another_accounts_import_when_confirmed_or_read_then_404(
    web: Web, account: tuple[Account, str], engine: Engine
) -> None:
    """Given B's import waiting for confirmation, When A confirms or reads it, Then 404 as if it
    did not exist, and B's job still waits."""
    _, token_a = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    token_b = issue_token(engine, other.id, role="user")
    response = web.post(token_b, {"file": (io.BytesIO(make_zip(valid_files())), "e.zip")})
    assert response.status_code == 202
    job_id = response.get_json()["job"]["id"]
    importer = Importer(
        settings=web.settings, engine=engine, account_id=other.id, root=Path("/nonexistent")
    )
    assert importer.run(job_id).status == "awaiting_confirmation"
    headers = {"Authorization": f"Bearer {token_a}"}

    confirm = web.client.post(f"/api/v1/jobs/{job_id}/confirm", headers=headers)
    read = web.client.get(f"/api/v1/jobs/{job_id}", headers=headers)

    assert_refused(confirm, 404, "not_found", None)
    assert_refused(read, 404, "not_found", None)
    assert JobStore(engine).get(job_id).status == "awaiting_confirmation"
