"""RFC 9457 problem responses: one shape for every error the API sends, and its documentation.

Every error body is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and ``instance`` (the request path, never the query string, which may carry
secrets); a 422 adds ``errors``. Request values are never echoed: pydantic's error dicts carry
the offending ``input``, and only its location and message are kept. Database failures are a
503 and anything unexpected a 500, both without exception text; the exception goes to the log.

``document_problems`` makes /openapi.json say the same: FastAPI would list every error under
``application/json`` and describe 422 with its own ``HTTPValidationError`` shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vatsim_collector.api.models import ErrorOut, ValidationErrorOut
from vatsim_collector.errors.exceptions import CollectorError

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE_URI = "https://vatsim-collector/problems/"
# A 422 detail lists this many parameter errors; ``errors`` has them all.
_DETAIL_ERRORS = 3


@dataclass(frozen=True)
class ProblemKind:
    """A problem type with its own URI: clients may branch on ``type`` instead of ``detail``."""

    slug: str
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE_URI + self.slug


INVALID_REQUEST = ProblemKind("invalid-request", "Invalid request parameters")
UNAUTHORIZED = ProblemKind("unauthorized", "API key required")
FORBIDDEN = ProblemKind("forbidden", "API key lacks the required role")
REQUEST_TOO_LARGE = ProblemKind("request-too-large", "Request body too large")
RATE_LIMITED = ProblemKind("rate-limited", "Rate limit exceeded")
DATABASE_UNAVAILABLE = ProblemKind("database-unavailable", "Database unavailable")
INTERNAL_ERROR = ProblemKind("internal-error", "Internal server error")


class ProblemError(StarletteHTTPException, CollectorError, wrapper=True):
    """An HTTPException with a problem type of its own (plain ones are ``about:blank``)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        kind: ProblemKind,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail=detail, headers=headers)
        self.kind = kind


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def problem_response(
    status_code: int,
    detail: str,
    *,
    instance: str,
    kind: ProblemKind | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": kind.uri if kind else "about:blank",
        # RFC 9457: with about:blank the title is the status phrase.
        "title": kind.title if kind else _phrase(status_code),
        "status": status_code,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    # nosniff here too: the 500 handler answers outside the middleware that adds it elsewhere.
    headers = {"X-Content-Type-Options": "nosniff", **(headers or {})}
    return JSONResponse(body, status_code=status_code, headers=headers, media_type=PROBLEM_JSON)


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = exc.status_code
    if code in (status.HTTP_204_NO_CONTENT, status.HTTP_304_NOT_MODIFIED):
        return Response(status_code=code, headers=exc.headers)  # no body allowed
    kind = exc.kind if isinstance(exc, ProblemError) else None
    errors: list[dict[str, str]] | None = None
    if code == status.HTTP_422_UNPROCESSABLE_CONTENT:
        # Raised by a route checking parameters together: same type as a per-parameter 422.
        kind, errors = kind or INVALID_REQUEST, []
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else _phrase(code)
    return problem_response(
        code, detail, instance=request.url.path, kind=kind, headers=exc.headers, errors=errors
    )


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(part) for part in error["loc"]), "message": str(error["msg"])}
        for error in exc.errors()
    ]
    listed = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:_DETAIL_ERRORS])
    more = len(errors) - _DETAIL_ERRORS
    detail = f"invalid request: {listed}" + (f" (and {more} more)" if more > 0 else "")
    return problem_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail,
        instance=request.url.path,
        kind=INVALID_REQUEST,
        errors=errors,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # The type only: SQLAlchemy messages quote URLs, statements and parameters.
    log.error("database error in API", path=request.url.path, error=type(exc).__name__)
    return problem_response(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "database unavailable; try again later",
        instance=request.url.path,
        kind=DATABASE_UNAVAILABLE,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in API", path=request.url.path, exc_info=exc)
    return problem_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "internal server error",
        instance=request.url.path,
        kind=INTERNAL_ERROR,
    )


def install_problem_handlers(app: FastAPI) -> None:
    # StarletteHTTPException covers FastAPI's subclass and the router's own 404 and 405.
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


# OpenAPI -----------------------------------------------------------------------------------

