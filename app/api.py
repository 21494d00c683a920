"""What every JSON endpoint reads the same way: a body that is one flat JSON object, and the
page number of a listing. Bad input ends the request with a clear 4xx (app/errors.py)."""

from __future__ import annotations

from flask import abort, current_app, request

MAX_PAGE = 1000


def json_object(example: str, *, allowed: frozenset[str] | None = None) -> dict:
    """The request's JSON body: one object whose values are strings, numbers, booleans,
    null or lists of those (no nesting beyond that). 415 if it is not JSON, 400 otherwise.

    With `allowed`, any other key is a 400 too (a misspelt field must not pass unnoticed).
    """
    if not request.is_json:
        abort(415, f"Send JSON such as {example} with Content-Type: application/json.")
    try:
        # The app's JSON provider (app/inputs.py) also refuses control characters and deep
        # nesting: its reason is worth showing.
        data = current_app.json.loads(request.get_data(cache=True))
    except ValueError as exc:  # a JSON syntax error, or app.inputs.InputError
        abort(400, f"The body is not acceptable JSON ({exc}); send an object such as {example}.")
    if not isinstance(data, dict):
        abort(400, f"The body must be a JSON object such as {example}.")
    nested = nested_field(data)
    if nested is not None:
        abort(400, f"The field {nested!r} must not hold objects or nested lists.")
    if allowed is not None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            abort(400, f"Unknown field {unknown[0]!r}: send only {', '.join(sorted(allowed))}.")
    return data


def nested_field(data: dict) -> str | None:
    """The first field of a JSON object holding an object or a nested list, if any."""
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, dict | list) for item in items):
            return key
    return None


def page_number() -> int:
    """?page=N of a listing (1 when absent); 400 unless a whole number from 1 to MAX_PAGE."""
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        abort(400, f"page must be a whole number from 1 to {MAX_PAGE}.")
    return int(raw)
