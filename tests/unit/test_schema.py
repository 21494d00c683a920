"""The migrations create the schema the models describe, and running them twice is harmless."""

from sqlalchemy import create_engine, inspect

from app.migrate import upgrade
from app.models import metadata


def test_migrations_match_models_and_are_idempotent(database_url):
    upgrade(database_url)  # a second run (the fixture ran the first) changes nothing
    engine = create_engine(database_url)
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    engine.dispose()


def test_redis_fixture_replicates(redis_servers):
    master = redis_servers.client()
    master.set("k", "v")
    assert master.wait(1, 1000) == 1
