"""Which pipeline runs which job type, and how a job's leftovers are removed."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import BadRequest
from shared.export_archive import ExportArchive
from shared.import_archive import ImportArchive
from shared.jobstate import JobType
from shared.jobstore import Job
from shared.pipeline import Pipeline
from shared.settings import Settings
from shared.storage import LocalStorage

PIPELINES: dict[str, Pipeline] = {
    JobType.EXPORT_ARCHIVE: ExportArchive(),
    JobType.IMPORT_ARCHIVE: ImportArchive(),
}


def pipeline_for(job_type: str) -> Pipeline:
    """The pipeline of a job type; BadRequest when Ferry has none."""
    try:
        return PIPELINES[job_type]
    except KeyError:
        raise BadRequest(f"no pipeline for job type {job_type!r}") from None


def discard_job(
    job: Job,
    *,
    settings: Settings,
    storage: LocalStorage,
    pipelines: Mapping[str, Pipeline] = PIPELINES,
) -> None:
    """Remove everything a failed or cancelled job left: files, uploads, staging data."""
    storage.remove_job(job.id)
    pipeline = pipelines.get(job.type)
    if pipeline is not None:
        pipeline.discard(job, settings)
