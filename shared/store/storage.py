"""Where export output, uploads and work folders live: a local folder (`STORAGE_URL`).

Layout under the root:
  work/{job_id}/{attempt}/             an attempt's scratch space (only it writes there)
  exports/{job_id}/{attempt}/{name}    a finished export, moved in whole by one rename
  uploads/{job_id}/upload              an import's uploaded file

Work folders and `exports/` share one file system, so publishing is an atomic rename and
a reader never sees a half-written download. Output is per attempt too: a stale attempt
that publishes (it checks its lease first, but cannot rule out being frozen right after)
writes only into its own folder, which the job's result never names, so it can never
replace the download of the attempt that succeeded. Storage has no in-memory twin: tests use a
real temporary folder, which is as fast as a fake and cannot drift from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from shared.errors import StorageError

WORK = "work"
EXPORTS = "exports"
UPLOADS = "uploads"
UPLOAD_NAME = "upload"
# Uploads land here while the request is parsed, then move under their job's id.
INCOMING = ".incoming"


class UploadTooLarge(Exception):
    """Raised when an upload passes the size limit (nothing is kept)."""


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn an OSError into a retryable StorageError that says what was being done."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"storage failed while {what}: {exc.strerror or exc}") from exc


class LocalStorage:
    """Storage in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- work folders -------------------------------------------------------------------

    def work_dir(self, job_id: str, attempt: int) -> Path:
        """The attempt's work folder, created empty if missing."""
        path = self.root / WORK / job_id / str(attempt)
        with storage_errors("creating a work folder"):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def work_dirs(self, job_id: str) -> dict[int, Path]:
        """Existing work folders of a job, by attempt."""
        base = self.root / WORK / job_id
        found: dict[int, Path] = {}
        with storage_errors("listing work folders"):
            if base.is_dir():
                for child in base.iterdir():
                    if child.is_dir() and child.name.isdigit():
                        found[int(child.name)] = child
        return found

    def remove_work(
        self, job_id: str, *, attempt: int | None = None, older_than: int | None = None
    ) -> None:
        """Remove a job's work folders: all of them, one attempt's, or those of the
        attempts before `older_than` (a newer attempt's folder is never touched)."""
        base = self.root / WORK / job_id
        with storage_errors("removing a work folder"):
            if attempt is None and older_than is None:
                shutil.rmtree(base, ignore_errors=True)
                return
            for number, path in self.work_dirs(job_id).items():
                if number == attempt or (older_than is not None and number < older_than):
                    shutil.rmtree(path, ignore_errors=True)
            _remove_if_empty(base)

    def work_job_ids(self) -> list[str]:
        """Jobs that have a work folder."""
        return self._children(WORK)

    # --- published exports --------------------------------------------------------------

    def publish(self, job_id: str, attempt: int, source: Path, name: str) -> str:
        """Move an attempt's finished file into `exports/` in one rename; returns its key."""
        target_dir = self.root / EXPORTS / job_id / str(attempt)
        with storage_errors("publishing the export"):
            target_dir.mkdir(parents=True, exist_ok=True)
            os.replace(source, target_dir / name)
        return f"{EXPORTS}/{job_id}/{attempt}/{name}"

    def path(self, key: str) -> Path:
        """The file behind a key, refusing keys that leave the root."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"key {key!r} is outside storage")
        return path

    def remove_output(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        older_than: int | None = None,
        except_attempt: int | None = None,
    ) -> bool:
        """Remove a job's published output: all of it, one attempt's, those of the
        attempts before `older_than`, or every attempt's but one; True when something was
        removed."""
        base = self.root / EXPORTS / job_id
        with storage_errors("removing an export"):
            if not base.exists():
                return False
            if attempt is None and older_than is None and except_attempt is None:
                shutil.rmtree(base, ignore_errors=True)
                return True
            removed = False
            for child in base.iterdir():
                # Only attempt folders: a file directly here is a download published
                # before outputs were kept per attempt, and stays while its job does.
                if not (child.is_dir() and child.name.isdigit()):
                    continue
                number = int(child.name)
                if (
                    number == attempt
                    or (older_than is not None and number < older_than)
                    or (except_attempt is not None and number != except_attempt)
                ):
                    shutil.rmtree(child, ignore_errors=True)
                    removed = True
            _remove_if_empty(base)
            return removed

    def output_job_ids(self) -> list[str]:
        """Jobs that have published output."""
        return self._children(EXPORTS)

    # --- uploads ------------------------------------------------------------------------

    def upload_path(self, job_id: str) -> Path:
        """Where a job's upload is kept."""
        return self.root / UPLOADS / job_id / UPLOAD_NAME

    def save_upload(self, job_id: str, stream: BinaryIO, *, limit: int) -> int:
        """Store an upload in full or not at all; UploadTooLarge past `limit` bytes."""
        target = self.upload_path(job_id)
        partial = target.with_name(UPLOAD_NAME + ".part")
        written = 0
        with storage_errors("storing the upload"):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with partial.open("wb") as out:
                    while chunk := stream.read(1024 * 1024):
                        written += len(chunk)
                        if written > limit:
                            raise UploadTooLarge(f"upload is larger than {limit} bytes")
                        out.write(chunk)
                os.replace(partial, target)
            except BaseException:
                shutil.rmtree(target.parent, ignore_errors=True)
                raise
        return written

    def incoming_file(self) -> IO[bytes]:
        """A new file for an upload being received (moved by `adopt_upload` later)."""
        folder = self.root / UPLOADS / INCOMING
        with storage_errors("receiving an upload"):
            folder.mkdir(parents=True, exist_ok=True)
            return tempfile.NamedTemporaryFile(dir=folder, prefix="in-", delete=False)

    def adopt_upload(self, job_id: str, received: Path) -> int:
        """Move a received file to be the job's upload (one rename); returns its size."""
        target = self.upload_path(job_id)
        with storage_errors("storing the upload"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(received, target)
            return target.stat().st_size

    def stale_incoming(self, older_than_seconds: float) -> list[Path]:
        """Received files that were never adopted (a request that died mid-way)."""
        folder = self.root / UPLOADS / INCOMING
        cutoff = time.time() - older_than_seconds
        with storage_errors("listing incoming uploads"):
            if not folder.is_dir():
                return []
            return [p for p in folder.iterdir() if p.stat().st_mtime < cutoff]

    def remove_upload(self, job_id: str) -> None:
        """Remove a job's upload."""
        with storage_errors("removing an upload"):
            shutil.rmtree(self.root / UPLOADS / job_id, ignore_errors=True)

    def upload_job_ids(self) -> list[str]:
        """Jobs that have an upload."""
        return [name for name in self._children(UPLOADS) if name != INCOMING]

    # --- the whole of a job ---------------------------------------------------------------

    def remove_job(self, job_id: str) -> None:
        """Remove everything a job has in storage: work folders, upload and output."""
        self.remove_work(job_id)
        self.remove_upload(job_id)
        self.remove_output(job_id)

    def _children(self, area: str) -> list[str]:
        """Names of the entries directly in an area (job ids)."""
        base = self.root / area
        with storage_errors(f"listing {area}"):
            if not base.is_dir():
                return []
            return sorted(child.name for child in base.iterdir())


def _remove_if_empty(path: Path) -> None:
    """Remove an empty folder (a job's, once its last attempt's folder went)."""
    with contextlib.suppress(OSError):  # missing, or not empty
        path.rmdir()
