"""Every error answered in one place: JSON for the API and JSON clients, a page for people."""

from __future__ import annotations

import logging

import redis.exceptions as redis_errors
from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from psycopg2 import OperationalError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
    UnprocessableEntity,
)

from app import metrics

logger = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Not possible now",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Please check your input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}
UNAVAILABLE = "The service is briefly unavailable, please try again in a moment."
INTERNAL = "Something went wrong on our side. Please try again."
_REDIS_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError)
# Headers worth keeping from werkzeug's own error response (Allow on 405, Retry-After...).
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class InvalidFields(UnprocessableEntity):
    """422: the request is well formed, but fields break the rules; `fields` says how."""

    def __init__(self, description: str, fields: dict[str, list[str]]) -> None:
        super().__init__(description)
        self.fields = fields


def is_transient(exc: BaseException | None) -> bool:
    """Errors of a data store that is failing over or unreachable: the client may retry."""
    if isinstance(exc, redis_errors.RedisError):
        # The master client turns a moving master's replies into ConnectionError.
        return isinstance(exc, _REDIS_TRANSIENT)
    # psycopg2: no connection, a lost one, or a pool whose connections stayed busy.
    return isinstance(exc, OperationalError)


def wants_json() -> bool:
    """API paths and clients that prefer JSON to HTML get JSON."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(
    code: int,
    message: str,
    headers: dict[str, str] | None = None,
    fields: dict[str, list[str]] | None = None,
) -> Response:
    """The error answer in the form the client wants (JSON: {"error", and "fields" for 422})."""
    if wants_json():
        response = jsonify(error=message, **({"fields": fields} if fields else {}))
    else:
        title = TITLES.get(code, "Error")
        response = Response(render_template("error.html", code=code, title=title, message=message))
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_http(exc: HTTPException) -> Response:
    code = exc.code or 500
    if code >= 500:
        return _handle_server_error(exc)
    if request.blueprint == "vote" and request.method == "POST":
        # Refused before the view could count it.
        if isinstance(exc, CSRFError):
            metrics.count_vote("rejected", "csrf")
        elif isinstance(exc, RequestEntityTooLarge):
            metrics.count_vote("rejected", "too_large")
    headers = {k: v for k, v in exc.get_headers() if k in _KEPT_HEADERS}
    fields = exc.fields if isinstance(exc, InvalidFields) else None
    return error_response(code, exc.description or TITLES.get(code, "Error"), headers, fields)


def _handle_server_error(exc: Exception) -> Response:
    # Flask wraps unhandled exceptions (including those from opening the session) in a 500.
    original = getattr(exc, "original_exception", None) or exc
    if is_transient(original):
        logger.warning("%s %s: data store unavailable: %r", request.method, request.path, original)
        return error_response(503, UNAVAILABLE, {"Retry-After": "2"})
    if isinstance(exc, HTTPException) and exc.code == 503:
        return error_response(503, exc.description or UNAVAILABLE, {"Retry-After": "2"})
    if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
        return error_response(exc.code or 500, exc.description or INTERNAL)
    logger.error("%s %s failed", request.method, request.path, exc_info=original)
    return error_response(500, INTERNAL)


def init_app(app: Flask) -> None:
    """Register the handlers for HTTP errors, data-store failures and anything unexpected."""
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(redis_errors.RedisError, _handle_server_error)
    app.register_error_handler(OperationalError, _handle_server_error)
    app.register_error_handler(InternalServerError, _handle_server_error)
