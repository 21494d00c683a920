"""The vote app, on the first poll's old URLs: votes reach the stream only when valid, from the
session's voter, confirmed. (Polls people make: tests/app/test_polls_vote.py.)"""

from __future__ import annotations

import re

import pytest
import redis.client
from flask.testing import FlaskClient

from app.sessions import KEY_PREFIX
from core.polls import FIRST_POLL_ID
from core.polls.published import choices_key
from core.stream import STREAM
from tests.app.conftest import api_token, csrf_from_page, session_cookie

FIRST_PAGE = f"/p/{FIRST_POLL_ID}"

VOTE_ID = re.compile(r"[0-9a-f]{32}")
ANON = re.compile(r"anon:[0-9a-f]{32}")


def entries(master: redis.client.Redis) -> list[dict[str, str]]:
    """The vote stream's entries, oldest first, as text."""
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _id, fields in master.xrange(STREAM)
    ]


def vote_by_form(client: FlaskClient, option: str):
    token = csrf_from_page(client.get(FIRST_PAGE).get_data(as_text=True))
    return client.post("/vote", data={"option": option, "csrf_token": token})


def chosen_options(client: FlaskClient, page_url: str = FIRST_PAGE) -> list[str]:
    """The options the poll page marks as the voter's current choice."""
    page = client.get(page_url).get_data(as_text=True)
    return re.findall(r'value="([a-z0-9_-]+)"\s+class="option chosen"\s+aria-pressed="true"', page)


def test_form_vote_is_written_to_the_stream_and_confirmed(client, master):
    response = vote_by_form(client, "dogs")

    assert response.status_code == 303
    assert response.headers["Location"] == f"{FIRST_PAGE}?voted"
    [entry] = entries(master)
    assert VOTE_ID.fullmatch(entry["vote_id"])
    assert ANON.fullmatch(entry["voter"])
    assert (entry["poll"], entry["option"]) == (FIRST_POLL_ID, "dogs")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your vote for Dogs is in." in page
    assert chosen_options(client) == ["dogs"]


def test_api_vote_answers_202_with_the_vote_id(client, master):
    response = client.post(
        "/api/votes", json={"option": "cats"}, headers={"X-CSRFToken": api_token(client)}
    )

    assert response.status_code == 202
    body = response.get_json()
    [entry] = entries(master)
    assert body == {
        "vote_id": entry["vote_id"],
        "poll": FIRST_POLL_ID,
        "option": "cats",
        "voter": entry["voter"],
    }
    assert ANON.fullmatch(body["voter"])
    assert VOTE_ID.fullmatch(body["vote_id"])


def test_changing_a_vote_adds_a_newer_entry_and_the_page_shows_it(client, master):
    vote_by_form(client, "dogs")
    vote_by_form(client, "cats")

    first, second = entries(master)
    assert first["voter"] == second["voter"]
    assert (first["option"], second["option"]) == ("dogs", "cats")
    assert first["vote_id"] != second["vote_id"]
    assert int(second["ts"]) >= int(first["ts"])
    assert chosen_options(client) == ["cats"]


def test_each_browser_is_its_own_anonymous_voter(vote_app, master):
    one, two = vote_app.test_client(), vote_app.test_client()
    vote_by_form(one, "dogs")
    vote_by_form(two, "dogs")

    voters = {entry["voter"] for entry in entries(master)}
    assert len(voters) == 2
    assert chosen_options(two) == ["dogs"]
    assert chosen_options(vote_app.test_client()) == []


def test_a_voter_id_sent_by_the_client_is_ignored(client, master):
    client.set_cookie("voter_id", "anon:" + "f" * 32)
    token = api_token(client)
    forged = "user:1"
    client.post("/vote", data={"option": "dogs", "csrf_token": token, "voter": forged})
    client.post(
        "/api/votes",
        json={"option": "cats", "voter": forged, "voter_id": forged},
        headers={"X-CSRFToken": token, "X-Voter-Id": forged},
    )

    first, second = entries(master)
    assert first["voter"] == second["voter"]
    assert ANON.fullmatch(first["voter"])
    assert first["voter"] != "anon:" + "f" * 32


def _form(client: FlaskClient, **data: str):
    return client.post("/vote", data=data)