_SCHEMAS = "#/components/schemas/"
_ERROR_REF = _SCHEMAS + "ErrorOut"
_VALIDATION_REF = _SCHEMAS + "ValidationErrorOut"
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def problem_doc(
    description: str, *, ref: str = _ERROR_REF, headers: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One documented error response; ``headers`` are OpenAPI header objects by name."""
    doc: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": ref}}},
    }
    if headers:
        doc["headers"] = dict(headers)
    return doc


_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "Bearer: the key may be sent as a bearer token (or as X-API-Key).",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds until a request will be accepted again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


_DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: "Bad request",
    status.HTTP_404_NOT_FOUND: "Not found",
    status.HTTP_409_CONFLICT: "Conflict with the resource's current state",
    status.HTTP_503_SERVICE_UNAVAILABLE: "The database, or the part of the collector this"
    " endpoint reports on, is unavailable",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own errors (404, 409, 503...), as problem documents."""
    return {code: problem_doc(_DESCRIPTIONS.get(code, _phrase(code))) for code in codes}


def _component_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(ErrorOut, "serialization"), (ValidationErrorOut, "serialization")],
        ref_template=_SCHEMAS + "{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _roles(operation: Mapping[str, Any]) -> set[str]:
    return {
        role
        for requirement in operation.get("security", ())
        for roles in requirement.values()
        for role in roles
    }


@dataclass(frozen=True)
class ProblemDocs:
    """What the app's middleware and dependencies can answer, for ``document_problems``.

    ``read_security``: the security requirement a public operation gets when public data needs
    a key; None when it does not. ``unlimited``: paths the rate limit skips. ``roles`` of an
    operation are the role names in its security requirements (OpenAPI 3.1 allows role names
    in requirements of non-OAuth schemes).
    """

    security_schemes: Mapping[str, Any]
    read_security: list[dict[str, list[str]]] | None
    always_open: Collection[str]
    rate_limited: bool
    unlimited: Collection[str]
    max_request_bytes: int


def _document(schema: dict[str, Any], docs: ProblemDocs) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_component_schemas())
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _document_operation(path, operation, docs)
    if docs.read_security is not None:
        components.setdefault("securitySchemes", {}).update(docs.security_schemes)
    # FastAPI's own 422 shapes (HTTPValidationError holds ValidationError), now unused.
    if _SCHEMAS + "HTTPValidationError" not in json.dumps(schema):
        components["schemas"].pop("HTTPValidationError", None)
        components["schemas"].pop("ValidationError", None)


def _document_operation(path: str, operation: dict[str, Any], docs: ProblemDocs) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        content = response.setdefault("content", {})
        plain = content.get("application/json")
        # A route declared {"model": ErrorOut}: FastAPI put it under the route's media type.
        if plain and plain.get("schema", {}).get("$ref") == _ERROR_REF:
            content[PROBLEM_JSON] = content.pop("application/json")
        elif not content:  # declared with a description only; what is sent is a problem
            content[PROBLEM_JSON] = {"schema": {"$ref": _ERROR_REF}}
    if operation.get("parameters") or "requestBody" in operation:
        responses["422"] = problem_doc(
            "Invalid parameters; `errors` says which and why", ref=_VALIDATION_REF
        )
    roles = _roles(operation)
    if not roles and docs.read_security is not None and path not in docs.always_open:
        operation["security"] = docs.read_security
        roles = _roles(operation)
    if roles:
        responses["401"] = problem_doc(
            "No API key, or not a configured one", headers=_WWW_AUTHENTICATE
        )
    if "admin" in roles:
        responses["403"] = problem_doc("The key is valid but has the read role, not admin")
    responses["413"] = problem_doc(f"Request body over {docs.max_request_bytes} bytes")
    if docs.rate_limited and path not in docs.unlimited:
        responses["429"] = problem_doc(
            "Too many requests from this key or client address", headers=_RETRY_AFTER
        )
    responses["500"] = problem_doc("Unexpected error; details are logged, not returned")


def document_problems(app: FastAPI, docs: ProblemDocs) -> None:
    """Make ``app.openapi()`` document the problem responses the app actually sends."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's cache: the same dict until the routes change
        if not done or done[0] is not schema:
            _document(schema, docs)
            done[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
