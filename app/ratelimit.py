"""Rate limits of the login app: failed logins per client address and per (account, address),
registrations per address. Counters live in the Sentinel-discovered Redis master.

Only failures count against logins, and an account's counter is per address: nobody can lock
a user out by failing to log in as them from elsewhere.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from app.resources import Resources, get_config

# Like any Flask extension: one object, bound to the app in init_app.
limiter = Limiter(key_func=get_remote_address)

LOGIN_LIMITED = "Too many failed logins. Please wait a minute and try again."
REGISTER_LIMITED = "Too many new accounts from your address. Please try again later."


def login_limit() -> str:
    """The failed-login limit from config, e.g. '10 per minute'."""
    return get_config().login_rate_limit


def register_limit() -> str:
    """The registration limit per address from config, e.g. '30 per hour'."""
    return get_config().register_rate_limit


def account_key() -> str:
    """The account being tried, from this address."""
    username = request.form.get("username", "").strip().lower()[:200]
    return f"account:{username}@{get_remote_address()}"


def failed(response) -> bool:
    """Only failed logins count (401): a user who logs in often is never limited."""
    return response.status_code == 401


def init_app(app: Flask, resources: Resources) -> None:
    """Keep counters on the app's own Sentinel-managed connection pool (no second client)."""
    app.config.update(
        RATELIMIT_STORAGE_URI="redis://",
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": resources.redis.connection_pool},
        RATELIMIT_KEY_PREFIX="ratelimit",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    limiter.init_app(app)