REJECTED = {
    "unknown option (form)": lambda c, t: _form(c, option="fish", csrf_token=t),
    "no option (form)": lambda c, t: _form(c, csrf_token=t),
    "unknown option (api)": lambda c, t: c.post(
        "/api/votes", json={"option": "fish"}, headers={"X-CSRFToken": t}
    ),
    "missing csrf (form)": lambda c, t: _form(c, option="dogs"),
    "bad csrf (form)": lambda c, t: _form(c, option="dogs", csrf_token=t[:-4] + "AAAA"),
    "missing csrf (api)": lambda c, t: c.post("/api/votes", json={"option": "dogs"}),
    "bad csrf (api)": lambda c, t: c.post(
        "/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": "forged"}
    ),
    "oversized (form)": lambda c, t: _form(c, option="dogs", csrf_token=t, pad="x" * 20_000),
    "oversized (api)": lambda c, t: c.post(
        "/api/votes", json={"option": "dogs", "pad": "x" * 20_000}, headers={"X-CSRFToken": t}
    ),
    "malformed json": lambda c, t: c.post(
        "/api/votes",
        data='{"option": "dogs"',
        content_type="application/json",
        headers={"X-CSRFToken": t},
    ),
    "json not an object": lambda c, t: c.post(
        "/api/votes", json=["dogs"], headers={"X-CSRFToken": t}
    ),
    "option not a string": lambda c, t: c.post(
        "/api/votes", json={"option": 1}, headers={"X-CSRFToken": t}
    ),
    "not json": lambda c, t: c.post(
        "/api/votes", data={"option": "dogs"}, headers={"X-CSRFToken": t}
    ),
}
EXPECTED_STATUS = {
    "oversized (form)": 413,
    "oversized (api)": 413,
    "not json": 415,
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(client, master, case):
    token = api_token(client)

    response = REJECTED[case](client, token)

    assert response.status_code == EXPECTED_STATUS.get(case, 400), response.get_data(as_text=True)
    assert master.xlen(STREAM) == 0
    assert "Traceback" not in response.get_data(as_text=True)
    if response.is_json:
        assert response.get_json()["error"]


def test_unknown_option_names_the_valid_ones(client):
    response = client.post(
        "/api/votes", json={"option": "fish"}, headers={"X-CSRFToken": api_token(client)}
    )

    assert response.status_code == 400
    assert "cats, dogs" in response.get_json()["error"]


def test_a_vote_writes_the_choice_with_the_entry_and_leaves_the_session_alone(
    client, master, redis_servers
):
    """The vote script records the voter's choice beside the stream entry, so WAIT covers
    both; once the voter has an id, neither the form nor the API writes the session."""
    vote_by_form(client, "dogs")  # the first vote makes the voter id (a session write)
    key = KEY_PREFIX + session_cookie(client)
    stored, ttl = master.get(key), master.ttl(key)

    form = vote_by_form(client, "cats")
    api = client.post(
        "/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": api_token(client)}
    )

    assert (form.status_code, api.status_code) == (303, 202)
    assert master.get(key) == stored
    assert master.ttl(key) <= ttl
    last = entries(master)[-1]
    replica = redis_servers.client(redis_servers.replica_port)
    recorded = replica.hget(choices_key(last["voter"]), FIRST_POLL_ID).decode()
    assert recorded.split(" ")[1:] == [last["vote_id"], "dogs"]
    assert 0 < replica.ttl(choices_key(last["voter"])) <= 30 * 86_400
    assert chosen_options(client) == ["dogs"]


def test_a_vote_not_confirmed_by_replicas_is_never_reported_as_accepted(make_app, master):
    # Only one replica exists, so WAIT 2 can never be satisfied.
    app = make_app(
        "vote", VOTE_WAIT_REPLICAS="2", VOTE_WAIT_TIMEOUT_MS="20", VOTE_WRITE_BUDGET_S="0.3"
    )
    client = app.test_client()

    api = client.post(
        "/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": api_token(client)}
    )
    form = vote_by_form(client, "dogs")

    assert api.status_code == 503
    assert api.get_json() == {"error": "Your vote could not be saved safely, please try again."}
    assert form.status_code == 503
    assert "could not be saved safely" in form.get_data(as_text=True)
    page = client.get(FIRST_PAGE).get_data(as_text=True)
    assert "is in." not in page
    # The choice shown shares the fate of the stream entry (one script writes both): the
    # master holds it, and the worker counts it unless the master is lost before a replica
    # has it, in which case both are gone.
    assert {e["option"] for e in entries(master)} == {"dogs"}
    assert chosen_options(client) == ["dogs"]


def test_require_login_refuses_anonymous_votes(make_app, master):
    app = make_app("vote", VOTE_REQUIRE_LOGIN="true")
    client = app.test_client()

    form = vote_by_form(client, "dogs")
    api = client.post(
        "/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": api_token(client)}
    )

    assert form.status_code == 303
    assert form.headers["Location"] == f"/login?next={FIRST_PAGE}"
    assert api.status_code == 401
    assert api.get_json()["error"] == "Please log in to vote."
    assert master.xlen(STREAM) == 0
    assert "log in</a>" in client.get(FIRST_PAGE).get_data(as_text=True)
