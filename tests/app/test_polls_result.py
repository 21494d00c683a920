"""The result app with many polls: each poll's results from its own tallies, open or closed."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.app.conftest import MakeApp


@pytest.fixture
def client(make_app: MakeApp):
    return make_app("result").test_client()


def add_tallies(database_url: str, rows: list[tuple[str, str, int]]) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tallies (poll_id, option, count) VALUES (:p, :o, :n)"),
            [{"p": p, "o": o, "n": n} for p, o, n in rows],
        )
    engine.dispose()


def test_a_polls_results_count_only_its_own_tallies(client, new_poll, database_url):
    tea, editors = new_poll(), new_poll("Best editor?", ("Vim", "Emacs", "Nano"))
    add_tallies(database_url, [(tea.id, "coffee", 3), (editors.id, "vim", 5), ("first", "cats", 9)])

    body = client.get(f"/api/polls/{editors.id}/results").get_json()

    assert body["question"] == "Best editor?"
    assert [(o["key"], o["label"], o["count"], o["share"]) for o in body["options"]] == [
        ("vim", "Vim", 5, 1.0),
        ("emacs", "Emacs", 0, 0.0),
        ("nano", "Nano", 0, 0.0),
    ]
    assert (body["id"], body["state"], body["total"]) == (editors.id, "open", 5)
    assert client.get(f"/api/polls/{tea.id}/results").get_json()["total"] == 3
    page = client.get(f"/p/{tea.id}/result").get_data(as_text=True)
    assert f'data-results-url="/api/polls/{tea.id}/results"' in page
    assert '<span class="count">3</span>' in page
    assert '<p class="closed-notice state-closed" hidden>' in page


def test_a_closed_polls_results_say_so(client, new_poll, database_url):
    poll = new_poll()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE polls SET state = 'closed', closed_at = now() WHERE id = :id"),
            {"id": poll.id},
        )
    engine.dispose()

    body = client.get(f"/api/polls/{poll.id}/results").get_json()
    page = client.get(f"/p/{poll.id}/result").get_data(as_text=True)

    assert body["state"] == "closed" and body["closed_at"]
    assert '<p class="closed-notice state-closed">Closed: these are the final results.</p>' in page


@pytest.mark.parametrize("poll_id", ["nosuchpoll12", "a" * 33, "a.b"])
def test_an_unknown_poll_has_no_results(client, poll_id):
    assert client.get(f"/api/polls/{poll_id}/results").status_code == 404
    page = client.get(f"/p/{poll_id}/result")
    assert page.status_code == 404
    assert "No poll has this id" in page.get_data(as_text=True)
