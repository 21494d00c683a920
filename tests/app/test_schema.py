"""The migrations create exactly the schema the models describe (Alembic's own comparison,
against a real Postgres), running them twice is harmless, and 0002 carries the data over."""

import secrets
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from core.db import Database
from core.migrate import upgrade
from core.models import metadata
from core.polls import FIRST_POLL_ID, store
from ops.db import ensure_role_and_database


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


@pytest.fixture
def old_database(pg_server) -> Iterator[str]:
    """A database of its own at revision 0001, as deployments were before polls."""
    name = f"migr_{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    ensure_role_and_database(pg_server.url(), "migrator", password, name)
    url = pg_server.url(name, user="migrator", password=password)
    upgrade(url, "0001")
    yield url
    engine = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    engine.dispose()


def test_0002_makes_the_configured_poll_the_first_and_keeps_every_vote(old_database, monkeypatch):
    engine = create_engine(old_database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO votes (voter_id, option, stream_ms, stream_seq, vote_id, voted_at)"
                " VALUES ('anon:a', 'tabs', 1, 0, 'a', now()), ('anon:b', 'spaces', 2, 0, 'b',"
                " now()), ('anon:c', 'both', 3, 0, 'c', now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tallies (option, count) VALUES ('tabs', 1), ('spaces', 1),"
                " ('both', 1), ('gone', 0)"
            )
        )
    monkeypatch.setenv("POLL_QUESTION", "Tabs or spaces?")
    monkeypatch.setenv("POLL_OPTIONS", "tabs=Tabs,spaces=Spaces")

    upgrade(old_database)

    first = store.get(Database(old_database, size=1), FIRST_POLL_ID)
    assert (first.question, first.state, first.owner_id) == ("Tabs or spaces?", "open", None)
    # "both" was voted for but is no longer configured: kept, so its vote still counts.
    assert [(o.key, o.label) for o in first.options] == [
        ("tabs", "Tabs"),
        ("spaces", "Spaces"),
        ("both", "both"),
    ]
    with engine.connect() as conn:
        votes = conn.execute(text("SELECT poll_id, voter_id, option FROM votes ORDER BY 2"))
        tallies = conn.execute(text("SELECT poll_id, option, count FROM tallies ORDER BY 2"))
        assert [tuple(r) for r in votes] == [
            ("first", "anon:a", "tabs"),
            ("first", "anon:b", "spaces"),
            ("first", "anon:c", "both"),
        ]
        assert [tuple(r) for r in tallies] == [
            ("first", "both", 1),
            ("first", "spaces", 1),
            ("first", "tabs", 1),
        ]
    engine.dispose()
