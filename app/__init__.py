"""The vote, result and login web apps (one Flask app factory)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from app import auth, errors, health, inputs, metrics, polls, resources, sessions
from core.config import Config
from core.logs import configure_logging

APPS = ("vote", "result", "login")

csrf = CSRFProtect()

# Pages only load what this app serves: no inline scripts, no other origins.
CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"


def security_headers(response: Response, path: str) -> Response:
    """Add the headers every answer carries (those the view did not set itself)."""
    if not path.startswith("/static/"):
        # Pages carry CSRF tokens and account data, API answers change: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def _security_headers(response: Response) -> Response:
    return security_headers(response, request.path)


def _feature_blueprints(name: str) -> list[Blueprint]:
    if name == "vote":
        from app.vote import bp

        return [bp]
    if name == "result":
        from app.result.views import bp

        return [bp]
    from app.login.views import bp
    from app.manage import bp as manage_bp

    return [bp, manage_bp]


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
    clients = resources.init_app(app, config)
    sessions.init_app(app, config, clients.redis)
    metrics.init_app(app, config)  # first: it times every request, refused ones too
    if name == "vote":
        # Most votes are answered before Flask (after the proxy headers are applied); the
        # others, and votes it could not cast, are answered by the views as before.
        from app.vote import fast

        fast.init_app(app)
    # HAProxy adds one X-Forwarded-For / X-Forwarded-Proto hop.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
    inputs.init_app(app)  # before CSRF: a bad encoding is not a missing token
    csrf.init_app(app)
    if name == "login":  # only login has limits; elsewhere it cost ~5% CPU per request
        from app import ratelimit  # (and Flask-Limiter's memory)

        ratelimit.init_app(app, clients)
    errors.init_app(app)
    auth.init_app(app)
    polls.init_app(app)
    app.register_blueprint(health.bp)
    for blueprint in _feature_blueprints(name):
        app.register_blueprint(blueprint)
    app.after_request(_security_headers)
    return app
