"""The OpenAPI 3.1 document, built from the routes' declarations (`web/contract.py`).

Every rule of the app whose view has a declaration is described: its path parameters
from the URL converters, its query, headers and body from the pydantic models the view
validates with (pydantic writes JSON Schema 2020-12, the dialect of OpenAPI 3.1), its
answers from the declared replies, and the errors every route can give.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Flask
from pydantic import BaseModel

from web.contract import Operation, Reply, declared
from web.limits import MAX_JSON_BYTES
from web.logs import REQUEST_ID_HEADER
from web.schemas import NO_NUL, ErrorEnvelope

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "the request is malformed (e.g. not JSON, or a bad cursor); `details.field` names it",
    401: "no token, or one that is unknown or revoked",
    403: "the token's role does not allow this (ops endpoints need an ops token)",
    404: "no such job for this account (a malformed id included)",
    409: "the job's state does not allow this",
    410: "the download has passed its retention",
    413: f"the body is over the limit (JSON: {MAX_JSON_BYTES} bytes;"
    " uploads: FERRY_MAX_UPLOAD_BYTES)",
    422: "a field breaks a rule (unknown field, wrong type, bad date, empty range); named in"
    " `details.field`",
    429: "too many event streams are open for this account",
    503: "PostgreSQL or Redis is not reachable; try again after `Retry-After` seconds",
}
_PATH_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")


class _Schemas:
    """The document's `components.schemas`, filled as models are referenced."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def inline(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        """The model's own schema; the models it uses go to the components."""
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.found.update(schema.pop("$defs", {}))
        return schema

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        """A `$ref` to the model, which goes to the components."""
        schema = self.inline(model, mode)
        name = schema.get("title", model.__name__)
        self.found[name] = schema
        return {"$ref": _REF.format(model=name)}


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared route of `app`."""
    schemas = _Schemas()
    error_ref = schemas.ref(ErrorEnvelope, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        found = declared(app.view_functions.get(rule.endpoint))
        if found is None:
            continue
        path, parameters = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            described = _operation(found, parameters, schemas, error_ref)
            paths.setdefault(path, {})[method.lower()] = described
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Ferry",
            "version": _version(),
            "description": "Exports and imports of location timelines, as background jobs."
            f" Every answer carries an `{REQUEST_ID_HEADER}` header (the client's own, when"
            " it sends one) that the server's log names too.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.found.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `ferry accounts create`",
                }
            },
        },
    }


def _version() -> str:
    try:
        return version("ferry")
    except PackageNotFoundError:
        return "0"


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for match in _PATH_ARGUMENT.finditer(rule):
        schema: dict[str, Any] = {"type": "string"}
        if match["converter"] == "uuid":
            schema["format"] = "uuid"
        parameters.append(
            {
                "name": match["name"],
                "in": "path",
                "required": True,
                "schema": schema,
                "description": "a job id (an id that is not a UUID is a 404)",
            }
        )
    return _PATH_ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule), parameters


def _operation(
    found: Operation,
    path_parameters: list[dict[str, Any]],
    schemas: _Schemas,
    error_ref: dict[str, Any],
) -> dict[str, Any]:
    parameters = [*path_parameters, *_query(found, schemas), *_headers(found)]
    described: dict[str, Any] = {
        "operationId": found.id,
        "summary": found.summary,
        "tags": list(found.tags),
        "parameters": parameters,
        "responses": _responses(found, bool(path_parameters), schemas, error_ref),
    }
    if found.description:
        described["description"] = found.description
    if found.auth is not None:
        described["security"] = [{"bearer": []}]
    else:
        described["security"] = []
    if found.body is not None:
        described["requestBody"] = _body(found, schemas)
    if not parameters:
        del described["parameters"]
    return described


def _query(found: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    if found.query is None:
        return []
    properties = schemas.inline(found.query, "validation").get("properties", {})
    parameters = []
    for name, info in found.query.model_fields.items():
        key = info.alias or name
        schema = _without_null(properties[key])
        description = schema.pop("description", None)
        schema.pop("title", None)
        parameter: dict[str, Any] = {
            "name": key,
            "in": "query",
            "required": info.is_required(),
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        if schema.get("type") == "array":
            parameter.update(style="form", explode=False)
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    # An optional query parameter is one that is left out; "null" has no query form.
    options = schema.get("anyOf")
    if options is None:
        return dict(schema)
    kept = [o for o in options if o.get("type") != "null"]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _headers(found: Operation) -> list[dict[str, Any]]:
    parameters = []
    for header in found.headers:
        schema: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
        if header.max_length is not None:
            schema["maxLength"] = header.max_length
        parameters.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "schema": schema,
                "description": header.description,
            }
        )
    return parameters


def _body(found: Operation, schemas: _Schemas) -> dict[str, Any]:
    assert found.body is not None
    if found.body_kind == "json":
        return {
            "required": found.body_required,
            "content": {"application/json": {"schema": schemas.ref(found.body, "validation")}},
        }
    schema = schemas.inline(found.body, "validation")
    schema.pop("title", None)
    for name in found.files:
        schema.setdefault("properties", {})[name] = {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": "the file (zip, tar or tar.gz), up to FERRY_MAX_UPLOAD_BYTES",
        }
        schema.setdefault("required", []).append(name)
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _responses(
    found: Operation, has_path: bool, schemas: _Schemas, error_ref: dict[str, Any]
) -> dict[str, Any]:
    responses = {str(status): _reply(reply, schemas) for status, reply in found.replies.items()}
    errors = set(found.errors)
    if found.auth is not None:
        errors.add(401)
    if found.auth == "ops":
        errors.add(403)
    if has_path:
        errors.add(404)
    if found.query is not None or found.headers:
        errors.add(422)
    if found.body is not None:
        errors |= {400, 413, 422}
    if found.auth is not None or found.body is not None:
        errors.add(503)  # whatever reads the database or Redis
    for status in sorted(errors):
        if str(status) in responses:
            continue
        headers = {REQUEST_ID_HEADER: _request_id_header()}
        if status == 503:
            headers["Retry-After"] = {
                "description": "seconds to wait before trying again",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        if status == 401:
            headers["WWW-Authenticate"] = {
                "required": True,
                "schema": {"type": "string"},
            }
        responses[str(status)] = {
            "description": _ERRORS[status],
            "headers": headers,
            "content": {"application/json": {"schema": error_ref}},
        }
    return responses


def _request_id_header() -> dict[str, Any]:
    return {
        "description": "the request's id, as the server's log names it",
        "required": True,
        "schema": {"type": "string"},
    }


def _reply(reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"description": reply.description}
    headers: dict[str, Any] = {REQUEST_ID_HEADER: _request_id_header()}
    for name, text in reply.headers.items():
        required = not text.startswith("(optional)")
        headers[name] = {
            "description": text.removeprefix("(optional)").strip(),
            "required": required,
            "schema": {"type": "string"},
        }
    described["headers"] = headers
    if reply.model is not None:
        schema = schemas.ref(reply.model, "serialization")
    else:
        schema = reply.schema or {}
    described["content"] = {
        reply.media_type: {"schema": schema},
        **{media_type: {"schema": other} for media_type, other in reply.also.items()},
    }
    if reply.links:
        described["links"] = {
            name: {"operationId": target, "parameters": dict(parameters)}
            for name, (target, parameters) in reply.links.items()
        }
    return described
