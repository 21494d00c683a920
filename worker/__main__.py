"""`python -m worker`: drain the vote stream into Postgres until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
from enum import IntEnum

from prometheus_client import start_http_server

from core.config import Config, ConfigError
from core.logs import configure_logging
from worker.daemon import VoteWorker


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    CONFIG_ERROR = 2


def main() -> int:
    """Build the worker from the environment, serve its metrics and run it until told to stop."""
    try:
        config = Config.from_env(web=False)
        worker = VoteWorker.from_config(config)
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return ExitStatus.CONFIG_ERROR
    configure_logging(config.log_format)
    if config.worker_metrics_port:
        try:
            start_http_server(
                config.worker_metrics_port,
                addr=config.worker_metrics_addr,
                registry=worker.metrics.registry,
            )
        except OSError as exc:
            print(
                f"worker: WORKER_METRICS_PORT {config.worker_metrics_port}: {exc}", file=sys.stderr
            )
            return ExitStatus.ERROR
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
