"""Settings for the apps and the worker, read from the environment in this one place.

Any setting NAME may instead be given as NAME_FILE, the path of a file holding the value
(Docker and Swarm secrets are files under /run/secrets), so secrets need not sit in the
environment of a process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from core.polls.poll import PollOption

# The Sentinel name of the Redis master, unless REDIS_MASTER_NAME says otherwise.
DEFAULT_MASTER_NAME = "mymaster"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and says what to do."""


class Environment(Mapping[str, str]):
    """The environment, where NAME_FILE (a file's contents) stands for NAME."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        path = self._env.get(f"{name}_FILE")
        if path:
            try:
                with open(path, encoding="utf-8") as handle:
                    return handle.read().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        return self._env[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._env or f"{name}_FILE" in self._env)

    def __iter__(self):
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def environment(env: Mapping[str, str] | None = None) -> Environment:
    """`env` (default: the process environment) with NAME_FILE support."""
    if isinstance(env, Environment):
        return env
    return Environment(os.environ if env is None else env)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def parse_options(raw: str) -> tuple[PollOption, ...]:
    """Parse POLL_OPTIONS: comma separated labels, each optionally written as key=Label.

    (The first poll's options, read by the migration that made it a poll: keys derived here
    stay as they were, so the votes stored under them keep counting.)"""
    options: list[PollOption] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, _, label = item.partition("=") if "=" in item else (_slug(item), "", item)
        key, label = key.strip(), label.strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", key):
            raise ConfigError(f"POLL_OPTIONS: bad option key {key!r} (use a-z, 0-9, - or _)")
        options.append(PollOption(key, label or key))
    if len(options) < 2:
        raise ConfigError("POLL_OPTIONS: give at least two options, e.g. 'Cats,Dogs'")
    if len({o.key for o in options}) != len(options):
        raise ConfigError("POLL_OPTIONS: option keys must be unique")
    return tuple(options)


def parse_hostports(raw: str, name: str) -> tuple[tuple[str, int], ...]:
    """Parse 'host:port,host:port' into pairs, naming the variable on error."""
    pairs = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name}: expected host:port[,host:port...], got {item!r}")
        pairs.append((host, int(port)))
    if not pairs:
        raise ConfigError(f"{name} is empty: give at least one host:port")
    return tuple(pairs)


def _is_postgres(scheme: str) -> bool:
    """postgresql or postgres, with or without a SQLAlchemy driver (`+psycopg2`)."""
    return scheme.split("+", 1)[0] in ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """A libpq URI from a database URL as the migrations take it (`postgresql+psycopg2://`);
    ValueError for another scheme."""
    parts = urlsplit(url)
    if not _is_postgres(parts.scheme):
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(parts._replace(scheme="postgresql"))


def database_url_of(url: str, name: str) -> str:
    """`url` if it is a PostgreSQL URL (postgresql[+driver]://user@host[:port]/database)."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if not _is_postgres(parts.scheme) or not parts.hostname:
        raise ConfigError(f"{name}: expected postgresql://user@host[:port]/database")
    return url


def with_password(url: str, password: str) -> str:
    """`url` (a database URL: scheme://user@host[:port]/database) with `password` in it."""
    parts = urlsplit(url)
    user = unquote(parts.username or "")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _hostport(raw: str | None, name: str) -> str | None:
    if not raw:
        return None
    _host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{name}: expected host:port, got {raw!r}")
    return raw


def _bool(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}: expected true/false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative")
    return value


def _log_format(env: Mapping[str, str]) -> str:
    log_format = env.get("LOG_FORMAT", "text")
    if log_format not in {"text", "json"}:
        raise ConfigError(f"LOG_FORMAT: expected text or json, got {log_format!r}")
    return log_format


@dataclass(frozen=True)
class Config:
    """Everything the apps and the worker need to know, with no defaults for secrets."""

    secret_key: str
    sentinels: tuple[tuple[str, int], ...]
    redis_master_name: str
    redis_password: str | None
    sentinel_password: str | None
    database_url: str
    database_ro_url: str
    question: str
    options: tuple[PollOption, ...]
    require_login: bool = False
    # A vote counts as accepted once this many replicas hold it (Redis WAIT).
    wait_replicas: int = 1
    wait_timeout_ms: int = 200
    # Total time a vote request may spend retrying through a Redis failover.
    write_budget_s: float = 8.0
    session_lifetime: timedelta = timedelta(days=30)
    max_body_bytes: int = 16 * 1024
    login_rate_limit: str = "10 per minute"
    register_rate_limit: str = "30 per hour"
    # Sessions that hold nothing but a CSRF token (a visitor who has not voted or logged in)
    # live this long; a crawler cannot fill Redis with month-long sessions.
    anonymous_session_lifetime: timedelta = timedelta(hours=1)
    log_format: str = "text"
    worker_name: str = "worker-1"
    worker_batch: int = 2000
    worker_block_ms: int = 1000
    # After a blocking read brings fewer than WORKER_BATCH new votes, wait this long for more
    # before applying them: one Postgres commit for many votes instead of a few (0: never).
    worker_linger_ms: int = 100
    worker_claim_idle_ms: int = 30_000
    worker_max_deliveries: int = 5
    worker_metrics_port: int = 0
    # The worker's metrics listen here only (0.0.0.0 in containers, where Prometheus is
    # another container).
    worker_metrics_addr: str = "127.0.0.1"
    # How often the worker looks for entries abandoned by dead consumers (XAUTOCLAIM).
    worker_claim_interval_ms: int = 5_000
    # How often the worker trims acknowledged entries from the stream (XTRIM MINID).
    worker_trim_interval_ms: int = 5_000
    # How often the worker re-publishes every poll from Postgres to Redis (core/polls/sync.py).
    worker_poll_sync_interval_ms: int = 30_000
    # Send the session cookie over HTTPS only (TLS terminates at HAProxy in every deployment;
    # tests that talk plain HTTP to an app turn it off).
    cookie_secure: bool = True
    # host:port where the app serves its Prometheus metrics (never its own port).
    metrics_bind: str | None = None
    # Several worker processes per instance: the directory where they share their metrics.
    metrics_multiproc_dir: str | None = None
    # Redis ACL users of this service at the data nodes and at the Sentinels (None: default).
    redis_username: str | None = None
    sentinel_username: str | None = None

    def __post_init__(self) -> None:
        for name, value in [
            ("WORKER_BATCH", self.worker_batch),
            ("WORKER_BLOCK_MS", self.worker_block_ms),
            ("WORKER_MAX_DELIVERIES", self.worker_max_deliveries),
            ("WORKER_CLAIM_IDLE_MS", self.worker_claim_idle_ms),
        ]:
            if value < 1:
                raise ConfigError(f"{name}: must be at least 1")
        if not 0 <= self.worker_linger_ms <= self.worker_block_ms:
            raise ConfigError("WORKER_LINGER_MS: must be between 0 and WORKER_BLOCK_MS")
        if not self.worker_name.strip():
            raise ConfigError("WORKER_NAME: must not be empty")

    @property
    def option_keys(self) -> frozenset[str]:
        return frozenset(o.key for o in self.options)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, web: bool = True) -> Config:
        """Build the config from the environment; raise ConfigError naming what is wrong.

        `web=False` (the worker) does not require SECRET_KEY, which only signs web sessions.
        """
        env = environment(env)

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is not set (see README, 'Configuration')")
            return value

        database_url = database_url_of(required("DATABASE_URL"), "DATABASE_URL")
        database_ro_url = (
            database_url_of(env["DATABASE_RO_URL"], "DATABASE_RO_URL")
            if env.get("DATABASE_RO_URL")
            else database_url
        )
        if env.get("DATABASE_PASSWORD"):
            # The password kept apart from the URL (DATABASE_PASSWORD_FILE: a Docker secret).
            database_url = with_password(database_url, env["DATABASE_PASSWORD"])
            database_ro_url = with_password(database_ro_url, env["DATABASE_PASSWORD"])
        log_format = _log_format(env)
        return cls(
            secret_key=required("SECRET_KEY") if web else env.get("SECRET_KEY", ""),
            sentinels=parse_hostports(required("REDIS_SENTINELS"), "REDIS_SENTINELS"),
            redis_master_name=env.get("REDIS_MASTER_NAME") or DEFAULT_MASTER_NAME,
            redis_password=env.get("REDIS_PASSWORD") or None,
            sentinel_password=env.get("SENTINEL_PASSWORD") or None,
            redis_username=env.get("REDIS_USERNAME") or None,
            sentinel_username=env.get("SENTINEL_USERNAME") or None,
            database_url=database_url,
            database_ro_url=database_ro_url,
            question=env.get("POLL_QUESTION", "Cats or dogs?"),
            options=parse_options(env.get("POLL_OPTIONS", "Cats,Dogs")),
            require_login=_bool(env.get("VOTE_REQUIRE_LOGIN", "false"), "VOTE_REQUIRE_LOGIN"),
            wait_replicas=int(_number(env, "VOTE_WAIT_REPLICAS", 1)),
            wait_timeout_ms=int(_number(env, "VOTE_WAIT_TIMEOUT_MS", 200)),
            write_budget_s=float(_number(env, "VOTE_WRITE_BUDGET_S", 8.0, float)),
            session_lifetime=timedelta(days=_number(env, "SESSION_LIFETIME_DAYS", 30, float)),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", 16 * 1024)),
            login_rate_limit=env.get("LOGIN_RATE_LIMIT", "10 per minute"),
            register_rate_limit=env.get("REGISTER_RATE_LIMIT", "30 per hour"),
            anonymous_session_lifetime=timedelta(
                seconds=_number(env, "ANONYMOUS_SESSION_SECONDS", 3600, float)
            ),
            log_format=log_format,
            worker_name=env.get("WORKER_NAME", "worker-1"),
            worker_batch=int(_number(env, "WORKER_BATCH", 2000)),
            worker_block_ms=int(_number(env, "WORKER_BLOCK_MS", 1000)),
            worker_linger_ms=int(_number(env, "WORKER_LINGER_MS", 100)),
            worker_claim_idle_ms=int(_number(env, "WORKER_CLAIM_IDLE_MS", 30_000)),
            worker_max_deliveries=int(_number(env, "WORKER_MAX_DELIVERIES", 5)),
            worker_metrics_port=int(_number(env, "WORKER_METRICS_PORT", 0)),
            worker_metrics_addr=env.get("WORKER_METRICS_ADDR") or "127.0.0.1",
            worker_claim_interval_ms=int(_number(env, "WORKER_CLAIM_INTERVAL_MS", 5_000)),
            worker_trim_interval_ms=int(_number(env, "WORKER_TRIM_INTERVAL_MS", 5_000)),
            worker_poll_sync_interval_ms=int(_number(env, "WORKER_POLL_SYNC_INTERVAL_MS", 30_000)),
            cookie_secure=_bool(env.get("SESSION_COOKIE_SECURE", "true"), "SESSION_COOKIE_SECURE"),
            metrics_bind=_hostport(env.get("METRICS_BIND"), "METRICS_BIND"),
            metrics_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )


