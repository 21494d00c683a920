"""The local stack as a Deployment, and the environment each of its services runs with."""

from __future__ import annotations

from ops import secrets
from ops.deployment import Deployment
from ops.local.layout import APP_DB, HOST, PATRONI_MEMBERS, Layout

SERVICES = ("vote", "result", "login", "worker", "admin")


def stack_secrets(layout: Layout) -> dict[str, str]:
    """The stack's passwords by secret name, created on first use (ops/secrets.py)."""
    return secrets.ensure(layout.secrets_dir, ["localhost", "127.0.0.1"])


def pg_url(
    layout: Layout,
    role: str,
    password: str | None = None,
    *,
    port: str = "pg-rw",
    database: str = APP_DB,
) -> str:
    """A database URL through HAProxy (`port`: "pg-rw" the leader, "pg-ro" the replicas)."""
    auth = f"{role}:{password}" if password else role
    return f"postgresql+psycopg2://{auth}@{HOST}:{layout.port(port)}/{database}"


def app_env(layout: Layout, service: str = "admin") -> dict[str, str]:
    """What `service` (vote, result, login, worker; admin: operators, benchmarks) reads through
    Config.from_env(): its own Redis, Sentinel and Postgres identities; passwords as files."""
    who = secrets.IDENTITIES[service]
    folder = layout.secrets_dir
    env = {
        "REDIS_SENTINELS": ",".join(layout.sentinel_addrs),
        "REDIS_MASTER_NAME": layout.master_name,
        "REDIS_USERNAME": who.redis_user,
        "REDIS_PASSWORD_FILE": str(folder / who.redis_secret),
        "SENTINEL_USERNAME": who.sentinel_user,
        "SENTINEL_PASSWORD_FILE": str(folder / who.sentinel_secret),
        "DATABASE_URL": pg_url(layout, who.pg_role),
        "DATABASE_RO_URL": pg_url(layout, who.pg_role, port="pg-ro"),
        "DATABASE_PASSWORD_FILE": str(folder / who.pg_secret),
        "LOG_FORMAT": "text",
    }
    if service in ("vote", "result", "login", "admin"):
        # Only the web apps sign sessions (admin: benchmarks that build apps' clients).
        env["SECRET_KEY_FILE"] = str(folder / "secret-key")
    return env


def superuser_url(layout: Layout, creds: dict[str, str], database: str = "postgres") -> str:
    """The Postgres superuser through HAProxy's read-write port (provisioning only)."""
    return pg_url(layout, "postgres", creds["pg-superuser"], database=database)


def local_deployment(layout: Layout, creds: dict[str, str] | None = None) -> Deployment:
    """The local stack in `layout`, as operators see it (admin users; the schema's owner)."""
    creds = creds or stack_secrets(layout)
    admin = secrets.IDENTITIES["admin"]
    backup = secrets.IDENTITIES["backup"]
    return Deployment(
        sentinels=tuple((HOST, int(a.rsplit(":", 1)[1])) for a in layout.sentinel_addrs),
        master_name=layout.master_name,
        redis_username=admin.redis_user,
        redis_password=creds[admin.redis_secret],
        sentinel_username=admin.sentinel_user,
        sentinel_password=creds[admin.sentinel_secret],
        patroni_urls=tuple(f"http://{layout.addr(layout.api_port(m))}" for m in PATRONI_MEMBERS),
        haproxy_stats_url=layout.urls()["stats"],
        haproxy_stats_auth=("admin", creds["haproxy-stats"]),
        web_url=layout.urls()["web"].rstrip("/"),
        web_verify=str(layout.secrets_dir / secrets.TLS_CERT),
        database_url=pg_url(layout, admin.pg_role, creds[admin.pg_secret]),
        superuser_url=superuser_url(layout, creds),
        backup_url=pg_url(layout, backup.pg_role, creds[backup.pg_secret]),
        backup_redis=(backup.redis_user, creds[backup.redis_secret]),
        backup_dir=layout.path("backups"),
        secrets_dir=layout.secrets_dir,
        urls=layout.urls(),
    )
