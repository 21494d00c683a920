"""gunicorn settings for the web apps: `gunicorn -c python:app.gunicorn_conf app.wsgi:vote`."""

from __future__ import annotations

import os

from core.config import Config, ConfigError, GunicornSettings

try:
    _settings = GunicornSettings.from_env()
    # Check the apps' settings in the master, so a bad one stops gunicorn with one line
    # instead of workers failing to boot over and over.
    Config.from_env()
except ConfigError as _exc:
    raise SystemExit(f"config error: {_exc}") from None

bind = _settings.bind
workers = _settings.workers
# Threads overlap the waits on Redis (WAIT for replicas) and Postgres.
worker_class = "gthread"
threads = 4
# Heartbeat files on tmpfs: an overlayfs /tmp can stall workers into timeouts.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Longer than a vote's write budget plus one Redis retry cycle during a failover.
timeout = 30
graceful_timeout = 20
# No runtime control socket (gunicornc): several instances would share its default path,
# and nothing here uses it.
control_socket_disable = True
accesslog = "-" if _settings.access_log else None
errorlog = "-"

if _settings.log_format == "json":
    # gunicorn's own lines as JSON too, for Logstash.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "@timestamp", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
            }
        },
        # gunicorn merges this over its defaults key by key: the root logger must be
        # restated, or it names the default "console" handler this dict replaced.
        "root": {"handlers": ["stdout"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }


def when_ready(server) -> None:
    """Serve every worker's metrics from the master, on their own address (METRICS_BIND)."""
    if _settings.metrics_multiproc_dir and _settings.metrics_bind:
        from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

        host, _, port = _settings.metrics_bind.rpartition(":")
        GunicornPrometheusMetrics.start_http_server_when_ready(int(port), host or "127.0.0.1")


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    if _settings.metrics_multiproc_dir:
        from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

        GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
