"""Vote views: GET / shows the poll, POST /vote (form) and POST /api/votes (JSON) record a vote."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.auth import current_user, current_voter
from app.ballot_box import VoteNotSaved, record_vote
from app.choices import current_choice, remember_vote
from app.metrics import count_vote
from app.resources import get_config, get_resources
from core.config import PollOption
from core.stream import Vote

logger = logging.getLogger(__name__)

bp = Blueprint("vote", __name__)

NOT_SAVED = "Your vote could not be saved safely, please try again."
LOGIN_TO_VOTE = "Please log in to vote."


def _option(key: object) -> PollOption:
    """The poll option for `key`, or a 400 naming the valid keys."""
    for option in get_config().options:
        if option.key == key:
            return option
    count_vote("rejected", "unknown_option")
    valid = ", ".join(o.key for o in get_config().options)
    shown = key[:40] + "..." if isinstance(key, str) and len(key) > 40 else key
    abort(400, f"Unknown option {shown!r}: choose one of {valid}.")


def _cast(option: PollOption) -> Vote:
    """Record a vote for `option` by the session's voter; 503 unless replicas confirm it."""
    vote = Vote.new(current_voter(), option.key)
    try:
        entry_id = record_vote(get_resources().redis, vote, get_config())
    except VoteNotSaved as exc:
        count_vote("rejected", "not_saved")
        logger.warning("vote %s by %s not saved: %s", vote.vote_id, vote.voter, exc)
        abort(503, NOT_SAVED)
    count_vote("accepted", "ok")
    remember_vote(vote, entry_id)
    return vote


def _login_missing() -> bool:
    if get_config().require_login and current_user() is None:
        count_vote("rejected", "login_required")
        return True
    return False


@bp.get("/")
def index():
    """The poll, with the voter's current choice highlighted."""
    config = get_config()
    # No voter id is made for a mere visit (it would keep the session for a month).
    voter = current_voter(create=False)
    choice = current_choice(voter, look_up=current_user() is not None) if voter else None
    chosen = choice.option if choice and choice.option in config.option_keys else None
    return render_template(
        "vote/index.html",
        question=config.question,
        options=config.options,
        chosen=chosen,
        login_needed=config.require_login and current_user() is None,
    )


@bp.post("/vote")
def vote_form():
    """The page's form: vote, then redirect back with a confirmation."""
    if _login_missing():
        flash(LOGIN_TO_VOTE, "info")
        # The login app is another service behind the same HAProxy: link by path.
        return redirect("/login?next=/", 303)
    option = _option(request.form.get("option"))
    _cast(option)
    # Only the newest confirmation matters: a client that never follows the redirect must
    # not grow its session by one message per vote.
    session.pop("_flashes", None)
    flash(f"Your vote for {option.label} is in.", "success")
    return redirect(url_for("vote.index"), 303)


@bp.post("/api/votes")
def api_vote():
    """JSON API: {"option": "<key>"} -> 202 {"vote_id": ..., "option": ..., "voter": ...}.

    The voter id lets a client (and `votectl drill`) find its row in Postgres later.
    """
    if _login_missing():
        abort(401, LOGIN_TO_VOTE)
    if not request.is_json:
        count_vote("rejected", "malformed")
        abort(415, 'Send JSON such as {"option": "cats"} with Content-Type: application/json.')
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("option"), str):
        count_vote("rejected", "malformed")
        abort(400, 'The body must be a JSON object such as {"option": "cats"}.')
    vote = _cast(_option(data["option"]))
    return jsonify(vote_id=vote.vote_id, option=vote.option, voter=vote.voter), 202
