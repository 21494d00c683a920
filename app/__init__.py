"""The vote, result and login web apps (one Flask app factory)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from app import auth, errors, health, inputs, metrics, ratelimit, resources, sessions
from core.config import Config
from core.logs import configure_logging

APPS = ("vote", "result", "login")

csrf = CSRFProtect()

# Pages only load what this app serves: no inline scripts, no other origins.
CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"


def _security_headers(response: Response) -> Response:
    if not request.path.startswith("/static/"):
        # Pages carry CSRF tokens and account data, API answers change: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def _feature_blueprint(name: str) -> Blueprint:
    if name == "vote":
        from app.vote.views import bp
    elif name == "result":
        from app.result.views import bp
    else:
        from app.login.views import bp
    return bp


def create_app(name: str, config: Config | None = None) -> Flask:
    """Build the `name` app ("vote", "result" or "login"); config defaults to the environment."""
    if name not in APPS:
        raise ValueError(f"unknown app {name!r}: expected one of {', '.join(APPS)}")
    config = config or Config.from_env()
    configure_logging(config.log_format)
    app = Flask(__name__)
    app.config.update(
        APP_NAME=name,
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        # A token lives as long as the session it belongs to (a page left open stays usable).
        WTF_CSRF_TIME_LIMIT=None,
    )
    # HAProxy adds one X-Forwarded-For / X-Forwarded-Proto hop.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    clients = resources.init_app(app, config)
    sessions.init_app(app, config, clients.redis)
    inputs.init_app(app)  # before CSRF: a bad encoding is not a missing token
    csrf.init_app(app)
    if name == "login":  # only login has limits; elsewhere it cost ~5% CPU per request
        ratelimit.init_app(app, clients)
    metrics.init_app(app, config)
    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(_feature_blueprint(name))
    app.after_request(_security_headers)
    return app
