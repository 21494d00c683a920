"""The vote app's JSON API: list the open polls, get one, vote (README, "The JSON API").

POST /api/votes is the first poll's vote at the URL it had before polls were data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, jsonify
from werkzeug.exceptions import HTTPException

from app.api import json_object, page_number
from app.metrics import count_vote
from app.polls import poll_document
from app.resources import get_resources
from app.vote import bp
from app.vote.casting import LOGIN_TO_VOTE, cast, login_missing, published_poll
from app.vote.views import PER_PAGE
from core.polls import FIRST_POLL_ID
from core.polls.published import list_open
from core.stream import Vote

VOTE_EXAMPLE = '{"option": "cats"}'


@bp.get("/api/polls")
def api_list():
    """The open polls, newest first: {"polls": [...], "page", "per_page", "next_page"}."""
    page = page_number()
    now = datetime.now(UTC)
    found = list_open(get_resources().redis, (page - 1) * PER_PAGE, PER_PAGE, now)
    return jsonify(
        polls=[poll_document(p, now) for p in found.polls],
        page=page,
        per_page=PER_PAGE,
        next_page=page + 1 if page * PER_PAGE < found.total else None,
    )


@bp.get("/api/polls/<poll_id>")
def api_get(poll_id: str):
    """One poll (its published definition)."""
    return jsonify(poll_document(published_poll(poll_id), datetime.now(UTC)))


def _api_vote(poll_id: str):
    if login_missing():
        abort(401, LOGIN_TO_VOTE)
    try:
        data = json_object(VOTE_EXAMPLE)
        if not isinstance(data.get("option"), str):
            abort(400, f"The body must be a JSON object such as {VOTE_EXAMPLE}.")
    except HTTPException:
        count_vote("rejected", "malformed")
        raise
    vote, _recorded = cast(poll_id, data["option"])
    return jsonify(accepted_document(vote)), 202


def accepted_document(vote: Vote) -> dict[str, str]:
    """The 202 answer to an accepted vote."""
    return {"vote_id": vote.vote_id, "poll": vote.poll, "option": vote.option, "voter": vote.voter}


@bp.post("/api/polls/<poll_id>/votes")
def api_vote(poll_id: str):
    """{"option": "<key>"} -> 202 {"vote_id", "poll", "option", "voter"}.

    The voter id lets a client (and `votectl drill`) find its row in Postgres later.
    """
    return _api_vote(poll_id)


@bp.post("/api/votes")
def api_first_poll_vote():
    """The first poll's vote at its old URL (same answers)."""
    return _api_vote(FIRST_POLL_ID)
