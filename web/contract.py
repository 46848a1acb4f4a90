"""Each view's declaration: who may call it, what it reads, what it answers.

`@operation(...)` is the one place a route says this. The wrapper it makes authenticates,
validates the query, headers and body with the declared pydantic models (refusals in
Ferry's error shape, naming the field), then calls the view with the parsed values; the
OpenAPI document (`web/openapi.py`) is built from the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Literal, TypeVar, cast

import orjson
from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from shared.errors import BadRequest, ValidationFailed
from web.auth import authenticate_request
from web.limits import read_body

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["user", "ops"]
BodyKind = Literal["json", "multipart"]


@dataclass(frozen=True)
class Header:
    """A request header the view reads."""

    name: str
    description: str
    max_length: int | None = None


@dataclass(frozen=True)
class Reply:
    """One answer a view gives: its status, shape and headers."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    # Other media types of the same answer and their schemas (a table export's file is
    # one of several formats).
    also: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # A raw JSON Schema for media that no model describes (a zip, an event stream).
    schema: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # OpenAPI links: name -> (operationId, {parameter: runtime expression}).
    links: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """Everything the API and its document know about one route."""

    id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    auth: Auth | None
    query: type[BaseModel] | None
    headers: tuple[Header, ...]
    body: type[BaseModel] | None
    body_kind: BodyKind
    body_required: bool
    files: tuple[str, ...]
    replies: Mapping[int, Reply]
    errors: tuple[int, ...]


_ATTRIBUTE = "ferry_operation"


def operation(
    id: str,
    *,
    tags: tuple[str, ...],
    auth: Auth | None,
    replies: Mapping[int, Reply],
    errors: tuple[int, ...] = (),
    query: type[BaseModel] | None = None,
    headers: tuple[Header, ...] = (),
    body: type[BaseModel] | None = None,
    body_kind: BodyKind = "json",
    body_required: bool = True,
    files: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Declare a view; it is then called with `query=`, `body=` and `headers=` as parsed."""

    def wrap(view: F) -> F:
        doc = (view.__doc__ or "").strip()
        summary, _, description = doc.partition("\n")
        declaration = Operation(
            id=id,
            summary=summary.strip(),
            description=description.strip(),
            tags=tags,
            auth=auth,
            query=query,
            headers=headers,
            body=body,
            body_kind=body_kind,
            body_required=body_required,
            files=files,
            replies=replies,
            errors=errors,
        )

        @wraps(view)
        def run(**path: Any) -> Any:
            if declaration.auth is not None:
                authenticate_request(ops=declaration.auth == "ops")
            kwargs: dict[str, Any] = {}
            if declaration.query is not None:
                kwargs["query"] = _validated(declaration.query, _fields(request.args))
            if declaration.headers:
                kwargs["headers"] = {h.name: _header(h) for h in declaration.headers}
            if declaration.body is not None:
                if declaration.body_kind == "multipart":
                    kwargs["body"] = _form(declaration)
                else:
                    kwargs["body"] = _json(declaration.body, required=declaration.body_required)
            return view(**path, **kwargs)

        setattr(run, _ATTRIBUTE, declaration)
        return cast(F, run)

    return wrap


def declared(view: Callable[..., Any] | None) -> Operation | None:
    """The declaration of a view function, if it has one."""
    return getattr(view, _ATTRIBUTE, None)


def refuse(field_name: str, message: str) -> ValidationFailed:
    """A 422 naming the field."""
    return ValidationFailed(f"{field_name}: {message}", details={"field": field_name})


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_problem(exc, data) from None


def _first_problem(exc: ValidationError, data: Any = None) -> ValidationFailed:
    problem = exc.errors(include_url=False)[0]
    loc = problem["loc"]
    # A body that is one of several shapes by its `type` (a discriminated union) has
    # problems located under that type's name first: the client's field is what follows.
    if len(loc) > 1 and isinstance(data, dict) and loc[0] == data.get("type"):
        loc = loc[1:]
    # The field is named by its keys; list positions say which item, not which field.
    where = ".".join(str(part) for part in loc if not isinstance(part, int)) or "body"
    kind = problem["type"]
    if kind == "union_tag_not_found":
        return refuse("type", "is required")
    if kind == "union_tag_invalid":
        expected = problem.get("ctx", {}).get("expected_tags", "")
        return refuse("type", f"must be one of {expected}")
    if kind == "extra_forbidden":
        return refuse(where, "is not a known field")
    if kind == "missing":
        return refuse(where, "is required")
    message = problem["msg"].removeprefix("Value error, ")
    return refuse(where, message[0].lower() + message[1:] if message else "is not valid")


def _fields(values: MultiDict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in values:
        given = values.getlist(name)
        if len(given) > 1:
            # Which one would win is a guess: refuse rather than pick one.
            raise refuse(name, "is given more than once")
        found[name] = given[0]
    return found


def _header(header: Header) -> str | None:
    value = request.headers.get(header.name) or None
    if value is None:
        return None
    if header.max_length is not None and len(value) > header.max_length:
        raise refuse(header.name, f"must be at most {header.max_length} characters")
    if "\x00" in value:
        raise refuse(header.name, "must not contain the character U+0000")
    return value


def _json(model: type[BaseModel], *, required: bool) -> Any:
    raw = read_body()
    if not raw.strip():
        if required:
            raise BadRequest("a JSON body is required", details={"field": "body"})
        return _validated(model, {})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", details={"field": "body"}) from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", details={"field": "body"})
    return _validated(model, data)


def _form(declaration: Operation) -> Any:
    assert declaration.body is not None
    fields = _fields(request.form)
    for name in request.files:
        if name not in declaration.files:
            raise refuse(name, "is not a known field")
        if len(request.files.getlist(name)) > 1:
            raise refuse(name, "is given more than once")
    for name in declaration.files:
        fields.pop(name, None)  # a file sent as a plain field is no file
    parsed = _validated(declaration.body, fields)
    for name in declaration.files:
        upload = request.files.get(name)
        if upload is None or not upload.filename:
            raise refuse(name, "is required (a multipart file part with a file name)")
    return parsed
