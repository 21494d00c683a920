"""Database provisioning: the application role and database, then the schema migrations."""

from __future__ import annotations

import logging

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)


def ensure_role_and_database(superuser_url: str, role: str, password: str, database: str) -> None:
    """Create (or update the password of) `role` and a database it owns; idempotent."""
    engine = create_engine(superuser_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).first()
            verb = "ALTER" if exists else "CREATE"
            # Identifiers cannot be bound parameters; quote them the way Postgres does.
            ident = conn.dialect.identifier_preparer.quote(role)
            literal = "'" + password.replace("'", "''") + "'"
            conn.execute(text(f"{verb} ROLE {ident} LOGIN PASSWORD {literal}"))
            if not conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            ).first():
                conn.execute(
                    text(
                        f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(database)}"
                        f" OWNER {ident}"
                    )
                )
                logger.info("created database %s owned by %s", database, role)
    finally:
        engine.dispose()
    # The app role owns only its schema: no CREATE on other databases' public schemas.
    db_engine = create_engine(
        make_url(superuser_url).set(database=database), isolation_level="AUTOCOMMIT"
    )
    try:
        with db_engine.connect() as conn:
            ident = conn.dialect.identifier_preparer.quote(role)
            conn.execute(text(f"ALTER SCHEMA public OWNER TO {ident}"))
    finally:
        db_engine.dispose()
