"""The service's errors in one place: each domain error has one HTTP status, and every error answers
in one JSON shape.

ServiceError                        body {"error": {"code", "message", "field"}}
 ├── BadRequest         400         an Open Inference Protocol request the tier cannot take
 ├── InvalidInput       422         a field breaks a rule; the message names the field and the fix
 ├── OutOfRange         422         a window outside the family's training range (TIERED_OUT_OF_RANGE=refuse)
 ├── Unauthorized       401         missing or wrong admin token
 ├── AdminDisabled      403         no admin token configured, so the admin API is off
 ├── UnknownTier        404         a tier name the family does not have
 ├── UnknownModel       404         an Open Inference Protocol model or version this server does not serve
 ├── UnknownSymbol      404         a symbol the service does not follow
 ├── FamilyRefused      409         a family that fails verification (the old one keeps serving)
 ├── PayloadTooLarge    413         a body over TIERED_MAX_BODY_BYTES, refused before parsing
 ├── TierUnavailable    503         the named tier failed to load (Open Inference Protocol calls)
 └── NoTierAvailable    503         no tier of the family loaded
Framework errors (malformed JSON, schema violations, unknown routes) are mapped into the same shape;
anything unexpected becomes a 500 that names no file, path or stack frame (the log has those).
Under /v2 the Open Inference Protocol's own shape is used instead, {"error": "<message>"}, and its own
status for a bad request: 400 for InvalidInput too (`oip_status`). gRPC maps the same errors to its
status codes in `app/grpc_server.py`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

OIP_PREFIX = "/v2"


class ServiceError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message, self.field = message, field
        super().__init__(message)


class BadRequest(ServiceError):
    status, code = 400, "bad_request"


class InvalidInput(ServiceError):
    status, code = 422, "invalid_input"


class OutOfRange(ServiceError):
    """The message names the window and its features out of range, with their values and ranges."""

    status, code = 422, "out_of_training_range"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class AdminDisabled(ServiceError):
    status, code = 403, "admin_disabled"


class UnknownTier(ServiceError):
    status, code = 404, "unknown_tier"


class UnknownModel(ServiceError):
    status, code = 404, "unknown_model"


class UnknownSymbol(ServiceError):
    status, code = 404, "unknown_symbol"


class FamilyRefused(ServiceError):
    status, code = 409, "family_refused"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class TierUnavailable(ServiceError):
    status, code = 503, "tier_unavailable"


class NoTierAvailable(ServiceError):
    status, code = 503, "no_tier_available"


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The one error shape of the service's own endpoints."""

    error: ErrorDetail


class OipErrorBody(BaseModel):
    """The Open Inference Protocol's error shape (used under /v2)."""

    error: str


def error_content(path: str, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    if _is_oip(path):
        return {"error": message}
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(request: Request, status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_content(request.url.path, code, message, field), status, headers=headers)


# Standard responses every route declares in OpenAPI, so clients (and schemathesis) know the shapes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "a field breaks a rule; `field` names it"},
    413: {"model": ErrorBody, "description": "body over the size limit"},
}
OIP_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    # One range entry: bad request 400, unknown model 404, body too large 413, all {"error": "..."}.
    "4XX": {"model": OipErrorBody, "description": "bad request, unknown model or body too large"},
    503: {"model": OipErrorBody, "description": "model not ready"},
}

_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it (unknown field)",
    "json_invalid": "send a valid JSON document",
    "finite_number": "send a finite number (no NaN or Infinity)",
}
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               415: "unsupported_media_type"}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """("body", "candles", 3, "high") → "candles[3].high"; the leading "body" is implied."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _describe(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    fix = _FIXES.get(str(error.get("type")))
    return f"{msg}; {fix}" if fix else msg


def _is_oip(path: str) -> bool:
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def oip_status(exc: ServiceError) -> int:
    """The status of a domain error under the Open Inference Protocol, which answers every bad request 400."""
    return BadRequest.status if exc.status == 422 else exc.status  # invalid input, or out of range


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    status = oip_status(exc) if _is_oip(request.url.path) else exc.status
    return error_response(request, status, exc.code, exc.message, exc.field, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {"msg": "invalid request", "loc": ()}
    field: str | None
    if first.get("type") == "json_invalid":
        where = first.get("loc", ("body", 0))[-1]
        field, message = "body", (f"body is not valid JSON at character {where} "
                                  f"({first.get('ctx', {}).get('error', '')}); {_FIXES['json_invalid']}")
    else:
        field = field_path(first.get("loc", ())) or "body"  # the whole body: not an object, say
        message = f"{field}: {_describe(first)}"
    return _invalid(request, message, field)


def _invalid(request: Request, message: str, field: str | None) -> JSONResponse:
    # The Open Inference Protocol answers every bad request with 400.
    status = BadRequest.status if _is_oip(request.url.path) else InvalidInput.status
    return error_response(request, status, InvalidInput.code, message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):
        # FastAPI's own 400 for a JSON body it could not decode: answered like any malformed JSON, with
        # the status the OpenAPI document declares.
        problem = (f"is not UTF-8 text ({cause.reason} at byte {cause.start})"
                   if isinstance(cause, UnicodeDecodeError) else "nests arrays or objects too deeply")
        return _invalid(request, f"body {problem}; {_FIXES['json_invalid']}", "body")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(request, exc.status_code, code, str(exc.detail), None, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this handler, so the server log keeps the traceback; the client
    # learns nothing about files or frames.
    return error_response(request, 500, "internal", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
