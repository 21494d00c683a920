"""Result views: GET /result (page, updated live by static/result.js) and GET /api/results."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from app.resources import get_config, get_resources
from app.result.tallies import read_results

bp = Blueprint("result", __name__)


def _results() -> dict:
    # Replicas may lag a little behind the leader: fine for results that refresh every second.
    return read_results(get_resources().ro, get_config())


@bp.get("/result")
def page():
    """The results page; it works without JavaScript and updates itself with it."""
    return render_template("result/index.html", results=_results())


@bp.get("/api/results")
def api_results():
    """The current counts as JSON (polled every second by the page)."""
    response = jsonify(_results())
    response.headers["Cache-Control"] = "no-store"
    return response
