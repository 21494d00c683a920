"""Logging to stdout: JSON lines in deployment (for Logstash), plain text for people."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def dict_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A logging.config dict: every logger (the app's, granian's, the worker's) to stdout, as
    JSON lines ('json') or plain text ('text')."""
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": FIELDS,
            "rename_fields": {"asctime": "@timestamp", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        # The server's own loggers (granian) go through the root handler too.
        "loggers": {
            name: {"handlers": [], "level": level, "propagate": True}
            for name in ("_granian", "granian.access")
        },
    }


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every logger's records to stdout in the given format ('json' or 'text')."""
    logging.config.dictConfig(dict_config(log_format, logging.getLevelName(level)))
