"""The owner's JSON API: POST /api/polls (create), POST /api/polls/<id>/close and /reopen,
DELETE /api/polls/<id> (README, "The JSON API"). Logged in (the session cookie) and with a
CSRF token (X-CSRFToken, from GET /api/csrf), like every POST."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, jsonify

from app.api import json_object
from app.auth import User, current_user
from app.errors import InvalidFields
from app.manage import actions, bp
from app.polls import page_url, poll_document
from core.polls import CLOSED, OPEN, InvalidPoll, make_draft

CREATE_EXAMPLE = '{"question": "Tea or coffee?", "options": ["Tea", "Coffee"]}'
CREATE_FIELDS = frozenset({"question", "options", "closes_at", "listed"})
LOG_IN = "Please log in to manage polls."


def _user() -> User:
    user = current_user()
    if user is None:
        abort(401, LOG_IN)
    return user


def _closes_at(raw: object) -> datetime | None:
    """closes_at: null, or an ISO 8601 time with its offset (e.g. 2030-01-31T18:00:00Z)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        abort(400, "closes_at must be null or a time such as 2030-01-31T18:00:00Z.")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        abort(400, "closes_at must be null or a time such as 2030-01-31T18:00:00Z.")
    return when


@bp.post("/api/polls")
def api_create():
    """Make a poll: 201 with the poll (and `published`: whether it already takes votes)."""
    user = _user()
    data = json_object(CREATE_EXAMPLE, allowed=CREATE_FIELDS)
    now = datetime.now(UTC)
    try:
        draft = make_draft(
            data.get("question"),
            data.get("options"),
            _closes_at(data.get("closes_at")),
            now=now,
            listed=data.get("listed", True),
        )
    except InvalidPoll as exc:
        raise InvalidFields(str(exc), exc.errors) from None
    poll, published = actions.create(draft, user)
    response = jsonify({**poll_document(poll, now), "published": published})
    response.status_code = 201
    response.headers["Location"] = page_url(poll.id)
    return response


@bp.post("/api/polls/<poll_id>/close")
def api_close(poll_id: str):
    """Close the user's poll: 200 with the poll."""
    poll = actions.set_state(poll_id, _user(), CLOSED)
    return jsonify(poll_document(poll, datetime.now(UTC)))


@bp.post("/api/polls/<poll_id>/reopen")
def api_reopen(poll_id: str):
    """Reopen the user's poll (without a closing time): 200 with the poll."""
    poll = actions.set_state(poll_id, _user(), OPEN)
    return jsonify(poll_document(poll, datetime.now(UTC)))


@bp.delete("/api/polls/<poll_id>")
def api_delete(poll_id: str):
    """Delete the user's poll and its votes: 204."""
    actions.delete(poll_id, _user())
    return "", 204
