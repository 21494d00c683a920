"""The local stack as a Deployment, and the environment its apps and workers run with."""

from __future__ import annotations

from ops.deployment import Deployment
from ops.local import credentials
from ops.local.layout import APP_DB, APP_ROLE, HOST, PATRONI_MEMBERS, Layout


def _pg_url(user: str, password: str, port: int, database: str) -> str:
    return f"postgresql+psycopg2://{user}:{password}@{HOST}:{port}/{database}"


def app_env(layout: Layout, creds: dict[str, str]) -> dict[str, str]:
    """What the apps and workers read through Config.from_env()."""
    password = creds["APP_DB_PASSWORD"]
    return {
        "SECRET_KEY": creds["SECRET_KEY"],
        "REDIS_SENTINELS": ",".join(layout.sentinel_addrs),
        "REDIS_MASTER_NAME": layout.master_name,
        "REDIS_PASSWORD": creds["REDIS_PASSWORD"],
        "SENTINEL_PASSWORD": creds["SENTINEL_PASSWORD"],
        "DATABASE_URL": _pg_url(APP_ROLE, password, layout.port("pg-rw"), APP_DB),
        "DATABASE_RO_URL": _pg_url(APP_ROLE, password, layout.port("pg-ro"), APP_DB),
        "LOG_FORMAT": "text",
    }


def superuser_url(layout: Layout, creds: dict[str, str], database: str = "postgres") -> str:
    """The Postgres superuser through HAProxy's read-write port (provisioning, drills)."""
    return _pg_url("postgres", creds["PG_SUPERUSER_PASSWORD"], layout.port("pg-rw"), database)


def local_deployment(layout: Layout, creds: dict[str, str] | None = None) -> Deployment:
    """The local stack in `layout` (its passwords are created on first use)."""
    creds = creds or credentials.load_or_create(layout.secrets_file)
    env = app_env(layout, creds)
    return Deployment(
        sentinels=tuple((HOST, int(a.rsplit(":", 1)[1])) for a in layout.sentinel_addrs),
        master_name=layout.master_name,
        redis_password=creds["REDIS_PASSWORD"],
        sentinel_password=creds["SENTINEL_PASSWORD"],
        patroni_urls=tuple(f"http://{layout.addr(layout.api_port(m))}" for m in PATRONI_MEMBERS),
        haproxy_stats_url=layout.urls()["stats"],
        haproxy_stats_auth=("admin", creds["HAPROXY_STATS_PASSWORD"]),
        web_url=layout.urls()["web"].rstrip("/"),
        database_url=env["DATABASE_URL"],
        superuser_url=superuser_url(layout, creds),
        backup_url=superuser_url(layout, creds, APP_DB),
        backup_dir=layout.path("backups"),
        urls=layout.urls(),
    )
