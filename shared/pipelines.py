"""Which pipeline runs which job type: the one registry, above the capability packages.

The entrypoints (worker, web, CLI) hand this mapping to the runner, the sweeper and the
service, so nothing below imports back up to here.
"""

from __future__ import annotations

from shared.archive.export import ExportArchive
from shared.archive.importer import ImportArchive
from shared.errors import BadRequest
from shared.jobs.pipeline import Pipeline
from shared.jobs.states import JobType
from shared.tables.export import ExportTable
from shared.tables.importer import ImportTable
from shared.undo.rollback import RollbackImport

PIPELINES: dict[str, Pipeline] = {
    JobType.EXPORT_ARCHIVE: ExportArchive(),
    JobType.IMPORT_ARCHIVE: ImportArchive(),
    JobType.EXPORT_TABLE: ExportTable(),
    JobType.IMPORT_TABLE: ImportTable(),
    JobType.IMPORT_ROLLBACK: RollbackImport(),
}


def pipeline_for(job_type: str) -> Pipeline:
    """The pipeline of a job type; BadRequest when Ferry has none."""
    try:
        return PIPELINES[job_type]
    except KeyError:
        raise BadRequest(f"no pipeline for job type {job_type!r}") from None
