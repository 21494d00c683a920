"""The result app: counts come from `tallies` (O(options)), as JSON and as a live page; here on
the first poll's old URLs (polls people make: tests/app/test_polls_result.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, insert

from core.models import tallies, votes
from tests.app.conftest import MakeApp


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(make_app: MakeApp):
    return make_app("result").test_client()


def test_no_votes_yet_shows_every_option_at_zero(client):
    body = client.get("/api/results").get_json()

    assert body["question"] == "Cats or dogs?"
    assert body["total"] == 0
    assert body["options"] == [
        {"key": "cats", "label": "Cats", "count": 0, "share": 0.0},
        {"key": "dogs", "label": "Dogs", "count": 0, "share": 0.0},
    ]
    assert datetime.fromisoformat(body["updated_at"]).tzinfo is not None


def test_counts_and_shares_come_from_tallies(client, db):
    with db.begin() as conn:
        conn.execute(
            insert(tallies),
            [
                {"poll_id": "first", "option": "cats", "count": 3},
                {"poll_id": "first", "option": "dogs", "count": 1},
                {"poll_id": "first", "option": "fish", "count": 7},  # not an option: not shown
                {"poll_id": "other", "option": "cats", "count": 5},  # another poll's
            ],
        )

    response = client.get("/api/results")

    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["total"] == 4
    assert [(o["key"], o["count"], o["share"]) for o in body["options"]] == [
        ("cats", 3, 0.75),
        ("dogs", 1, 0.25),
    ]
    page = client.get("/result").get_data(as_text=True)
    assert '<span class="count">3</span>' in page
    assert '<progress max="100" value="75.0"' in page
    assert '<span class="total-count">4</span>' in page


def test_results_read_tallies_not_the_votes_table(client, db):
    with db.begin() as conn:
        conn.execute(
            insert(votes).values(
                poll_id="first",
                voter_id="anon:" + "e" * 32,
                option="cats",
                stream_ms=1,
                stream_seq=0,
                vote_id="e" * 32,
                voted_at=datetime.now(UTC),
            )
        )

    assert client.get("/api/results").get_json()["total"] == 0


def test_the_page_updates_itself_accessibly(client):
    page = client.get("/result").get_data(as_text=True)

    assert 'data-results-url="/api/polls/first/results"' in page
    assert 'aria-live="polite"' in page
    assert '<script src="/static/result.js" defer></script>' in page
    script = client.get("/static/result.js")
    assert script.status_code == 200
    assert b"setTimeout(poll, INTERVAL_MS)" in script.data
    script.close()


def _session_reads(master) -> int:
    return master.info("commandstats").get("cmdstat_get", {}).get("calls", 0)


def test_polling_does_not_touch_the_session_store(client, master):
    client.get("/api/csrf")  # the browser has a session
    before = _session_reads(master)

    for _ in range(3):
        assert client.get("/api/results").status_code == 200
        assert client.get("/api/polls/first/results").status_code == 200

    assert _session_reads(master) == before
    client.get("/result")
    assert _session_reads(master) == before + 1
