"""The vote app with polls people made: the home page, a poll's page, voting and its refusals,
all from Redis alone (the published definitions)."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from core.polls import CLOSED
from core.polls.published import OPEN_INDEX, definition_key, publish
from core.replicated import WaitPolicy
from core.stream import STREAM
from tests.app.conftest import api_token, csrf_from_page
from tests.app.test_vote import chosen_options, entries

NO_DATABASE = {"DATABASE_URL": "postgresql+psycopg2://vote:x@127.0.0.1:1/votes"}


def vote_on_page(client: FlaskClient, poll_id: str, option: str):
    token = csrf_from_page(client.get(f"/p/{poll_id}").get_data(as_text=True))
    return client.post(f"/p/{poll_id}/vote", data={"option": option, "csrf_token": token})


def api_vote(client: FlaskClient, poll_id: str, option: object):
    return client.post(
        f"/api/polls/{poll_id}/votes",
        json={"option": option},
        headers={"X-CSRFToken": api_token(client)},
    )


def questions(html: str) -> list[str]:
    return re.findall(r'class="poll-question" href="/p/[^"]+">([^<]+)</a>', html)


def test_the_home_page_lists_open_polls_newest_first_a_page_at_a_time(make_app, new_poll, master):
    made = []
    for n in range(23):
        made.append(new_poll(f"Question number {n}?"))
        # The open index orders by creation time in ms: polls made in the same millisecond
        # are listed in id order (arbitrary), which this test would take for an error.
        time.sleep(0.002)
    closed = new_poll("Closed already?")
    publish(master, dataclasses.replace(closed, state=CLOSED, revision=2), WaitPolicy())
    client = make_app("vote", **NO_DATABASE).test_client()  # Redis alone is enough

    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)

    expected = [p.question for p in reversed(made)] + ["Cats or dogs?"]
    assert questions(first) == expected[:20]
    assert questions(second) == expected[20:]
    assert 'href="/?page=2"' in first and 'href="/?page=1"' in second
    assert 'href="/polls/new"' in first
    listed = client.get("/api/polls?page=2").get_json()
    assert [p["question"] for p in listed["polls"]] == expected[20:]
    assert (listed["page"], listed["next_page"]) == (2, None)


@pytest.mark.parametrize("page", ["0", "-1", "x", "1001", "1.5", "\uff19", "9" * 5000])
def test_a_bad_page_number_is_a_400(client, page):
    for path in ("/", "/api/polls"):
        response = client.get(path, query_string={"page": page})
        assert response.status_code == 400
        assert "page must be a whole number" in response.get_data(as_text=True)


def test_a_poll_page_votes_and_shows_the_choice_per_poll(make_app, new_poll, master):
    tea = new_poll()
    client = make_app("vote", **NO_DATABASE).test_client()

    response = vote_on_page(client, tea.id, "coffee")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    vote_on_page(client, "first", "cats")

    assert response.status_code == 303
    assert response.headers["Location"] == f"/p/{tea.id}?voted"
    assert "Your vote for Coffee is in." in page
    assert "is in." not in client.get(f"/p/{tea.id}").get_data(as_text=True)
    assert f'value="http://localhost/p/{tea.id}"' in page  # the link to share
    one, two = entries(master)
    assert (one["poll"], one["option"], two["poll"], two["option"]) == (
        tea.id,
        "coffee",
        "first",
        "cats",
    )
    assert one["voter"] == two["voter"]
    assert chosen_options(client, f"/p/{tea.id}") == ["coffee"]
    assert chosen_options(client, "/p/first") == ["cats"]


def test_the_api_gets_a_poll_and_votes_in_it(client, new_poll, master):
    poll = new_poll("Best editor?", ("Vim", "Emacs", "Nano"))

    got = client.get(f"/api/polls/{poll.id}").get_json()
    voted = api_vote(client, poll.id, "emacs")

    assert got["question"] == "Best editor?"
    assert got["options"] == [
        {"key": "vim", "label": "Vim"},
        {"key": "emacs", "label": "Emacs"},
        {"key": "nano", "label": "Nano"},
    ]
    assert (got["state"], got["listed"], got["url"], got["results_url"]) == (
        "open",
        True,
        f"/p/{poll.id}",
        f"/p/{poll.id}/result",
    )
    assert voted.status_code == 202
    body = voted.get_json()
    [entry] = entries(master)
    assert body == {
        "vote_id": entry["vote_id"],
        "poll": poll.id,
        "option": "emacs",
        "voter": entry["voter"],
    }


def test_a_closed_poll_refuses_votes_clearly_and_says_so(client, new_poll, master):
    poll = new_poll()
    token = api_token(client)
    vote_on_page(client, poll.id, "tea")
    publish(master, dataclasses.replace(poll, state=CLOSED, revision=2), WaitPolicy())

    form = client.post(f"/p/{poll.id}/vote", data={"option": "tea", "csrf_token": token})
    api = api_vote(client, poll.id, "coffee")

    assert form.status_code == 409 and api.status_code == 409
    assert "This poll is closed" in form.get_data(as_text=True)
    assert api.get_json() == {"error": "This poll is closed: it no longer takes votes."}
    assert master.xlen(STREAM) == 1  # only the vote from before the close
    page = client.get(f"/p/{poll.id}").get_data(as_text=True)
    assert "This poll is closed" in page and "<fieldset disabled>" in page
    assert chosen_options(client, f"/p/{poll.id}") == ["tea"]
    assert poll.id.encode() not in master.zrange(OPEN_INDEX, 0, -1)


def test_a_poll_past_its_closing_time_refuses_votes_by_redis_clock(client, new_poll, master):
    poll = new_poll(closes_at=datetime.now(UTC) + timedelta(hours=1))
    assert api_vote(client, poll.id, "tea").status_code == 202

    # As if the hour had passed: the closing time is now behind Redis' clock.
    past = dataclasses.replace(poll, closes_at=datetime.now(UTC) - timedelta(seconds=1), revision=2)
    publish(master, past, WaitPolicy())

    assert api_vote(client, poll.id, "tea").status_code == 409
    assert master.xlen(STREAM) == 1
    assert "This poll is closed" in client.get(f"/p/{poll.id}").get_data(as_text=True)
    assert poll.id not in [p["id"] for p in client.get("/api/polls").get_json()["polls"]]


@pytest.mark.parametrize(
    ("poll_id", "status"),
    [
        ("nosuchpoll12", 404),
        ("a" * 33, 404),
        ("bad.id", 404),
        ("\u00e9t\u00e9", 404),
        # A control character anywhere in the path is refused before the views (app/inputs).
        ("%00", 400),
        ("x%0Ay", 400),
    ],
)
def test_an_unknown_poll_is_a_404_everywhere(client, master, poll_id, status):
    token = api_token(client)
    for response in (
        client.get(f"/p/{poll_id}"),
        client.get(f"/api/polls/{poll_id}"),
        client.post(f"/p/{poll_id}/vote", data={"option": "tea", "csrf_token": token}),
        client.post(
            f"/api/polls/{poll_id}/votes", json={"option": "tea"}, headers={"X-CSRFToken": token}
        ),
    ):
        assert response.status_code == status, response.get_data(as_text=True)
    assert master.xlen(STREAM) == 0


@pytest.mark.parametrize("option", ["fish", "", "TEA", "tea\x00", "t" * 40, 7, None, ["tea"]])
def test_an_option_the_poll_lacks_is_a_400_naming_its_options(client, new_poll, master, option):
    poll = new_poll()

    response = api_vote(client, poll.id, option)

    assert response.status_code == 400
    if isinstance(option, str) and option and option.isprintable():
        assert "choose one of tea, coffee" in response.get_json()["error"]
    assert master.xlen(STREAM) == 0


def test_a_deleted_polls_tombstone_is_a_404(client, new_poll, master):
    poll = new_poll()
    master.delete(definition_key(poll.id))
    master.hset(definition_key(poll.id), "state", "deleted")

    assert client.get(f"/p/{poll.id}").status_code == 404
    assert api_vote(client, poll.id, "tea").status_code == 404


def test_a_master_that_lost_the_script_gets_it_again(client, new_poll, master):
    poll = new_poll()
    assert api_vote(client, poll.id, "tea").status_code == 202

    master.script_flush()  # as after a failover to a node that never ran it

    assert api_vote(client, poll.id, "coffee").status_code == 202
    assert [e["option"] for e in entries(master)] == ["tea", "coffee"]
