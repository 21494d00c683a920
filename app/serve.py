"""Serve a web app: `python -m app.serve vote|result|login`, with granian (a Rust HTTP server
running the WSGI app in worker threads).

Settings come from the environment (core/config.py: WebSettings): WEB_BIND, WEB_WORKERS,
WEB_THREADS, WEB_ACCESS_LOG, LOG_FORMAT. The app's own settings are checked here first, so a
bad one stops the server with one line instead of workers failing over and over. Static files
are served by granian itself, without a Python request.
"""

from __future__ import annotations

import sys
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
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
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
    ).serve()
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
