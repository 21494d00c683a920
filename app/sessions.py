"""Server-side sessions in Redis (Flask-Session), one cookie shared by the three apps.

A session is only written when something is stored in it. One that holds nothing but a CSRF
token or a message (a visitor who has not voted or logged in) lives an hour; one with a
voter or an account lives SESSION_LIFETIME_DAYS. So a crawler's page views cost an hour of
memory each, not a month.
"""

from __future__ import annotations

import pickle
import re
from datetime import UTC, datetime, timedelta

from flask import Flask, Request
from flask.sessions import SessionMixin
from flask_session.redis import RedisSessionInterface
from redis.client import Redis

from core.config import Config

# The same name in every app, so one session (login, anonymous voter) works across them.
COOKIE_NAME = "vote_session"
KEY_PREFIX = "session:"
# Requests that never use a session: no Redis round trip for them (results poll every second).
SESSIONLESS_PREFIXES = ("/healthz", "/readyz", "/static/", "/api/results")
# Each poll's results feed too (polled every second by its results page).
RESULTS_FEED = re.compile(r"/api/polls/[^/]+/results")


# Set on a request answered without its session (app/vote/fast.py sets it on a vote it hands
# over to the views after reading the session itself).
SKIP_SESSION = "ha_vote.skip_session"


# What makes a session worth keeping long: a voter id, an account, votes (app/auth.py).
KEEP_KEYS = ("anon_voter", "user_id", "choices")


class RedisSessions(RedisSessionInterface):
    """Flask-Session's Redis interface, skipped for requests that need no session, with a
    short lifetime for sessions that hold nothing worth keeping."""

    def __init__(self, app: Flask, *, anonymous_lifetime: timedelta, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.anonymous_lifetime = anonymous_lifetime

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if (
            request.path.startswith(SESSIONLESS_PREFIXES)
            or RESULTS_FEED.fullmatch(request.path)
            or SKIP_SESSION in request.environ
        ):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def stored(self, sid: str) -> dict | None:
        """The record of session `sid` as Flask-Session reads it (also for app/vote/fast.py)."""
        return self._retrieve_session_data(self._get_store_id(sid))

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        # A record that cannot be decoded (written by another version, damaged) is no
        # session: the visitor gets a new one instead of a 500 on every request.
        raw = self.client.get(store_id)
        if not raw:
            return None
        try:
            return self.serializer.decode(raw)
        except pickle.UnpicklingError:  # Flask-Session logged why
            return None

    def lifetime(self, app: Flask, session: SessionMixin) -> timedelta:
        if any(key in session for key in KEEP_KEYS):
            return app.permanent_session_lifetime
        return self.anonymous_lifetime

    def _upsert_session(self, session_lifetime, session, store_id: str) -> None:
        lifetime = self.lifetime(self.app, session) if self.app else session_lifetime
        super()._upsert_session(lifetime, session, store_id)

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        return datetime.now(UTC) + self.lifetime(app, session)


def init_app(app: Flask, config: Config, client: Redis) -> None:
    """Keep sessions in the Sentinel-managed master; only ids travel in the cookie."""
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX=KEY_PREFIX,
        SESSION_PERMANENT=True,
        PERMANENT_SESSION_LIFETIME=config.session_lifetime,
        # Write to Redis only when the session changes, not on every request.
        SESSION_REFRESH_EACH_REQUEST=False,
        SESSION_SERIALIZATION_FORMAT="msgpack",
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.cookie_secure,
    )
    app.session_interface = RedisSessions(
        app,
        anonymous_lifetime=config.anonymous_session_lifetime,
        client=client,
        key_prefix=KEY_PREFIX,
        permanent=True,
        serialization_format="msgpack",
    )
