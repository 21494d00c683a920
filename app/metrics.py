"""Prometheus metrics of the web apps: HTTP requests per route, and votes accepted or rejected.

The request metrics keep the names and labels prometheus-flask-exporter gave them
(`flask_http_request_total{method,status}`, `flask_http_request_duration_seconds{method,
url_rule,status}`, `flask_http_request_exceptions_total`), which the alerts and the dashboard
read. They are kept here with prometheus_client alone because the vote app answers most votes
outside Flask (app/vote/fast.py) and must count them in the same series; the exporter keeps
its series to itself, and its hooks cost ~4 % of a vote's CPU.

They are never served on the app's own port (the one HAProxy's web front routes to): the
process serves them on METRICS_BIND. With several worker processes per instance
(PROMETHEUS_MULTIPROC_DIR set), their values live in shared files and the first worker to
bind METRICS_BIND serves them all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from time import perf_counter

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

from core.config import Config

logger = logging.getLogger(__name__)

EXTENSION = "ha_vote_metrics"
# Probes would drown the real traffic.
EXCLUDED_PATHS = re.compile(r"/healthz|/readyz|/static/.*")
# When the request started (set by the first layer that sees it).
STARTED = "ha_vote.started"


@dataclass(frozen=True)
class WebMetrics:
    """One app's metrics: the registry served, the request series and the vote counter."""

    registry: CollectorRegistry
    duration: Histogram
    requests: Counter
    exceptions: Counter
    votes: Counter

    def observe(self, method: str, rule: str, status: int, seconds: float) -> None:
        """Count one answered request (`rule` is the URL rule, not the raw path)."""
        self.duration.labels(method=method, url_rule=rule, status=str(status)).observe(seconds)
        self.requests.labels(method=method, status=str(status)).inc()


def _metrics(registry: CollectorRegistry) -> WebMetrics:
    return WebMetrics(
        registry,
        Histogram(
            "flask_http_request_duration_seconds",
            "Flask HTTP request duration in seconds",
            ("method", "url_rule", "status"),
            registry=registry,
        ),
        Counter(
            "flask_http_request_total",
            "Total number of HTTP requests",
            ("method", "status"),
            registry=registry,
        ),
        Counter(
            "flask_http_request_exceptions_total",
            "Total number of HTTP requests which resulted in an exception",
            ("method", "status"),
            registry=registry,
        ),
        Counter(
            "vote_submissions",
            "Votes submitted to the vote app, by outcome (accepted/rejected) and reason",
            ["outcome", "reason"],
            registry=registry,
        ),
    )


def init_app(app: Flask, config: Config) -> None:
    """Count requests and votes; serve them on METRICS_BIND when it is set. Call it before any
    other WSGI layer is added (it times from the first layer that sees the request)."""
    served = CollectorRegistry()
    if config.metrics_multiproc_dir:
        MultiProcessCollector(served, path=config.metrics_multiproc_dir)
        # Multiprocess values are written to files whatever registry they are created in.
        metrics = replace(_metrics(CollectorRegistry()), registry=served)
    else:
        metrics = _metrics(served)
    app.extensions[EXTENSION] = metrics
    app.wsgi_app = _timed(app.wsgi_app)
    app.after_request(_observe)
    app.teardown_request(_count_exception)
    if config.metrics_bind:
        _serve(config.metrics_bind, served)


def of(app: Flask) -> WebMetrics:
    """The app's metrics."""
    return app.extensions[EXTENSION]


def _timed(wsgi_app: Callable) -> Callable:
    # Before Flask opens the session: a request whose session cannot be opened (Redis
    # failing) is answered by the error handlers, and must be counted too.
    def timed(environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ.setdefault(STARTED, perf_counter())
        return wsgi_app(environ, start_response)

    return timed


def _observe(response: Response) -> Response:
    started = request.environ.get(STARTED)
    if started is not None and not EXCLUDED_PATHS.fullmatch(request.path):
        rule = request.url_rule.rule if request.url_rule else "None"
        elapsed = perf_counter() - started
        of(current_app).observe(request.method, rule, response.status_code, elapsed)
    return response


def _count_exception(exc: BaseException | None) -> None:
    if exc is not None and not EXCLUDED_PATHS.fullmatch(request.path):
        of(current_app).exceptions.labels(method=request.method, status="500").inc()


def _serve(bind: str, registry: CollectorRegistry) -> None:
    host, _, port = bind.rpartition(":")
    try:
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as exc:
        # Another worker of this instance serves them (they share the multiprocess files).
        logger.info("metrics on %s served by another process (%s)", bind, exc.strerror)


def exposition(app: Flask) -> bytes:
    """The app's metrics in Prometheus's text format (what a scrape of it returns)."""
    return generate_latest(of(app).registry)


def count_vote(outcome: str, reason: str) -> None:
    """Count one vote submission: outcome 'accepted' or 'rejected', and why."""
    metrics = current_app.extensions.get(EXTENSION)
    if metrics is not None:
        metrics.votes.labels(outcome=outcome, reason=reason).inc()
