"""Result views: GET /p/<id>/result (page, updated live by static/result.js) and
GET /api/polls/<id>/results; /result and /api/results are the first poll's, at their old URLs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, jsonify, render_template

from app.resources import get_resources
from app.result.tallies import read_results
from core.polls import FIRST_POLL_ID, is_poll_id

bp = Blueprint("result", __name__)

NO_SUCH_POLL = "No poll has this id (it may have been deleted)."


def _results(poll_id: str) -> dict:
    """The results from a replica (they may lag a little: fine for a page that refreshes every
    second); a poll a replica does not know yet (just created) is looked up on the leader."""
    if not is_poll_id(poll_id):
        abort(404, NO_SUCH_POLL)
    resources = get_resources()
    now = datetime.now(UTC)
    results = read_results(resources.ro, poll_id, now)
    if results is None and resources.rw is not resources.ro:
        results = read_results(resources.rw, poll_id, now)
    if results is None:
        abort(404, NO_SUCH_POLL)
    return results


def _page(poll_id: str):
    results = _results(poll_id)
    return render_template(
        "result/index.html",
        results=results,
        feed_url=f"/api/polls/{poll_id}/results",
    )


def _feed(poll_id: str):
    response = jsonify(_results(poll_id))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/p/<poll_id>/result")
def page(poll_id: str):
    """A poll's results page; it works without JavaScript and updates itself with it."""
    return _page(poll_id)


@bp.get("/api/polls/<poll_id>/results")
def api_results(poll_id: str):
    """A poll's current counts as JSON (polled every second by the page)."""
    return _feed(poll_id)


@bp.get("/result")
def first_poll_page():
    """The first poll's results page at its old URL."""
    return _page(FIRST_POLL_ID)


@bp.get("/api/results")
def first_poll_results():
    """The first poll's counts at their old URL."""
    return _feed(FIRST_POLL_ID)
