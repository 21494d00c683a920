"""Prometheus metrics of the web apps: HTTP requests per route, and votes accepted or rejected.

They are never served on the app's own port (the one HAProxy's web front routes to): the
process serves them on METRICS_BIND. With several worker processes per instance
(PROMETHEUS_MULTIPROC_DIR set), their values live in shared files and the first worker to
bind METRICS_BIND serves them all.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter, generate_latest, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics

from core.config import Config

logger = logging.getLogger(__name__)

EXTENSION = "ha_vote_metrics"
# Probes would drown the real traffic.
EXCLUDED_PATHS = [r"^/healthz$", r"^/readyz$", r"^/static/"]


def init_app(app: Flask, config: Config) -> None:
    """Count requests and votes; serve them on METRICS_BIND when it is set."""
    registry = CollectorRegistry()
    if config.metrics_multiproc_dir:
        MultiProcessCollector(registry, path=config.metrics_multiproc_dir)
    exporter = PrometheusMetrics(
        app,
        path=None,
        # Multiprocess values are written to files whatever registry they are created in.
        registry=CollectorRegistry() if config.metrics_multiproc_dir else registry,
        group_by="url_rule",
        excluded_paths=EXCLUDED_PATHS,
    )
    votes = Counter(
        "vote_submissions",
        "Votes submitted to the vote app, by outcome (accepted/rejected) and reason",
        ["outcome", "reason"],
        registry=exporter.registry,
    )
    app.extensions[EXTENSION] = (registry, votes)
    if config.metrics_bind:
        _serve(config.metrics_bind, registry)


def _serve(bind: str, registry: CollectorRegistry) -> None:
    host, _, port = bind.rpartition(":")
    try:
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as exc:
        # Another worker of this instance serves them (they share the multiprocess files).
        logger.info("metrics on %s served by another process (%s)", bind, exc.strerror)


def exposition(app: Flask) -> bytes:
    """The app's metrics in Prometheus's text format (what a scrape of it returns)."""
    return generate_latest(app.extensions[EXTENSION][0])


def count_vote(outcome: str, reason: str) -> None:
    """Count one vote submission: outcome 'accepted' or 'rejected', and why."""
    entry = current_app.extensions.get(EXTENSION)
    if entry is not None:
        entry[1].labels(outcome=outcome, reason=reason).inc()
