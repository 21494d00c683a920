"""Votes answered before Flask (app/vote/fast.py): a plain vote never reaches Flask, gets the
views' answer, and anything the views would refuse still reaches them and is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, request_started
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from app import metrics
from app.vote.fast import CSRF_SALT, FastVotes
from core.polls import FIRST_POLL_ID
from core.stream import STREAM
from tests.app.conftest import api_token
from tests.app.test_vote import REJECTED, entries, vote_by_form

# What the answers of the fast path and of the views may differ in: nothing but the date.
VARYING = {"Date"}


@pytest.fixture
def seen(vote_app: Flask) -> Iterator[list[str]]:
    """The paths of the requests Flask dispatched."""
    paths: list[str] = []

    def record(sender: Flask, **_extra: object) -> None:
        from flask import request

        paths.append(request.path)

    request_started.connect(record, vote_app)
    yield paths
    request_started.disconnect(record, vote_app)


@pytest.fixture
def voter(client: FlaskClient) -> FlaskClient:
    """A client whose session holds a voter (its first vote made one, through Flask)."""
    assert vote_by_form(client, "cats").status_code == 303
    return client


def _layer(app: Flask) -> FastVotes:
    layer = app.wsgi_app
    while not isinstance(layer, FastVotes):
        layer = layer.app
    return layer


def _api_vote(client: FlaskClient, option: str, token: str, path: str = "/api/votes"):
    return client.post(path, json={"option": option}, headers={"X-CSRFToken": token})


def test_a_plain_vote_is_answered_before_flask_and_recorded(voter, seen, master):
    token = api_token(voter)
    seen.clear()

    form = vote_by_form(voter, "dogs")
    api = _api_vote(voter, "cats", token)

    assert (form.status_code, api.status_code) == (303, 202)
    assert seen == [f"/p/{FIRST_POLL_ID}"]  # the page read for its token; no vote
    assert [e["option"] for e in entries(master)] == ["cats", "dogs", "cats"]
    assert api.get_json()["vote_id"] == entries(master)[-1]["vote_id"]


def test_a_poll_page_vote_is_answered_before_flask_too(voter, seen, new_poll, master):
    poll = new_poll()
    token = api_token(voter)
    seen.clear()

    api = _api_vote(voter, poll.options[1].key, token, f"/api/polls/{poll.id}/votes")

    assert api.status_code == 202
    assert seen == []
    assert entries(master)[-1]["poll"] == poll.id


@pytest.mark.parametrize("kind", ["form", "api"])
def test_the_fast_answer_is_the_views_answer(vote_app, voter, kind):
    token = api_token(voter)

    def vote():
        if kind == "form":
            return voter.post("/vote", data={"option": "dogs", "csrf_token": token})
        return _api_vote(voter, "dogs", token)

    fast = vote()
    layer = _layer(vote_app)
    layer.answer = lambda environ: None  # the views answer
    slow = vote()

    assert fast.status_code == slow.status_code
    assert {k: v for k, v in fast.headers if k not in VARYING} == {
        k: v for k, v in slow.headers if k not in VARYING
    }
    if kind == "form":
        assert fast.get_data() == slow.get_data()
    else:
        assert fast.get_json().keys() == slow.get_json().keys()
        assert fast.get_json()["voter"] == slow.get_json()["voter"]


@pytest.mark.parametrize("case", list(REJECTED))
def test_what_the_views_refuse_still_reaches_them(voter, seen, master, case):
    token = api_token(voter)
    before = master.xlen(STREAM)
    seen.clear()

    response = REJECTED[case](voter, token)

    assert 400 <= response.status_code < 500
    assert seen, "the request never reached the views"
    assert master.xlen(STREAM) == before


SECURE = {"base_url": "https://localhost"}
REFERRERS = {
    "no referrer": None,
    "another site": "https://evil.example/p/first",
    "plain http": "http://localhost/p/first",
    "another port": "https://localhost:8443/p/first",
}


@pytest.mark.parametrize("referrer", list(REFERRERS))
def test_over_https_a_vote_from_another_origin_is_refused(voter, seen, master, referrer):
    token = api_token(voter)
    headers = {"X-CSRFToken": token}
    if REFERRERS[referrer]:
        headers["Referer"] = REFERRERS[referrer]
    before = master.xlen(STREAM)
    seen.clear()

    response = voter.post("/api/votes", json={"option": "dogs"}, headers=headers, **SECURE)

    assert response.status_code == 400
    assert "referrer" in response.get_json()["error"]
    assert seen and master.xlen(STREAM) == before


def test_over_https_a_vote_from_the_same_origin_is_answered_before_flask(voter, seen):
    token = api_token(voter)
    seen.clear()

    response = voter.post(
        "/api/votes",
        json={"option": "dogs"},
        headers={"X-CSRFToken": token, "Referer": "https://localhost/p/first"},
        **SECURE,
    )

    assert response.status_code == 202
    assert seen == []


def test_a_token_signed_with_another_secret_is_refused(voter, seen, master):
    real = api_token(voter)
    raw = URLSafeTimedSerializer(voter.application.secret_key, salt=CSRF_SALT).loads(real)
    forged = URLSafeTimedSerializer("not-the-secret", salt=CSRF_SALT).dumps(raw)
    before = master.xlen(STREAM)

    response = _api_vote(voter, "dogs", forged)

    assert response.status_code == 400
    assert seen[-1] == "/api/votes"
    assert master.xlen(STREAM) == before


def test_another_sessions_token_is_refused(vote_app, voter, master):
    other = vote_app.test_client()
    before = master.xlen(STREAM)

    response = _api_vote(voter, "dogs", api_token(other))

    assert response.status_code == 400
    assert master.xlen(STREAM) == before


@pytest.mark.parametrize(
    "variant",
    ["query string", "repeated field", "nested json", "token in the json body"],
)
def test_unusual_requests_go_to_the_views(voter, seen, master, variant):
    token = api_token(voter)
    seen.clear()

    if variant == "query string":
        response = voter.post("/vote?x=1", data={"option": "dogs", "csrf_token": token})
    elif variant == "repeated field":
        response = voter.post("/vote", data={"option": ["dogs", "cats"], "csrf_token": token})
    elif variant == "nested json":
        response = voter.post(
            "/api/votes", json={"option": "dogs", "x": {"y": 1}}, headers={"X-CSRFToken": token}
        )
    else:  # Flask-WTF reads a token from a form field or a header, never from JSON
        response = voter.post("/api/votes", json={"option": "dogs", "csrf_token": token})

    assert seen == [response.request.path]
    expected = {
        "query string": 303,
        "repeated field": 303,
        "nested json": 400,
        "token in the json body": 400,
    }[variant]
    assert response.status_code == expected
    if expected == 303:
        assert entries(master)[-1]["option"] == "dogs"  # the views take the first value


def test_a_refused_vote_is_answered_once_by_the_views_without_casting_again(
    vote_app, voter, new_poll, master, seen
):
    """A vote the poll refuses in the fast path is answered by the views from that outcome."""
    token = api_token(voter)
    before = master.xlen(STREAM)
    seen.clear()

    unknown = _api_vote(voter, "fish", token)
    missing = _api_vote(voter, "cats", token, "/api/polls/nopollhere12/votes")

    assert unknown.status_code == 400 and "cats, dogs" in unknown.get_json()["error"]
    assert missing.status_code == 404
    assert master.xlen(STREAM) == before
    text = metrics.exposition(vote_app).decode()
    assert 'vote_submissions_total{outcome="rejected",reason="unknown_option"} 1.0' in text


def test_fast_votes_are_counted_in_the_request_and_vote_metrics(vote_app, voter, seen):
    token = api_token(voter)
    seen.clear()

    for _ in range(3):
        assert _api_vote(voter, "dogs", token).status_code == 202

    assert seen == []
    text = metrics.exposition(vote_app).decode()
    assert 'flask_http_request_total{method="POST",status="202"} 3.0' in text
    assert 'url_rule="/api/votes"' in text
    # The first vote (through the views) and these three.
    assert 'vote_submissions_total{outcome="accepted",reason="ok"} 4.0' in text


def test_a_vote_not_confirmed_by_replicas_is_answered_503_once(make_app, master):
    app = make_app(
        "vote", VOTE_WAIT_REPLICAS="2", VOTE_WAIT_TIMEOUT_MS="20", VOTE_WRITE_BUDGET_S="0.3"
    )
    client = app.test_client()
    vote_by_form(client, "cats")  # makes the voter (503 too)
    before = master.xlen(STREAM)

    api = _api_vote(client, "dogs", api_token(client))

    assert api.status_code == 503
    # Retried within the write budget, never cast a second time by the views.
    assert {e["option"] for e in entries(master)[before:]} == {"dogs"}
    text = metrics.exposition(app).decode()
    assert 'vote_submissions_total{outcome="rejected",reason="not_saved"} 2.0' in text


def test_a_session_redis_cannot_read_is_left_to_the_views(voter, master, seen):
    """A session record nobody can decode: the views answer, with a new session (no 500)."""
    from app.sessions import KEY_PREFIX
    from tests.app.conftest import session_cookie

    token = api_token(voter)
    master.set(KEY_PREFIX + session_cookie(voter), b"\xc1not msgpack")
    seen.clear()

    response = _api_vote(voter, "dogs", token)

    assert seen == ["/api/votes"]
    assert response.status_code == 400  # the views' session is a new one: no CSRF token


@pytest.mark.parametrize("limit", ["200", "0"])
def test_a_body_over_the_apps_limit_is_left_to_the_views(make_app, master, limit):
    """The fast path never reads more than the views would accept (MAX_BODY_BYTES)."""
    app = make_app("vote", MAX_BODY_BYTES=limit)
    client = app.test_client()
    vote_by_form(client, "cats")
    token = api_token(client)
    before = master.xlen(STREAM)

    response = client.post("/vote", data={"option": "dogs", "csrf_token": token, "pad": "x" * 150})

    assert response.status_code == 413
    assert master.xlen(STREAM) == before


@pytest.mark.parametrize("referrer", ["https://localhost:abc/p/first", "https://[::1/p/first"])
def test_a_referer_that_is_no_url_is_a_clear_400(voter, master, referrer):
    token = api_token(voter)
    before = master.xlen(STREAM)

    response = voter.post(
        "/api/votes",
        json={"option": "dogs"},
        headers={"X-CSRFToken": token, "Referer": referrer},
        **SECURE,
    )

    assert response.status_code == 400
    assert "Referer" in response.get_json()["error"]
    assert master.xlen(STREAM) == before


def test_a_request_whose_session_cannot_be_opened_is_counted(vote_app, voter, master):
    """Redis failing when Flask opens the session: the error answer still counts as a request."""
    from app.sessions import KEY_PREFIX
    from tests.app.conftest import session_cookie

    key = KEY_PREFIX + session_cookie(voter)
    master.delete(key)
    master.hset(key, "not", "a session")  # GET answers WRONGTYPE

    response = voter.get(f"/p/{FIRST_POLL_ID}")

    assert response.status_code == 500
    # The app's own error page (it renders without a session).
    assert "Something went wrong on our side" in response.get_data(as_text=True)
    text = metrics.exposition(vote_app).decode()
    assert f'flask_http_request_total{{method="GET",status="{response.status_code}"}} 1.0' in text
