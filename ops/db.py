"""Database provisioning: one least-privilege role per service, the database, the schema, grants.

`votectl db init` runs `provision` (as the superuser), the migrations (as the owner), then
`grant` (as the owner). Every role may do exactly what PRIVILEGES lists, nothing else:
the apps and the worker cannot change the schema, TRUNCATE or touch each other's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

OWNER = "vote_owner"
# Role -> table -> privileges. Sequences a role may use are listed like tables.
PRIVILEGES: dict[str, dict[str, str]] = {
    # The vote app shows a logged-in voter's own recorded vote.
    "vote_app": {"votes": "SELECT"},
    # The result app reads the counts.
    "vote_result": {"tallies": "SELECT"},
    # The login app: accounts, and the account page's recorded vote.
    "vote_login": {
        "accounts": "SELECT, INSERT",
        "accounts_id_seq": "USAGE",
        "votes": "SELECT",
    },
    # The workers apply batches: upserts of votes and tallies, nothing deleted.
    "vote_worker": {"votes": "SELECT, INSERT, UPDATE", "tallies": "SELECT, INSERT, UPDATE"},
}
# Roles that get a built-in role instead of table privileges.
MEMBERSHIPS: dict[str, str] = {
    # Exporters: statistics views, no table data.
    "vote_monitor": "pg_monitor",
    # Backups: read every table (pg_dump), write nothing.
    "vote_backup": "pg_read_all_data",
}
ROLES = (OWNER, *PRIVILEGES, *MEMBERSHIPS)


class ProvisionError(Exception):
    """A role's password is missing, or Postgres refused a step."""


def _ident(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def provision(superuser_url: str, passwords: Mapping[str, str], database: str) -> None:
    """Create (or update the passwords of) every role, and `database` owned by the owner;
    only the service roles may connect to it. Idempotent."""
    missing = [role for role in ROLES if not passwords.get(role)]
    if missing:
        raise ProvisionError(f"no password for the roles {', '.join(missing)}")
    engine = create_engine(superuser_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            existing = set(conn.execute(text("SELECT rolname FROM pg_roles")).scalars())
            for role in ROLES:
                verb = "ALTER" if role in existing else "CREATE"
                password = _literal(passwords[role])
                conn.execute(text(f"{verb} ROLE {_ident(conn, role)} LOGIN PASSWORD {password}"))
            for role, builtin in MEMBERSHIPS.items():
                conn.execute(text(f"GRANT {builtin} TO {_ident(conn, role)}"))
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            ).first()
            db = _ident(conn, database)
            if not found:
                conn.execute(text(f"CREATE DATABASE {db} OWNER {_ident(conn, OWNER)}"))
                logger.info("created database %s owned by %s", database, OWNER)
            conn.execute(text(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC"))
            for role in ROLES:
                conn.execute(text(f"GRANT CONNECT ON DATABASE {db} TO {_ident(conn, role)}"))
    finally:
        engine.dispose()
    # The owner owns the schema; nobody else may create anything in it.
    db_engine = create_engine(
        make_url(superuser_url).set(database=database), isolation_level="AUTOCOMMIT"
    )
    try:
        with db_engine.connect() as conn:
            conn.execute(text(f"ALTER SCHEMA public OWNER TO {_ident(conn, OWNER)}"))
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    finally:
        db_engine.dispose()


def grant(owner_url: str) -> None:
    """Make each service role's privileges exactly PRIVILEGES (run as the owner, after the
    migrations; run again after every migration that adds a table)."""
    engine = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for role in PRIVILEGES:
                ident = _ident(conn, role)
                conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {ident}"))
                conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ident}"))
                conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ident}"))
                for table, privileges in PRIVILEGES[role].items():
                    kind = "SEQUENCE " if table.endswith("_seq") else ""
                    conn.execute(
                        text(f"GRANT {privileges} ON {kind}{_ident(conn, table)} TO {ident}")
                    )
    finally:
        engine.dispose()


def ensure_role_and_database(superuser_url: str, role: str, password: str, database: str) -> None:
    """A single role owning `database` (for throwaway test and benchmark servers)."""
    engine = create_engine(superuser_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).first()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                text(f"{verb} ROLE {_ident(conn, role)} LOGIN PASSWORD {_literal(password)}")
            )
            if not conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            ).first():
                conn.execute(
                    text(f"CREATE DATABASE {_ident(conn, database)} OWNER {_ident(conn, role)}")
                )
    finally:
        engine.dispose()
