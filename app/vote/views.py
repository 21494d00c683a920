"""Vote pages: GET / lists the open polls, GET /p/<id> shows one, and its form votes.

POST /vote is the first poll's form, at the URL it had before polls were data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, request

from app.api import page_number
from app.auth import current_user, current_voter
from app.choices import current_choice
from app.polls import page_url
from app.resources import get_config, get_resources
from app.vote import bp
from app.vote.casting import LOGIN_TO_VOTE, cast, login_missing, published_poll
from core.polls import FIRST_POLL_ID
from core.polls.published import list_open

PER_PAGE = 20
# The query the form's redirect adds: show the confirmation.
VOTED = "voted"


@bp.get("/")
def index():
    """The open polls, newest first, a page at a time, with a link to make one."""
    page = page_number()
    found = list_open(get_resources().redis, (page - 1) * PER_PAGE, PER_PAGE, datetime.now(UTC))
    return render_template(
        "vote/index.html",
        polls=found.polls,
        page=page,
        has_next=page * PER_PAGE < found.total,
    )


@bp.get("/p/<poll_id>")
def poll_page(poll_id: str):
    """The poll, with the voter's current choice highlighted; closed polls say so."""
    poll = published_poll(poll_id)
    user = current_user()
    # No voter id is made for a mere visit (it would keep the session for a month).
    voter = current_voter(create=False)
    choice = current_choice(voter, poll.id, look_up=user is not None) if voter else None
    chosen = poll.option(choice.option) if choice else None
    now = datetime.now(UTC)
    return render_template(
        "vote/poll.html",
        poll=poll,
        # After the form's redirect (?voted): the confirmation, from the recorded choice.
        confirmation=f"Your vote for {chosen.label} is in."
        if chosen and VOTED in request.args
        else None,
        is_open=poll.is_open(now),
        ended_at=poll.ended_at(now),
        chosen=chosen.key if chosen else None,
        login_needed=get_config().require_login and user is None,
        is_owner=user is not None and user.id == poll.owner_id,
        share_url=request.host_url.rstrip("/") + page_url(poll.id),
    )


def _vote_form(poll_id: str):
    if login_missing():
        flash(LOGIN_TO_VOTE, "info")
        # The login app is another service behind the same HAProxy: link by path.
        return redirect(f"/login?next={page_url(poll_id)}", 303)
    cast(poll_id, request.form.get("option"))
    # The page confirms the vote from the voter's recorded choice: no message is kept in the
    # session, which stays unchanged (no write).
    return redirect(voted_url(poll_id), 303)


def voted_url(poll_id: str) -> str:
    """Where a form vote goes next: the poll's page, showing the confirmation."""
    return f"{page_url(poll_id)}?{VOTED}"


@bp.post("/p/<poll_id>/vote")
def vote_form(poll_id: str):
    """The poll page's form: vote, then back to the page with a confirmation."""
    return _vote_form(poll_id)


@bp.post("/vote")
def first_poll_vote_form():
    """The first poll's form at its old URL."""
    return _vote_form(FIRST_POLL_ID)
