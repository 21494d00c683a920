"""The migrations create exactly the schema the models describe (Alembic's own comparison,
against a real Postgres), and running them twice is harmless."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from core.migrate import upgrade
from core.models import metadata


def test_migrations_match_models_and_are_idempotent(database_url):
    upgrade(database_url)  # a second run (the fixture ran the first) changes nothing
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_redis_fixture_replicates(redis_servers):
    master = redis_servers.client()
    master.set("k", "v")
    assert master.wait(1, 1000) == 1
