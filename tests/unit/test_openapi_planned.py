"""The [D] table endpoints' declarations (web/planned.py) are ready for their views.

An app gets dummy views with those declarations; the document built from it must be valid
OpenAPI 3.1 and describe the table shapes as SPEC 9 and 13 name them.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from openapi_spec_validator import validate

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from web import create_app
from web.contract import operation
from web.openapi import document
from web.schemas import ExportRequest


def _with_table_views() -> Flask:
    app = create_app(
        Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"),
        live=MemoryLiveStore(),
        publisher=RecordingPublisher(),
    )
    tables = Blueprint("tables", __name__)

    @tables.post("/export-request")
    @operation("exportRequest", tags=("test",), auth="user", body=ExportRequest, replies={})
    def export_request(body: Any) -> Any:
        """Stands for `POST /exports` with both types."""

    app.register_blueprint(tables, url_prefix="/api/v1", name="tables")
    return app


@pytest.fixture(scope="module")
def described() -> dict[str, Any]:
    return document(_with_table_views())


def test_given_the_table_declarations_when_described_then_valid_openapi_3_1(
    described: dict[str, Any],
) -> None:
    """The document with the table endpoints in it is valid OpenAPI 3.1."""
    validate(described)
    paths = described["paths"]
    assert paths["/api/v1/imports"]["get"]["operationId"] == "listImports"
    assert "post" in paths["/api/v1/imports"]  # the archive import stays
    assert "409" in paths["/api/v1/imports/{job_id}/rollback"]["post"]["responses"]
    assert "422" in paths["/api/v1/jobs/{job_id}/remap"]["post"]["responses"]


def test_given_the_table_shapes_when_described_then_they_hold_spec_13s_fields(
    described: dict[str, Any],
) -> None:
    """The history, export and import shapes name the fields SPEC 9 and 13 list."""
    schemas = described["components"]["schemas"]
    record = schemas["ImportRecord"]["properties"]
    assert set(record) >= {
        "id",
        "type",
        "table",
        "filename",
        "status",
        "counts",
        "finished_at",
        "rollback_until",
        "rolled_back_at",
        "rollback_job",
    }
    table_export = schemas["ExportTableRequest"]["properties"]
    assert set(table_export) == {
        "type",
        "table",
        "format",
        "columns",
        "from",
        "to",
        "timezone",
        "bom",
        "delivery",
    }
    form = described["paths"]["/api/v1/imports"]["post"]["requestBody"]
    fields = form["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(fields) >= {"type", "table", "file", "mapping", "mode", "timezone", "sheet"}


def test_given_an_export_request_when_validated_then_the_type_picks_the_shape() -> None:
    """`type` decides between an archive and a table export; a table needs its format."""
    archive = ExportRequest.model_validate({"type": "archive", "compress": "all"})
    table = ExportRequest.model_validate({"type": "table", "table": "samples", "format": "csv"})
    assert archive.root.compress == "all"
    assert table.root.format == "csv"
    with pytest.raises(ValueError, match="format"):
        ExportRequest.model_validate({"type": "table", "table": "samples"})
