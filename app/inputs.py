"""Refuse malformed input before any view (or CSRF check) sees it: one rule for every field.

Every field of every form, query string, JSON body and the path itself must be valid UTF-8
without control characters, and a JSON body may nest only a little. A request that breaks
a rule gets a 400 saying which rule, never a 500 (psycopg2 refuses NUL, werkzeug refuses a
newline in a redirect, json recurses) and never "CSRF token missing" for what was really a
bad encoding.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, Request, abort, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

# C0 controls and DEL. Tabs and newlines are refused too: no field is multi-line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_JSON_DEPTH = 8
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputError(ValueError):
    """A request breaks one of the input rules; the message says which."""


def check_text(value: str, what: str) -> None:
    """Refuse control characters (NUL included) in one value."""
    if _CONTROL.search(value):
        raise InputError(f"{what} contains a control character")


def _depth(value: Any, limit: int, level: int = 1) -> None:
    if level > limit:
        raise InputError(f"the JSON body nests deeper than {limit} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(key, "a JSON key")
            _depth(item, limit, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, limit, level + 1)
    elif isinstance(value, str):
        check_text(value, "a JSON string")


class StrictJSON(DefaultJSONProvider):
    """Flask's JSON, refusing bodies that nest deeper than MAX_JSON_DEPTH or hold control
    characters (as a ValueError: get_json(silent=True) then gives None, get_json() a 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise InputError("the JSON body nests too deeply") from None
        _depth(value, MAX_JSON_DEPTH)
        return value


def utf8(raw: bytes, what: str) -> str:
    """`raw` as text, or InputError naming `what` unless it is valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not valid UTF-8") from None


def check_urlencoded(data: bytes, whole: str, each: str) -> None:
    """Refuse a query string or form body (`whole`) whose names or values (`each`), once
    unescaped, are not UTF-8 or hold control characters."""
    for part in data.split(b"&"):
        for piece in part.split(b"=", 1):
            check_text(utf8(unquote_to_bytes(piece.replace(b"+", b" ")), whole), each)


def check_request(req: Request) -> None:
    """Apply the rules to the path, the query string and a form or JSON body."""
    # WSGI hands the path over as latin-1 characters standing for the raw bytes.
    path = utf8(req.environ.get("PATH_INFO", "").encode("latin-1"), "the path")
    check_text(path, "the path")
    check_urlencoded(req.query_string, "the query", "the query")
    if req.referrer is not None:
        try:
            # Flask-WTF compares it with the host's over HTTPS; a bad port raises there.
            _port = urlsplit(req.referrer).port
        except ValueError:
            raise InputError("the Referer header is not a valid URL") from None
    if req.mimetype in FORM_TYPES:
        body = req.get_data(cache=True)
        if req.mimetype == FORM_TYPES[0]:
            check_urlencoded(body, "the form", "a form field")
        else:
            for key, value in req.form.items(multi=True):
                check_text(key, "a form field")
                check_text(value, "a form field")
    elif req.is_json and req.content_length != 0:
        utf8(req.get_data(cache=True), "the JSON body")


TOO_LARGE = "ha_vote.body_too_large"


class ChunkedBodyLimit:
    """WSGI middleware: a body sent without Content-Length (chunked) is read here, up to the
    limit; beyond it the answer is 413. Werkzeug would instead silently cut such a body at
    MAX_CONTENT_LENGTH and hand the views a truncated request."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("CONTENT_LENGTH") in (None, "")
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            body = environ["wsgi.input"].read(self.max_bytes + 1)
            if len(body) > self.max_bytes:
                # Answered by the app (one error format for all), before anything reads it.
                environ[TOO_LARGE] = True
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.app(environ, start_response)


def _refuse_malformed() -> None:
    if request.environ.get(TOO_LARGE):
        raise RequestEntityTooLarge()
    try:
        check_request(request)
    except InputError as exc:
        abort(400, f"Bad request: {exc}.")


def init_app(app: Flask) -> None:
    """Check every request first (before CSRF), and parse JSON strictly."""
    app.json = StrictJSON(app)
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    app.before_request(_refuse_malformed)
