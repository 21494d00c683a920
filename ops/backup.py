"""Backups: a logical dump of the votes database and an RDB snapshot of the Redis master.

`votectl backup` takes one; `votectl backup --every 3600 --keep 24` keeps taking them (the
local stack's `backup` program and the compose `backup` service run exactly that);
`votectl restore DIR` puts the database back from one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from core.db import Database
from core.polls.sync import SyncReport, sync_all
from core.redis_client import make_sentinel
from core.replicated import NotReplicated, WaitPolicy
from ops.backup_schedule import STAMP, BackupError
from ops.deployment import Deployment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupSource:
    """Where to take a backup from: Postgres (superuser URL, any form) and the Redis master."""

    database_url: str
    redis_host: str
    redis_port: int
    redis_password: str | None
    pg_bindir: Path | None = None
    redis_username: str | None = None


def source_of(target: Deployment, pg_bindir: Path | None = None) -> BackupSource:
    """What to back up right now: the deployment's backup database and its current Redis
    master (asked of the Sentinels at every backup, since the master moves)."""
    url = target.backup_url
    if not url:
        raise BackupError("BACKUP_DATABASE_URL is not set (the role and database to dump)")
    sentinel = make_sentinel(target.app_config())
    try:
        host, port = sentinel.discover_master(target.master_name)
    except RedisError as exc:  # MasterNotFoundError is one too
        raise BackupError(f"cannot find the Redis master through Sentinel: {exc}") from None
    finally:
        for node in sentinel.sentinels:
            node.close()
    user, password = target.backup_redis or (target.redis_username, target.redis_password)
    return BackupSource(url, host, int(port), password, pg_bindir, user)


def _pg_tool(source: BackupSource, name: str) -> str:
    if source.pg_bindir and (source.pg_bindir / name).exists():
        return str(source.pg_bindir / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found (install the PostgreSQL client)")
    return found


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection flags and environment for pg_dump/pg_restore from a SQLAlchemy URL."""
    parsed = make_url(url)
    args = [
        "-h",
        parsed.host or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        "-d",
        parsed.database or "postgres",
    ]
    env = {**os.environ, "PGPASSWORD": parsed.password or "", "PGCONNECT_TIMEOUT": "5"}
    return args, env


def _run(step: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{step} failed: {exc}") from None
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{step} failed: {message}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def take(source: BackupSource, dest_root: Path) -> Path:
    """Take one backup into dest_root/<UTC timestamp>/ and return that directory."""
    stamp = datetime.now(UTC).strftime(STAMP)
    work = dest_root / f".{stamp}.partial"
    try:
        work.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise BackupError(f"cannot create {work}: {exc.strerror}") from None
    args, env = _libpq(source.database_url)
    _run(
        "pg_dump", [_pg_tool(source, "pg_dump"), *args, "-Fc", "-f", str(work / "votes.dump")], env
    )
    redis_env = {**os.environ, "REDISCLI_AUTH": source.redis_password or ""}
    _run(
        "redis-cli --rdb",
        [
            "redis-cli",
            "--no-auth-warning",
            *(["--user", source.redis_username] if source.redis_username else []),
            "-h",
            source.redis_host,
            "-p",
            str(source.redis_port),
            "--rdb",
            str(work / "redis.rdb"),
        ],
        redis_env,
    )
    _run("redis-check-rdb", ["redis-check-rdb", str(work / "redis.rdb")])
    manifest = {
        "taken_at": stamp,
        "redis_master": f"{source.redis_host}:{source.redis_port}",
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(work.iterdir())
        },
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    final = dest_root / stamp
    work.rename(final)  # a backup directory without ".partial" is always complete
    return final


def verify(backup_dir: Path) -> dict:
    """Check every file against the manifest; return the manifest."""
    manifest_path = backup_dir / "manifest.json"
    if not manifest_path.exists():
        raise BackupError(f"{backup_dir} is not a backup (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    for name, meta in manifest["files"].items():
        path = backup_dir / name
        if not path.exists() or _sha256(path) != meta["sha256"]:
            raise BackupError(f"{path} is missing or does not match its checksum")
    return manifest


def restore_database(owner_url: str, backup_dir: Path, pg_bindir: Path | None = None) -> None:
    """Replace the database's contents with the backup's (pg_restore --clean), as the
    schema's owner (the backup role can read everything and write nothing)."""
    verify(backup_dir)
    source = BackupSource(owner_url, "", 0, None, pg_bindir)
    args, env = _libpq(owner_url)
    # Owners are restored as dumped (the app role, no --no-owner): tables re-created as the
    # superuser's would lock the apps and workers out of their own schema.
    _run(
        "pg_restore",
        [
            _pg_tool(source, "pg_restore"),
            *args,
            "--clean",
            "--if-exists",
            "--single-transaction",
            str(backup_dir / "votes.dump"),
        ],
        env,
    )


def republish_polls(target: Deployment) -> SyncReport:
    """After a restore: make Redis' copy of the polls follow the restored database, even where
    it held newer revisions or tombstones (core/polls/sync.py, forced)."""
    if not target.backup_url:
        raise BackupError("BACKUP_DATABASE_URL is not set (the database to read the polls from)")
    database = Database(target.backup_url, size=1)
    client = target.redis()
    try:
        return sync_all(database, client, WaitPolicy(), force=True)
    except (RedisError, NotReplicated) as exc:
        raise BackupError(f"the polls could not be published to Redis: {exc}") from None
    finally:
        database.dispose()
        client.close()
