"""Table export requests (SPEC 13 "Export", SPEC 11): what is accepted, what is refused.

Every refusal is a 422 (`validation_failed`) naming the field in `details.field`; an
unknown or repeated column also names the column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import BadRequest, FerryError, ValidationFailed
from shared.jobs.states import PHASES, JobType
from shared.service import parse_export
from shared.tables.columns import TABLES
from shared.tables.params import TableExportParams, parse_table_export


def _body(**extra: Any) -> dict[str, Any]:
    return {"type": "table", "table": "samples", "format": "csv", **extra}


def refusal(body: Any) -> FerryError:
    with pytest.raises(FerryError) as caught:
        parse_table_export(body)
    return caught.value


def test_given_the_least_body_when_parsed_then_every_column_utc_no_bom_auto() -> None:
    params = parse_table_export(_body())

    assert params == TableExportParams(table="samples", format="csv")
    assert params.picked() == TABLES["samples"].columns
    assert (params.timezone, params.bom, params.delivery) == ("UTC", False, "auto")


def test_given_null_optional_fields_when_parsed_then_their_defaults() -> None:
    """null means "not given", as the OpenAPI document allows for every optional field."""
    params = parse_table_export(_body(timezone=None, columns=None, to=None, **{"from": None}))

    assert params == TableExportParams(table="samples", format="csv")


def test_given_every_field_when_parsed_then_stored_and_read_back_the_same() -> None:
    body = _body(
        table="items",
        format="xlsx",
        columns=["end_date", "id", "custom_title"],
        to="2024-02-01T00:00:00Z",
        timezone="Europe/Berlin",
        bom=True,
        delivery="background",
        **{"from": "2024-01-01T01:00:00+01:00"},
    )

    params = parse_table_export(body)
    stored = params.to_json()

    assert stored == {
        "table": "items",
        "format": "xlsx",
        "columns": ["end_date", "id", "custom_title"],
        "from": "2024-01-01T00:00:00Z",
        "to": "2024-02-01T00:00:00Z",
        "timezone": "Europe/Berlin",
        "bom": True,
        "delivery": "background",
    }
    assert TableExportParams.from_json(stored) == params
    assert params.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert [c.name for c in params.picked()] == ["end_date", "id", "custom_title"]


def test_given_a_table_body_when_the_service_parses_it_then_it_is_an_export_table_job() -> None:
    job_type, params = parse_export(_body(format="jsonl"))

    assert job_type == JobType.EXPORT_TABLE
    assert params["format"] == "jsonl"
    assert [name for name, _ in PHASES[JobType.EXPORT_TABLE]] == ["prepare", "rows", "finalize"]
    assert parse_export({"type": "archive"})[0] == JobType.EXPORT_ARCHIVE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "table", "format": "csv"}, "table"),
        (_body(table="timeline_items"), "table"),
        (_body(table=["samples"]), "table"),
        ({"type": "table", "table": "samples"}, "format"),
        (_body(format="xls"), "format"),
        (_body(format="CSV"), "format"),
        (_body(columns="id,date"), "columns"),
        (_body(columns=[]), "columns"),
        (_body(columns=["id", 3]), "columns"),
        (_body(**{"from": "yesterday"}), "from"),
        (_body(to=1704067200), "to"),
        (_body(**{"from": "2024-02-01T00:00:00Z"}, to="2024-01-01T00:00:00Z"), "to"),
        (_body(**{"from": "2024-01-01T00:00:00Z"}, to="2024-01-01T00:00:00Z"), "to"),
        (_body(timezone="Mars/Olympus_Mons"), "timezone"),
        (_body(timezone="europe/berlin"), "timezone"),
        (_body(timezone="../../etc/passwd"), "timezone"),
        (_body(timezone=1), "timezone"),
        (_body(bom="yes"), "bom"),
        (_body(delivery="now"), "delivery"),
        (_body(delivery=None), "delivery"),
        (_body(compress="all"), "compress"),
        (_body(Columns=["id"]), "Columns"),
    ],
)
def test_given_a_bad_field_when_parsed_then_422_naming_it(body: dict[str, Any], field: str) -> None:
    error = refusal(body)

    assert isinstance(error, ValidationFailed)
    assert error.details["field"] == field
    assert error.message.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        (["id", "dates"], "dates"),
        (["id", "account_id"], "account_id"),
        (["id", "date", "id"], "id"),
    ],
)
def test_given_an_unknown_or_repeated_column_when_parsed_then_422_names_the_column(
    columns: list[str], named: str
) -> None:
    error = refusal(_body(columns=columns))

    assert isinstance(error, ValidationFailed)
    assert error.details == {"field": "columns", "column": named}
    assert repr(named) in error.message


def test_given_a_column_of_another_table_when_parsed_then_it_is_unknown_here() -> None:
    error = refusal(_body(table="places", columns=["name", "heart_rate"]))

    assert error.details == {"field": "columns", "column": "heart_rate"}
    assert "name" in error.message, "the message lists the table's columns"


@pytest.mark.parametrize("body", [None, [], "samples", 3])
def test_given_a_body_that_is_not_an_object_when_parsed_then_400(body: Any) -> None:
    assert isinstance(refusal(body), BadRequest)
