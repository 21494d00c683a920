"""Prometheus metrics of the web apps: HTTP requests per route, and votes accepted or rejected.

They are never served on the app's own port (the one HAProxy's web front routes to): under
gunicorn the master serves every worker's metrics on METRICS_BIND (app/gunicorn_conf.py),
so no spelling of a URL through the front can reach them.
"""

from __future__ import annotations

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

from core.config import Config

EXTENSION = "ha_vote_metrics"
# Probes would drown the real traffic.
EXCLUDED_PATHS = [r"^/healthz$", r"^/readyz$", r"^/static/"]


def init_app(app: Flask, config: Config) -> None:
    """Count requests and votes; under gunicorn, in files all workers share."""
    options = {"group_by": "url_rule", "excluded_paths": EXCLUDED_PATHS}
    if config.metrics_multiproc_dir:
        # Values live in files in PROMETHEUS_MULTIPROC_DIR; gunicorn's master serves them.
        exporter = GunicornPrometheusMetrics(app, **options)
    else:
        # A registry per app, so several apps can live in one process (tests).
        exporter = PrometheusMetrics(app, path=None, registry=CollectorRegistry(), **options)
    app.extensions[EXTENSION] = (
        exporter,
        Counter(
            "vote_submissions",
            "Votes submitted to the vote app, by outcome (accepted/rejected) and reason",
            ["outcome", "reason"],
            registry=exporter.registry,
        ),
    )


def exposition(app: Flask) -> bytes:
    """The app's metrics in Prometheus's text format (what a scrape of it returns)."""
    return generate_latest(app.extensions[EXTENSION][0].registry)


def count_vote(outcome: str, reason: str) -> None:
    """Count one vote submission: outcome 'accepted' or 'rejected', and why."""
    entry = current_app.extensions.get(EXTENSION)
    if entry is not None:
        entry[1].labels(outcome=outcome, reason=reason).inc()
