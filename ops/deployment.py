"""One way into a deployment, local or remote: where its parts are and how to log in to them.

Every votectl command that talks to a deployment (status, backup, restore, db, drills)
takes a Deployment. The local stack builds one from its layout and generated passwords
(`ops.local.deployment`); any other deployment (docker compose, Swarm, a cluster) is
described by environment variables, read here and only here for votectl, with the same
names the apps use where the apps need the same thing:

| variable | what |
| --- | --- |
| REDIS_SENTINELS | host:port,... of the Sentinels (unset: the local stack) |
| REDIS_MASTER_NAME | the master's name at Sentinel (default mymaster) |
| REDIS_PASSWORD, SENTINEL_PASSWORD | passwords of Redis and of the Sentinels |
| REDIS_USERNAME, SENTINEL_USERNAME | ACL users for them (default: the default user) |
| PATRONI_URLS | http://host:8008,... Patroni REST API of each member |
| HAPROXY_STATS_URL, HAPROXY_STATS_AUTH | the stats page and its user:password |
| WEB_URL, WEB_CA_FILE | the web front, e.g. https://vote.example.org; the CA to trust for it |
| DATABASE_URL | the app's database (the migrations' owner role for `db upgrade`) |
| PG_SUPERUSER_URL | a superuser (provisioning with `db init`; drills' reconciliation) |
| BACKUP_DATABASE_URL, BACKUP_DIR | the role and database `backup` dumps; where backups go |
| BACKUP_REDIS_USERNAME, BACKUP_REDIS_PASSWORD | the Redis user RDB snapshots are taken as |
| VOTECTL_SECRETS_DIR | the deployment's secret files (`votectl secrets init`), for `db init` |
| VOTECTL_STATE_DIR, VOTECTL_BASE_PORT | the local stack's state dir and base port |

Each may also be given as NAME_FILE (a file holding the value), like the apps' settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from redis import Redis
from sqlalchemy.engine import make_url

from core.config import (
    DEFAULT_MASTER_NAME,
    Config,
    ConfigError,
    environment,
    parse_hostports,
)
from core.redis_client import make_sentinel, master_client

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASE_PORT = 17000


@dataclass(frozen=True)
class Deployment:
    """Addresses and credentials of one deployment's Redis, Sentinels, Patroni, HAProxy."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str = DEFAULT_MASTER_NAME
    redis_username: str | None = None
    redis_password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    patroni_urls: tuple[str, ...] = ()
    haproxy_stats_url: str | None = None
    haproxy_stats_auth: tuple[str, str] | None = None
    web_url: str | None = None
    # What HTTPS clients trust for web_url and the stats page: a CA file, or True (the
    # system's CAs).
    web_verify: bool | str = True
    database_url: str | None = None
    superuser_url: str | None = None
    backup_url: str | None = None
    backup_redis: tuple[str, str] | None = None
    backup_dir: Path | None = None
    secrets_dir: Path | None = None
    # What people open (shown by `votectl status` and `votectl up`).
    urls: dict[str, str] = field(default_factory=dict)

    def app_config(self) -> Config:
        """Just enough of the apps' Config to build their Redis client for this deployment."""
        return Config(
            secret_key="",
            sentinels=self.sentinels,
            redis_master_name=self.master_name,
            redis_username=self.redis_username,
            redis_password=self.redis_password,
            sentinel_username=self.sentinel_username,
            sentinel_password=self.sentinel_password,
            database_url=self.database_url or "",
            database_ro_url=self.database_url or "",
            question="",
            options=(),
        )

    def redis(self, **kwargs) -> Redis:
        """A Sentinel-managed client of the current master, like the apps' own."""
        config = self.app_config()
        return master_client(config, make_sentinel(config), **kwargs)

    def sentinel_client(self, host: str, port: int, timeout: float = 1.0) -> Redis:
        """A client of one Sentinel (decoded replies)."""
        return Redis(
            host,
            port,
            username=self.sentinel_username,
            password=self.sentinel_password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )

    def node_client(self, host: str, port: int, timeout: float = 1.0) -> Redis:
        """A client of one Redis node, whatever its role (decoded replies)."""
        return Redis(
            host,
            port,
            username=self.redis_username,
            password=self.redis_password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )

    def pg_connect(
        self,
        database: str | None = None,
        timeout: int = 2,
        *,
        url: str | None = None,
        port: int | None = None,
    ):
        """A psycopg2 connection as the superuser (or to `url`), through HAProxy's leader port
        (or another `port` of the same host)."""
        target = url or self.superuser_url
        if not target:
            raise ConfigError("PG_SUPERUSER_URL is not set (a superuser's URL is needed here)")
        parsed = make_url(target)
        if database:
            parsed = parsed.set(database=database)
        return psycopg2.connect(
            host=parsed.host,
            port=port or parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
            connect_timeout=timeout,
        )


def _urls(raw: str | None) -> tuple[str, ...]:
    return tuple(u.strip().rstrip("/") for u in (raw or "").split(",") if u.strip())


def _auth(raw: str | None, name: str) -> tuple[str, str] | None:
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep:
        raise ConfigError(f"{name}: expected user:password")
    return user, password


def remote_from_env(env: Mapping[str, str] | None = None) -> Deployment | None:
    """The deployment the environment describes, or None when REDIS_SENTINELS is unset."""
    env = environment(env)
    if not env.get("REDIS_SENTINELS"):
        return None
    web = env.get("WEB_URL") or None
    return Deployment(
        sentinels=parse_hostports(env["REDIS_SENTINELS"], "REDIS_SENTINELS"),
        master_name=env.get("REDIS_MASTER_NAME") or DEFAULT_MASTER_NAME,
        redis_username=env.get("REDIS_USERNAME") or None,
        redis_password=env.get("REDIS_PASSWORD") or None,
        sentinel_username=env.get("SENTINEL_USERNAME") or None,
        sentinel_password=env.get("SENTINEL_PASSWORD") or None,
        patroni_urls=_urls(env.get("PATRONI_URLS")),
        haproxy_stats_url=env.get("HAPROXY_STATS_URL") or None,
        haproxy_stats_auth=_auth(env.get("HAPROXY_STATS_AUTH"), "HAPROXY_STATS_AUTH"),
        web_url=web.rstrip("/") if web else None,
        web_verify=env.get("WEB_CA_FILE") or True,
        database_url=env.get("DATABASE_URL") or None,
        superuser_url=env.get("PG_SUPERUSER_URL") or None,
        backup_url=env.get("BACKUP_DATABASE_URL") or None,
        backup_redis=(env["BACKUP_REDIS_USERNAME"], env.get("BACKUP_REDIS_PASSWORD") or "")
        if env.get("BACKUP_REDIS_USERNAME")
        else None,
        backup_dir=Path(env["BACKUP_DIR"]) if env.get("BACKUP_DIR") else None,
        secrets_dir=Path(env["VOTECTL_SECRETS_DIR"]) if env.get("VOTECTL_SECRETS_DIR") else None,
        urls={"web": web} if web else {},
    )


def local_stack_settings(env: Mapping[str, str] | None = None) -> tuple[Path, int]:
    """VOTECTL_STATE_DIR (default: .stack in the checkout) and VOTECTL_BASE_PORT (17000)."""
    env = environment(env)
    state = env.get("VOTECTL_STATE_DIR")
    raw = env.get("VOTECTL_BASE_PORT") or str(DEFAULT_BASE_PORT)
    if not raw.isdigit():
        raise ConfigError(f"VOTECTL_BASE_PORT: expected a number, got {raw!r}")
    return (Path(state).resolve() if state else REPO / ".stack"), int(raw)
