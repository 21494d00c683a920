"""Rate limits (POST /login): counters in the Sentinel-discovered Redis master, shared by all."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from app.resources import Resources, get_config

# Like any Flask extension: one object, bound to the app in init_app.
limiter = Limiter(key_func=get_remote_address)

LOGIN_LIMITED = "Too many login attempts. Please wait a minute and try again."


def login_limit() -> str:
    """The login limit from config, e.g. '10 per minute'."""
    return get_config().login_rate_limit


def account_key() -> str:
    """Limit by the account being tried, whatever address the attempts come from."""
    username = request.form.get("username", "").strip().lower()
    return f"account:{username}"


def init_app(app: Flask, resources: Resources) -> None:
    """Keep counters on the app's own Sentinel-managed connection pool (no second client)."""
    app.config.update(
        RATELIMIT_STORAGE_URI="redis://",
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": resources.redis.connection_pool},
        RATELIMIT_KEY_PREFIX="ratelimit",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    limiter.init_app(app)
