"""Scheduled backups: `votectl backup --every N` becomes this small process, which runs the
same `votectl backup` once every N seconds in a child, keeps the newest `--keep`, and serves
the metrics Prometheus alerts on (monitoring/rules/backup.yml).

It imports only the standard library and prometheus_client: it sleeps for an hour between
backups, and a process holding everything a backup needs (SQLAlchemy, redis-py, click, the
whole of ops) held ~45 MiB for that; this one holds ~15 MiB (docs/BENCHMARKS.md, memory).
A backup that fails (an unreachable Sentinel, Postgres refusing the dump, a full disk) is
logged and counted; the scheduler goes on.

    python -m ops.backup_schedule --every 3600 --keep 24 --dest DIR [--metrics HOST:PORT] \
        -- COMMAND...
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core.logs import configure_logging

logger = logging.getLogger("ops.backup")

# A backup's directory name: when it was taken (UTC).
STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup or restore step failed; the message names the step."""


def complete_backups(dest_root: Path) -> list[Path]:
    """The complete backups under dest_root, oldest first."""
    if not dest_root.is_dir():
        return []
    return sorted(p for p in dest_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def newest_time(dest_root: Path) -> float | None:
    """When the newest complete backup was taken (Unix time), if there is one."""
    for path in reversed(complete_backups(dest_root)):
        try:
            return datetime.strptime(path.name, STAMP).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def prune(dest_root: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete backups; return what was deleted."""
    backups = complete_backups(dest_root)
    doomed = backups[:-keep] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


class BackupMetrics:
    """What Prometheus needs to alert on stale backups (monitoring/rules/backup.yml)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.last_success = Gauge(
            "ha_vote_backup_last_success_timestamp_seconds",
            "When the newest complete backup was taken (0: none yet)",
            registry=self.registry,
        )
        self.failures = Counter(
            "ha_vote_backup_failures", "Backups that failed", registry=self.registry
        )


class Child:
    """Takes one backup by running `command` (a `votectl backup` that takes one and exits);
    a failure is a BackupError with the child's last line of error output."""

    def __init__(self, command: Sequence[str], dest_root: Path) -> None:
        self.command, self.dest_root = list(command), dest_root
        self.running: subprocess.Popen | None = None

    def __call__(self) -> Path:
        self.running = subprocess.Popen(self.command, stderr=subprocess.PIPE, text=True)
        try:
            _, errors = self.running.communicate()
        finally:
            status, self.running = self.running.returncode, None
        if status != 0:
            lines = [line for line in errors.splitlines() if line.strip()]
            raise BackupError(lines[-1] if lines else f"the backup command exited with {status}")
        return complete_backups(self.dest_root)[-1]

    def stop(self) -> None:
        """Stop a backup in progress (it leaves only a partial directory, never counted)."""
        if self.running is not None:
            self.running.terminate()


class Scheduler:
    """Takes a backup every `every` seconds until SIGTERM/SIGINT; failures are logged, retried.

    `take_one` raises BackupError for every failure it expects, so none of them stops the
    scheduler.
    """

    def __init__(
        self,
        take_one: Callable[[], Path],
        every: float,
        keep: int,
        dest_root: Path,
        sleep: Callable[[float], None] = time.sleep,
        metrics: BackupMetrics | None = None,
    ) -> None:
        self.take_one, self.every, self.keep, self.dest_root = take_one, every, keep, dest_root
        self.sleep = sleep
        self.metrics = metrics or BackupMetrics()
        self.metrics.last_success.set(newest_time(dest_root) or 0)
        self.stopping = False

    def _stop(self, *_: object) -> None:
        self.stopping = True
        stop = getattr(self.take_one, "stop", None)
        if stop is not None:
            stop()

    def run_cycle(self) -> None:
        try:
            path = self.take_one()
        except BackupError as exc:
            if self.stopping:
                return
            self.metrics.failures.inc()
            logger.error("backup failed: %s (next try in %.0f s)", exc, self.every)
            return
        logger.info("backup written to %s", path)
        self.metrics.last_success.set(newest_time(self.dest_root) or time.time())
        for old in prune(self.dest_root, self.keep):
            logger.info("pruned old backup %s", old)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while not self.stopping:
            self.run_cycle()
            deadline = time.monotonic() + self.every
            while not self.stopping and time.monotonic() < deadline:
                self.sleep(min(1.0, deadline - time.monotonic()))


def metrics_address(addr: str) -> tuple[str, int]:
    """--metrics host:port (host 127.0.0.1 when empty); ValueError for anything else."""
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--metrics: expected host:port, got {addr!r}")
    return host or "127.0.0.1", int(port)


def serve_metrics(addr: str, registry: CollectorRegistry) -> None:
    """Serve `registry` on host:port (ValueError for anything else)."""
    host, port = metrics_address(addr)
    start_http_server(port, addr=host, registry=registry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.backup_schedule",
        description="Run a backup command every N seconds; keep the newest; serve metrics.",
    )
    parser.add_argument("--every", type=float, required=True, help="seconds between backups")
    parser.add_argument("--keep", type=int, default=24, help="backups to keep (24)")
    parser.add_argument("--dest", type=Path, required=True, help="the backups' directory")
    parser.add_argument("--metrics", help="serve the backups' metrics on host:port")
    parser.add_argument("command", nargs="+", help="the command that takes one backup")
    args = parser.parse_args(argv)
    configure_logging()
    scheduler = Scheduler(Child(args.command, args.dest), args.every, args.keep, args.dest)
    if args.metrics:
        try:
            serve_metrics(args.metrics, scheduler.metrics.registry)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    scheduler.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
