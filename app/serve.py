"""Serve a web app: `python -m app.serve vote|result|login`, with granian (a Rust HTTP server
running the WSGI app in worker threads).

Settings come from the environment (core/config.py: WebSettings): WEB_BIND, WEB_WORKERS,
WEB_THREADS, WEB_ACCESS_LOG, LOG_FORMAT. With WEB_WORKERS > 1 the processes share their
metrics through files in PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless set).
The app's own settings are checked here first, so a bad one stops the server with one line
instead of workers failing over and over. Static files are served by granian itself, without
a Python request.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
from enum import IntEnum
from pathlib import Path

from app import APPS
from core.config import Config, ConfigError, WebSettings
from core.logs import dict_config

STATIC = Path(__file__).parent / "static"


class ExitStatus(IntEnum):
    OK = 0
    CONFIG_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Check the settings, then serve `app.wsgi:<name>` until SIGTERM/SIGINT."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in APPS:
        print(f"usage: python -m app.serve {{{'|'.join(APPS)}}}", file=sys.stderr)
        return ExitStatus.CONFIG_ERROR
    try:
        web = WebSettings.from_env()
        Config.from_env()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return ExitStatus.CONFIG_ERROR
    made = _metrics_files(web.workers)
    from granian.constants import Interfaces

    server = _server_class(web.workers)(
        f"app.wsgi:{args[0]}",
        address=web.host,
        port=web.port,
        interface=Interfaces.WSGI,
        workers=web.workers,
        blocking_threads=web.threads,
        # HAProxy keeps connections to the apps open; answers go out as HTTP/1.1.
        http="1",
        log_access=web.access_log,
        log_dictconfig=dict_config(web.log_format),
        respawn_failed_workers=True,
        # Longer than a vote's write budget plus one Redis retry cycle.
        workers_kill_timeout=20,
        static_path_route=["/static"],
        static_path_mount=[STATIC],
    )
    try:
        server.serve()
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return ExitStatus.OK


def _server_class(workers: int) -> type:
    """granian's process server for several workers; for one, its thread server, so the
    worker runs in this process instead of a child (one Python process per instance: ~25 MiB
    less each, measured in docs/BENCHMARKS.md)."""
    from granian.server import MPServer, MTServer
    from granian.server.common import AbstractServer

    if workers > 1:
        return MPServer

    class InProcess(MTServer):
        """granian's thread server (made for free-threaded Python) on a Python with a GIL:
        the worker's Python code holds the GIL as it would in a worker process; the main
        thread only waits for signals. Pinned by tests/app/test_web.py (the server tests)."""

        def _check_gil(self) -> None:
            pass  # it refuses to run with the GIL enabled

        def serve(self, *args, **kwargs) -> None:
            # MTServer.serve only adds a warning about free-threaded Python and refuses the
            # reloader and the memory monitor, which this module never asks for.
            AbstractServer.serve(self, *args, **kwargs)

    return InProcess


def _metrics_files(workers: int) -> str | None:
    """Several worker processes share their metrics through files (prometheus_client's
    multiprocess mode) in a fresh directory of their own; one process keeps them in memory.
    Returns the directory made here (removed when the server stops), if any."""
    if workers == 1:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return None
    # prometheus_client chooses in-memory or file-backed values when it is imported, and this
    # process has imported it already (with the app package): workers must start afresh
    # rather than be forked from it.
    multiprocessing.set_start_method("spawn", force=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    made = tempfile.mkdtemp(prefix="ha-vote-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


if __name__ == "__main__":
    sys.exit(main())
