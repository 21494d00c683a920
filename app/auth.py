"""Who is voting: the logged-in account, else an anonymous voter id kept in the server-side session.

The voter id is only ever read from the server-side session; nothing the client sends
(form field, JSON, header or cookie value) can choose it.

Logging in or out starts a new session (new id, so a planted session id is useless) that
keeps only the browser's anonymous voter id and that voter's last vote. An anonymous vote
therefore stays an anonymous voter's vote: after login the voter is the account and the
pages show the account's vote; after logout they show the anonymous vote again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, has_request_context, jsonify, session
from flask.globals import request_ctx
from flask_wtf.csrf import generate_csrf

USER_ID = "user_id"
USERNAME = "username"
ANON_VOTER = "anon_voter"
CHOICES = "choices"

_ANON = re.compile(r"anon:[0-9a-f]{32}")

bp = Blueprint("session_api", __name__)


@dataclass(frozen=True)
class User:
    """A logged-in account."""

    id: int
    username: str

    @property
    def voter(self) -> str:
        return f"user:{self.id}"


def _session_usable() -> bool:
    # No session when opening it failed (Redis down): error pages must still render. Flask
    # 3.1's `session` property asserts it was opened, so look at what it holds instead.
    return has_request_context() and getattr(request_ctx, "_session", None) is not None


def user_in(data: Mapping) -> User | None:
    """The logged-in account a session's data holds, or None."""
    user_id, username = data.get(USER_ID), data.get(USERNAME)
    if isinstance(user_id, int) and isinstance(username, str):
        return User(user_id, username)
    return None


def voter_in(data: Mapping) -> str | None:
    """The voter a session's data holds: 'user:<id>' when logged in, else its 'anon:<hex>'
    id, else None."""
    user = user_in(data)
    if user is not None:
        return user.voter
    anon = data.get(ANON_VOTER)
    if isinstance(anon, str) and _ANON.fullmatch(anon):
        return anon
    return None


def current_user() -> User | None:
    """The logged-in account, or None."""
    return user_in(session) if _session_usable() else None


def current_voter(*, create: bool = True) -> str | None:
    """The voter id: 'user:<id>' when logged in, else this session's 'anon:<hex>' id."""
    voter = voter_in(session) if _session_usable() else None
    if voter is not None or not create:
        return voter
    anon = f"anon:{uuid.uuid4().hex}"
    session[ANON_VOTER] = anon
    return anon


def _restart_session() -> None:
    """A new session id holding only the anonymous voter and that voter's last vote."""
    anon = session.get(ANON_VOTER)
    kept_choice = (session.get(CHOICES) or {}).get(anon) if isinstance(anon, str) else None
    # Deletes the old record from Redis and issues a new id; the old cookie becomes worthless.
    current_app.session_interface.regenerate(session)
    session.clear()
    if isinstance(anon, str) and _ANON.fullmatch(anon):
        session[ANON_VOTER] = anon
        if kept_choice:
            session[CHOICES] = {anon: kept_choice}


def log_in(user: User) -> None:
    """Start a fresh session for `user` (see the module docstring for what is kept)."""
    _restart_session()
    session[USER_ID] = user.id
    session[USERNAME] = user.username


def log_out() -> None:
    """End the account's session; the browser goes back to its anonymous voter."""
    _restart_session()


@bp.get("/api/csrf")
def csrf_token():
    """A CSRF token for JSON clients (send it back in the X-CSRFToken header)."""
    return jsonify(csrf_token=generate_csrf())


def init_app(app: Flask) -> None:
    """Register /api/csrf and make the logged-in user available to every template."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"nav_user": current_user()})
