"""Prometheus metrics of the web apps: HTTP requests per route, and votes accepted or rejected."""

from __future__ import annotations

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from core.config import Config

EXTENSION = "ha_vote_metrics"
# Probes and scrapes would drown the real traffic.
EXCLUDED_PATHS = [r"^/metrics$", r"^/healthz$", r"^/readyz$", r"^/static/"]


def init_app(app: Flask, config: Config) -> None:
    """Serve /metrics on the app's port; under gunicorn, merge all workers' metrics."""
    options = {"group_by": "url_rule", "excluded_paths": EXCLUDED_PATHS}
    if config.metrics_multiproc_dir:
        # Values live in files in PROMETHEUS_MULTIPROC_DIR, so any worker can answer a scrape.
        exporter = GunicornInternalPrometheusMetrics(app, **options)
    else:
        # A registry per app, so several apps can live in one process (tests).
        exporter = PrometheusMetrics(app, registry=CollectorRegistry(), **options)
    app.extensions[EXTENSION] = Counter(
        "vote_submissions",
        "Votes submitted to the vote app, by outcome (accepted/rejected) and reason",
        ["outcome", "reason"],
        registry=exporter.registry,
    )


def count_vote(outcome: str, reason: str) -> None:
    """Count one vote submission: outcome 'accepted' or 'rejected', and why."""
    counter = current_app.extensions.get(EXTENSION)
    if counter is not None:
        counter.labels(outcome=outcome, reason=reason).inc()