@dataclass(frozen=True)
class WebSettings:
    """How `python -m app.serve` runs a web app, readable before the app's own settings."""

    host: str = "127.0.0.1"
    port: int = 8000
    # One process per instance by default: an instance is scaled by running more of them
    # (HAProxy spreads the load), and each process costs ~35 MiB.
    workers: int = 1
    # Threads per process that run requests; they overlap the waits on Redis and Postgres.
    threads: int = 8
    log_format: str = "text"
    # HAProxy already logs every request.
    access_log: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read WEB_BIND, WEB_WORKERS, WEB_THREADS, WEB_ACCESS_LOG and LOG_FORMAT."""
        env = environment(env)
        bind = _hostport(env.get("WEB_BIND") or "127.0.0.1:8000", "WEB_BIND") or ""
        host, _, port = bind.rpartition(":")
        workers = int(_number(env, "WEB_WORKERS", 1))
        threads = int(_number(env, "WEB_THREADS", 8))
        if workers < 1 or threads < 1:
            raise ConfigError("WEB_WORKERS and WEB_THREADS: must be at least 1")
        return cls(
            host=host or "0.0.0.0",
            port=int(port),
            workers=workers,
            threads=threads,
            log_format=_log_format(env),
            access_log=_bool(env.get("WEB_ACCESS_LOG", "false"), "WEB_ACCESS_LOG"),
        )
