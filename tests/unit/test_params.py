"""`POST /exports` bodies (SPEC 9, 11): what is accepted, and refusals that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import BadRequest, FerryError, ValidationFailed
from shared.params import ExportArchiveParams, parse_export_request


def refusal(body: Any) -> FerryError:
    with pytest.raises(FerryError) as caught:
        parse_export_request(body)
    return caught.value


# --- accepted shapes --------------------------------------------------------------------


def test_given_only_the_type_when_parsed_then_a_full_export_with_gzipped_samples_is_asked() -> None:
    """`{"type": "archive"}` is a full export with SPEC 4's default compression."""
    job_type, params = parse_export_request({"type": "archive"})

    assert job_type == "export.archive"
    assert params == {"incremental": False, "compress": "samples"}
    stored = ExportArchiveParams.from_json(params)
    assert (stored.start, stored.end, stored.incremental) == (None, None, False)
    assert (stored.gzip("samples"), stored.gzip("items"), stored.gzip("places")) == (
        True,
        False,
        False,
    )


def test_given_a_range_when_parsed_then_it_is_stored_in_utc_and_read_back() -> None:
    """`from` and `to` may carry offsets; the job stores them as UTC instants."""
    _, params = parse_export_request(
        {"type": "archive", "from": "2024-01-01T02:00:00+02:00", "to": "2024-02-01T00:00:00Z"}
    )

    assert params["from"] == "2024-01-01T00:00:00Z"
    assert params["to"] == "2024-02-01T00:00:00Z"
    stored = ExportArchiveParams.from_json(params)
    assert stored.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert stored.end == datetime(2024, 2, 1, tzinfo=UTC)


def test_given_only_one_end_of_the_range_when_parsed_then_it_is_accepted() -> None:
    """An open range (only `from`, or only `to`) is a range."""
    _, since = parse_export_request({"type": "archive", "from": "2024-01-01T00:00:00Z"})
    _, until = parse_export_request({"type": "archive", "to": "2024-01-01T00:00:00Z"})

    assert ExportArchiveParams.from_json(since).start == datetime(2024, 1, 1, tzinfo=UTC)
    assert ExportArchiveParams.from_json(since).end is None
    assert ExportArchiveParams.from_json(until).end == datetime(2024, 1, 1, tzinfo=UTC)


def test_given_incremental_when_parsed_then_it_is_stored() -> None:
    """An incremental export asks for what changed since the previous one."""
    _, params = parse_export_request({"type": "archive", "incremental": True})

    assert ExportArchiveParams.from_json(params).incremental is True


@pytest.mark.parametrize(
    ("compress", "gzipped"),
    [
        ("samples", {"samples"}),
        ("all", {"samples", "items", "places"}),
        ("none", set()),
    ],
)
def test_given_a_compress_choice_when_parsed_then_those_folders_are_gzipped(
    compress: str, gzipped: set[str]
) -> None:
    """`compress` picks which folders are written as `.json.gz` (SPEC 4)."""
    _, params = parse_export_request({"type": "archive", "compress": compress})

    stored = ExportArchiveParams.from_json(params)
    assert {f for f in ("places", "items", "samples") if stored.gzip(f)} == gzipped


def test_given_null_dates_when_parsed_then_they_mean_no_range() -> None:
    """Clients that send `null` for an unset date are not refused."""
    _, params = parse_export_request({"type": "archive", "from": None, "to": None})

    assert "from" not in params and "to" not in params


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], ["type", "archive"], "archive", 3, True])
def test_given_a_body_that_is_not_an_object_when_parsed_then_it_is_a_bad_request(
    body: Any,
) -> None:
    """A body must be a JSON object: bad_request, not a crash."""
    error = refusal(body)

    assert isinstance(error, BadRequest)
    assert error.code == "bad_request"
    assert error.details.get("field")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": "table"}, "type"),
        ({"type": 1}, "type"),
        ({"type": "archive", "format": "zip"}, "format"),
        ({"type": "archive", "From": "2024-01-01T00:00:00Z"}, "From"),
        ({"type": "archive", "incremental": "yes"}, "incremental"),
        ({"type": "archive", "incremental": 1}, "incremental"),
        ({"type": "archive", "from": 1704067200}, "from"),
        ({"type": "archive", "to": ["2024-01-01"]}, "to"),
        ({"type": "archive", "from": "2024-13-01T00:00:00Z"}, "from"),
        ({"type": "archive", "from": "last monday"}, "from"),
        ({"type": "archive", "to": "2024-02-30"}, "to"),
        (
            {"type": "archive", "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            "to",
        ),
        (
            {"type": "archive", "from": "2024-02-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"},
            "to",
        ),
        (
            {"type": "archive", "from": "2024-02-01T00:00:00Z", "to": "2024-02-01T01:00:00+02:00"},
            "to",
        ),
        ({"type": "archive", "incremental": True, "from": "2024-01-01T00:00:00Z"}, "incremental"),
        ({"type": "archive", "incremental": True, "to": "2024-01-01T00:00:00Z"}, "incremental"),
        ({"type": "archive", "compress": "zip"}, "compress"),
        ({"type": "archive", "compress": True}, "compress"),
        ({"type": "archive", "compress": ["all"]}, "compress"),
    ],
)
def test_given_a_bad_field_when_parsed_then_the_refusal_names_that_field(
    body: dict[str, Any], field: str
) -> None:
    """Unknown field, wrong type, bad date, empty range, incremental with a range, bad
    compress: each is refused with `details.field` naming the field (SPEC 11)."""
    error = refusal(body)

    assert isinstance(error, ValidationFailed | BadRequest)
    assert error.code in {"validation_failed", "bad_request"}
    assert error.details == {"field": field}
    assert field in error.message
