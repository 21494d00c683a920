"""Alembic environment: runs migrations online, one process at a time (advisory lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from core.models import metadata

# Any number of processes may run `votectl db upgrade` at once; the lock serialises them
# and the later ones find nothing left to do.
MIGRATION_LOCK_ID = 727_001


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `votectl db upgrade`")
run_migrations_online()
