"""Poll management on the login app: make, list, close, reopen and delete polls, as pages and
as JSON; Postgres first, then the definition the vote app reads from Redis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from core.polls import store
from core.polls.published import OPEN_INDEX, definition_key, read_poll
from tests.app.conftest import MakeApp, api_token, csrf_from_page
from tests.app.test_login import register


@pytest.fixture
def login_app(make_app: MakeApp):
    return make_app("login")


@pytest.fixture
def owner(login_app) -> FlaskClient:
    client = login_app.test_client()
    register(client, "olivia")
    return client


@pytest.fixture
def db(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def create_by_form(
    client: FlaskClient, question: str, options: str, closes_in: str = "", listed: bool = True
):
    """The form as a browser sends it: `options` one per line, each in its own field."""
    token = csrf_from_page(client.get("/polls/new").get_data(as_text=True))
    data = {"question": question, "closes_in": closes_in, "csrf_token": token}
    data |= {f"options-{n}": label for n, label in enumerate(options.split("\n"))}
    if listed:
        data["listed"] = "y"  # a ticked checkbox; an unticked one sends nothing
    return client.post("/polls/new", data=data)


def create_by_api(client: FlaskClient, body: object, **kwargs):
    headers = {"X-CSRFToken": api_token(client)}
    return client.post("/api/polls", json=body, headers=headers, **kwargs)


def poll_id_of(response) -> str:
    return response.headers["Location"].removeprefix("/p/")


def test_making_a_poll_by_form_stores_and_publishes_it(owner, master, db, pg):
    response = create_by_form(owner, "Tea or coffee?", "Tea\nCoffee\n\nWater", "86400")

    assert response.status_code == 303
    poll_id = poll_id_of(response)
    stored = store.get(pg, poll_id)
    assert (stored.question, [o.label for o in stored.options]) == (
        "Tea or coffee?",
        ["Tea", "Coffee", "Water"],
    )
    assert stored.owner_id == 1
    assert timedelta(hours=23) < stored.closes_at - datetime.now(UTC) <= timedelta(days=1)
    assert read_poll(master, poll_id).question == "Tea or coffee?"
    assert master.zscore(OPEN_INDEX, poll_id) is not None
    page = owner.get("/polls/mine").get_data(as_text=True)
    assert "Tea or coffee?" in page and "0 votes" in page


@pytest.mark.parametrize(
    ("question", "options", "closes_in", "message"),
    [
        ("Tea or coffee?", "Tea", "", "Give 2 to 20 options (you gave 1)"),
        ("Tea or coffee?", "Tea\nTEA", "", "appears twice"),
        ("Tea or coffee?", "\n".join(f"o{n}" for n in range(21)), "", "(you gave 21)"),
        ("Tea or coffee?", "Tea\nCof\x00fee", "", "control character"),
        ("Tea\x00?", "Tea\nCoffee", "", "control character"),
        ("Tea or coffee?", "Tea\nCof\u202efee", "", "control characters"),
        ("x" * 201, "Tea\nCoffee", "", "at most 200"),
        ("", "Tea\nCoffee", "", "Write the question."),
        ("Tea or coffee?", "Tea\nCoffee", "12", "Not a valid choice"),
    ],
)
def test_a_bad_poll_form_is_shown_again_with_what_is_wrong(
    owner, db, question, options, closes_in, message
):
    response = create_by_form(owner, question, options, closes_in)

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM polls")).scalar_one() == 1  # the first


def test_an_unlisted_poll_is_not_on_the_home_page_but_its_link_works(make_app, owner, master):
    by_form = poll_id_of(create_by_form(owner, "Secret question?", "Yes\nNo", listed=False))
    by_api = create_by_api(
        owner, {"question": "Also secret?", "options": ["a", "b"], "listed": False}
    )
    assert by_api.status_code == 201 and by_api.get_json()["listed"] is False
    vote = make_app("vote").test_client()

    listed = vote.get("/api/polls").get_json()["polls"]

    assert [p["id"] for p in listed] == ["first"]
    assert "Secret question?" not in vote.get("/").get_data(as_text=True)
    assert vote.get(f"/api/polls/{by_form}").get_json()["listed"] is False
    voted = vote.post(
        f"/api/polls/{by_form}/votes",
        json={"option": "yes"},
        headers={"X-CSRFToken": api_token(vote)},
    )
    assert voted.status_code == 202
    assert "unlisted" in owner.get("/polls/mine").get_data(as_text=True)
    assert master.zrange(OPEN_INDEX, 0, -1) == [b"first"]


def test_making_a_poll_by_api(owner, master):
    response = create_by_api(
        owner,
        {
            "question": "Best editor?",
            "options": ["Vim", "Emacs"],
            "closes_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
    )

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == body["url"] == f"/p/{body['id']}"
    assert body["options"] == [{"key": "vim", "label": "Vim"}, {"key": "emacs", "label": "Emacs"}]
    assert (body["state"], body["published"]) == ("open", True)
    assert read_poll(master, body["id"]).option("emacs").label == "Emacs"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"question": "Q?", "options": ["a", "a"]}, 422, "at least 3"),
        ({"question": "Best editor?", "options": ["a", "A"]}, 422, "appears twice"),
        ({"question": "Best editor?", "options": ["a"] * 1}, 422, "you gave 1"),
        ({"question": "Best editor?", "options": "a,b"}, 422, "list of texts"),
        ({"question": "Best\neditor?", "options": ["a", "b"]}, 400, "control character"),
        ({"question": "Best\u2028editor?", "options": ["a", "b"]}, 422, "control characters"),
        ({"options": ["a", "b"]}, 422, "as text"),
        (
            {"question": "Best editor?", "options": ["a", "b"], "closes_at": "soon"},
            400,
            "closes_at",
        ),
        (
            {"question": "Best editor?", "options": ["a", "b"], "closes_at": "2030-01-01T00:00"},
            422,
            "time zone",
        ),
        ({"question": "Best editor?", "options": ["a", "b"], "closes_at": 5}, 400, "closes_at"),
        ({"question": "Best editor?", "options": [["a"], "b"]}, 400, "nested"),
        ({"question": {"x": 1}, "options": ["a", "b"]}, 400, "nested"),
        ({"question": "Best editor?", "options": ["a", "b"], "owner": 2}, 400, "Unknown field"),
        ({"question": "Best editor?", "options": ["a", "b"], "listed": "no"}, 422, "true or false"),
        (["Best editor?"], 400, "JSON object"),
        ("Best editor?", 400, "JSON object"),
        (0, 400, "JSON object"),
    ],
)
def test_a_bad_poll_by_api_is_a_clear_4xx_and_makes_nothing(owner, db, body, status, message):
    response = create_by_api(owner, body)

    assert response.status_code == status, response.get_json()
    assert message in str(response.get_json())
    if status == 422:
        assert response.get_json()["fields"]
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM polls")).scalar_one() == 1


def test_more_options_shows_every_option_field_and_keeps_what_was_typed(owner):
    token = csrf_from_page(owner.get("/polls/new").get_data(as_text=True))
    first = owner.get("/polls/new").get_data(as_text=True)
    more = owner.post(
        "/polls/new",
        data={"question": "Which?", "options-0": "Tea", "more": "1", "csrf_token": token},
    )

    page = more.get_data(as_text=True)
    assert first.count('name="options-') == 6 and "More options" in first
    assert more.status_code == 200 and page.count('name="options-') == 20
    assert 'value="Which?"' in page and 'value="Tea"' in page
    assert "More options" not in page and "Please fix" not in page


def test_the_api_refuses_what_is_not_json_or_unauthenticated(login_app, owner):
    headers = {"X-CSRFToken": api_token(owner)}
    assert owner.post("/api/polls", data="q=1", headers=headers).status_code == 415
    malformed = owner.post("/api/polls", data="{", content_type="application/json", headers=headers)
    assert malformed.status_code == 400
    assert (
        owner.post("/api/polls", json={"question": "Q??", "options": ["a", "b"]}).status_code == 400
    )
    stranger = login_app.test_client()
    assert create_by_api(stranger, {"question": "Q??", "options": ["a", "b"]}).status_code == 401
    assert stranger.get("/polls/new").headers["Location"] == "/login?next=/polls/new"


def test_closing_and_reopening_reach_voters(owner, master, db, pg):
    poll_id = poll_id_of(create_by_form(owner, "Tea or coffee?", "Tea\nCoffee", "3600"))
    token = api_token(owner)

    closed = owner.post(f"/polls/{poll_id}/close", data={"csrf_token": token})
    assert closed.status_code == 303
    assert read_poll(master, poll_id).state == "closed"
    assert master.zscore(OPEN_INDEX, poll_id) is None
    assert "Closed" in owner.get("/polls/mine").get_data(as_text=True)

    again = owner.post(f"/api/polls/{poll_id}/close", headers={"X-CSRFToken": token})
    assert again.status_code == 200 and again.get_json()["state"] == "closed"

    reopened = owner.post(f"/api/polls/{poll_id}/reopen", headers={"X-CSRFToken": token})
    assert reopened.status_code == 200
    assert (reopened.get_json()["state"], reopened.get_json()["closes_at"]) == ("open", None)
    assert read_poll(master, poll_id).state == "open"
    assert master.zscore(OPEN_INDEX, poll_id) is not None
    assert store.get(pg, poll_id).revision == 3  # closed, reopened; the second close did nothing


def test_only_the_owner_may_change_or_delete_a_poll(make_app, owner, master):
    poll_id = poll_id_of(create_by_form(owner, "Tea or coffee?", "Tea\nCoffee"))
    other = make_app("login").test_client()
    register(other, "mallory")
    token = api_token(other)

    for response in (
        other.post(f"/polls/{poll_id}/close", data={"csrf_token": token}),
        other.post(f"/api/polls/{poll_id}/close", headers={"X-CSRFToken": token}),
        other.post(f"/polls/{poll_id}/delete", data={"csrf_token": token}),
        other.delete(f"/api/polls/{poll_id}", headers={"X-CSRFToken": token}),
        other.get(f"/polls/{poll_id}/delete"),
        other.post("/api/polls/first/close", headers={"X-CSRFToken": token}),
    ):
        assert response.status_code == 403, response.get_data(as_text=True)
    assert read_poll(master, poll_id).state == "open"
    assert "Tea or coffee?" not in other.get("/polls/mine").get_data(as_text=True)


@pytest.mark.parametrize("poll_id", ["nosuchpoll12", "x" * 40, "a.b"])
def test_an_unknown_poll_is_a_404(owner, poll_id):
    token = api_token(owner)
    assert (
        owner.post(f"/api/polls/{poll_id}/close", headers={"X-CSRFToken": token}).status_code == 404
    )
    assert owner.delete(f"/api/polls/{poll_id}", headers={"X-CSRFToken": token}).status_code == 404
    assert owner.get(f"/polls/{poll_id}/delete").status_code == 404


def test_deleting_asks_first_then_takes_the_votes_too(owner, master, db, pg):
    poll_id = poll_id_of(create_by_form(owner, "Tea or coffee?", "Tea\nCoffee"))
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO votes (poll_id, voter_id, option, stream_ms, stream_seq, vote_id,"
                " voted_at) VALUES (:p, 'anon:a', 'tea', 1, 0, 'a', now());"
                " INSERT INTO tallies (poll_id, option, count) VALUES (:p, 'tea', 1)"
            ),
            {"p": poll_id},
        )

    confirm = owner.get(f"/polls/{poll_id}/delete").get_data(as_text=True)
    assert "every vote in it are deleted" in confirm
    token = csrf_from_page(confirm)
    deleted = owner.post(f"/polls/{poll_id}/delete", data={"csrf_token": token})

    assert deleted.status_code == 303
    assert store.get(pg, poll_id) is None
    with db.connect() as conn:
        for table in ("votes", "tallies", "poll_options"):
            count = f"SELECT count(*) FROM {table} WHERE poll_id = :p"
            assert conn.execute(text(count), {"p": poll_id}).scalar_one() == 0
    assert read_poll(master, poll_id) is None
    assert master.hget(definition_key(poll_id), "state") == b"deleted"
    assert master.ttl(definition_key(poll_id)) > 3600
    api = owner.delete(f"/api/polls/{poll_id}", headers={"X-CSRFToken": token})
    assert api.status_code == 404


def test_my_polls_lists_only_mine_newest_first_with_their_actions(owner):
    for question in ("First question?", "Second question?"):
        create_by_form(owner, question, "Yes\nNo")

    page = owner.get("/polls/mine").get_data(as_text=True)

    assert re.findall(r'class="poll-question" href="/p/[^"]+">([^<]+)<', page) == [
        "Second question?",
        "First question?",
    ]
    assert page.count(">Close</button>") == 2 and page.count("Delete…") == 2
