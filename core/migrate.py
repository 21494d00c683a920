"""Run the schema migrations (Alembic) against a database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig


def alembic_config(database_url: str) -> AlembicConfig:
    """An Alembic config pointing at this package's migrations; no alembic.ini needed."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe when several processes run it at once."""
    command.upgrade(alembic_config(database_url), revision)
