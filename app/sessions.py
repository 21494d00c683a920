"""Server-side sessions in Redis (Flask-Session), one cookie shared by the three apps."""

from __future__ import annotations

import re

from flask import Flask, Request
from flask.sessions import SessionMixin
from flask_session.redis import RedisSessionInterface
from redis.client import Redis

from core.config import Config

# The same name in every app, so one session (login, anonymous voter) works across them.
COOKIE_NAME = "vote_session"
KEY_PREFIX = "session:"
# Requests that never use a session: no Redis round trip for them (results poll every second).
SESSIONLESS_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/", "/api/results")
# Each poll's results feed too (polled every second by its results page).
RESULTS_FEED = re.compile(r"/api/polls/[^/]+/results")


class RedisSessions(RedisSessionInterface):
    """Flask-Session's Redis interface, skipped for requests that need no session."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(SESSIONLESS_PREFIXES) or RESULTS_FEED.fullmatch(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)


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
        client=client,
        key_prefix=KEY_PREFIX,
        permanent=True,
        serialization_format="msgpack",
    )
