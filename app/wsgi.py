"""WSGI entry points (`python -m app.serve NAME` serves them): `app.wsgi:vote`, `:result`, `:login`.

Each app is built on first access, so a worker serving the vote app never builds the
other two (and no client is created at import time).
"""

from __future__ import annotations

from flask import Flask

from app import APPS, create_app
from core.config import ConfigError

__all__ = list(APPS)


def __getattr__(name: str) -> Flask:
    if name not in APPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        application = create_app(name)
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from None
    globals()[name] = application
    return application
