"""The login app: accounts, sessions that rotate on login, rate limits kept in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, insert, select, text

from app.login.accounts import UsernameTaken, create_account
from app.sessions import COOKIE_NAME, KEY_PREFIX
from core.models import accounts, votes
from core.stream import Vote
from tests.app.conftest import MakeApp, api_token, csrf_from_page, session_cookie

PASSWORD = "correct horse battery"


@pytest.fixture
def login_app(make_app: MakeApp):
    return make_app("login")


@pytest.fixture
def client(login_app) -> FlaskClient:
    return login_app.test_client()


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def register(client: FlaskClient, username: str, password: str = PASSWORD):
    token = csrf_from_page(client.get("/register").get_data(as_text=True))
    return client.post(
        "/register", data={"username": username, "password": password, "csrf_token": token}
    )


def log_in(client: FlaskClient, username: str, password: str = PASSWORD, ip: str = "10.0.0.1"):
    token = csrf_from_page(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": ip},
    )


def log_out(client: FlaskClient):
    return client.post("/logout", data={"csrf_token": api_token(client)})


def account_page(client: FlaskClient) -> str:
    return client.get("/account").get_data(as_text=True)


def test_register_creates_a_hashed_account_and_logs_in(client, db):
    response = register(client, "Alice")

    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    page = account_page(client)
    assert '<dd class="username">alice</dd>' in page
    assert "You have not voted yet." in page
    with db.connect() as conn:
        [row] = conn.execute(select(accounts.c.username, accounts.c.password_hash)).all()
    assert row.username == "alice"
    assert row.password_hash.startswith("scrypt:") and PASSWORD not in row.password_hash


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("al", PASSWORD, "A username has 3 to 32 characters."),
        ("a" * 33, PASSWORD, "A username has 3 to 32 characters."),
        ("bad name!", PASSWORD, "Use only letters, digits, dot, underscore or hyphen"),
        ("bob", "short", "A password has at least 10 characters"),
        ("bob", "1234567890123", "A password must not be only digits."),
        ("bobby.tables", "Bobby.Tables", "A password must not be the same as the username."),
    ],
)
def test_register_explains_the_rules(client, db, username, password, message):
    response = register(client, username, password)

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0


def test_a_taken_username_is_refused_whatever_its_case(login_app, client):
    register(client, "alice")

    response = register(login_app.test_client(), "ALICE")

    assert response.status_code == 409
    assert "That username is taken" in response.get_data(as_text=True)


def test_the_unique_constraint_catches_a_registration_race(db, pg):
    create_account(pg, "racer", PASSWORD)

    with pytest.raises(UsernameTaken):
        create_account(pg, "racer", PASSWORD)


def test_login_logout_cycle(login_app, client):
    register(login_app.test_client(), "carol")

    response = log_in(client, "Carol")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    assert '<dd class="username">carol</dd>' in account_page(client)

    assert log_out(client).status_code == 303
    assert client.get("/account").headers["Location"] == "/login?next=/account"


@pytest.mark.parametrize(
    ("username", "password"), [("dave", "wrong password"), ("nobody", PASSWORD)]
)
def test_wrong_credentials_get_one_generic_message(login_app, client, username, password):
    register(login_app.test_client(), "dave")

    response = log_in(client, username, password)

    assert response.status_code == 401
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/account").status_code == 303


def test_logout_needs_a_post_with_a_csrf_token(client):
    register(client, "erin")

    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert '<dd class="username">erin</dd>' in account_page(client)


def test_login_follows_only_a_local_next(login_app):
    register(login_app.test_client(), "frank")
    client = login_app.test_client()
    for target, expected in [("/result", "/result"), ("//evil.example", "/account")]:
        token = csrf_from_page(client.get("/login").get_data(as_text=True))
        response = client.post(
            f"/login?next={target}",
            data={"username": "frank", "password": PASSWORD, "csrf_token": token},
        )
        assert response.headers["Location"] == expected


def test_login_rotates_the_session_id(client, master):
    register(client, "grace")
    log_out(client)
    client.get("/login")
    before = session_cookie(client)

    log_in(client, "grace")

    after = session_cookie(client)
    assert before and after and before != after
    assert master.exists(KEY_PREFIX + before) == 0
    # The old id now opens an empty, anonymous session.
    client.set_cookie(COOKIE_NAME, before)
    assert client.get("/account").status_code == 303


def test_anonymous_vote_stays_with_the_anonymous_voter(make_app, login_app, client):
    vote_client = make_app("vote").test_client()
    token = api_token(vote_client)
    vote_client.post("/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": token})
    client.set_cookie(COOKIE_NAME, session_cookie(vote_client))
    register(login_app.test_client(), "heidi")

    log_in(client, "heidi")
    assert "You have not voted yet." in account_page(client)
    vote_client.set_cookie(COOKIE_NAME, session_cookie(client))
    assert 'aria-pressed="true"' not in vote_client.get("/p/first").get_data(as_text=True)

    log_out(client)
    vote_client.set_cookie(COOKIE_NAME, session_cookie(client))
    page = vote_client.get("/p/first").get_data(as_text=True)
    assert 'value="dogs"\n                class="option chosen"' in page


def test_account_shows_the_newer_of_session_and_postgres(make_app, client, db):
    register(client, "ivan")
    vote_client = make_app("vote").test_client()
    vote_client.set_cookie(COOKIE_NAME, session_cookie(client))
    headers = {"X-CSRFToken": api_token(vote_client)}
    vote_client.post("/api/votes", json={"option": "cats"}, headers=headers)
    client.set_cookie(COOKIE_NAME, session_cookie(vote_client))

    assert 'Cats <span class="muted">(being counted)</span>' in account_page(client)

    # The worker applies a newer vote made from another browser.
    later = datetime.now(UTC) + timedelta(seconds=5)
    newer = Vote.new("first", "user:1", "dogs")
    with db.begin() as conn:
        conn.execute(
            insert(votes).values(
                poll_id="first",
                voter_id="user:1",
                option="dogs",
                stream_ms=int(later.timestamp() * 1000),
                stream_seq=0,
                vote_id=newer.vote_id,
                voted_at=later,
            )
        )
    page = account_page(client)
    assert "Dogs" in page and "being counted" not in page


def test_failed_logins_are_limited_per_account_and_address_not_for_the_user(make_app, login_app):
    register(login_app.test_client(), "judy")
    other_instance = make_app("login", LOGIN_RATE_LIMIT="3 per minute")
    first_instance = make_app("login", LOGIN_RATE_LIMIT="3 per minute")
    codes = [
        log_in(app.test_client(), "judy", "wrong password", ip="10.1.0.1").status_code
        for app in [first_instance, other_instance, first_instance, other_instance]
    ]

    assert codes == [401, 401, 401, 429]
    limited = log_in(first_instance.test_client(), "judy", PASSWORD, ip="10.1.0.1")
    assert limited.status_code == 429
    assert "Too many failed logins" in limited.get_data(as_text=True)
    # The attacker's failures do not lock the user out from anywhere else.
    assert log_in(first_instance.test_client(), "judy", ip="10.1.0.9").status_code == 303
    # Another account is not affected either.
    assert log_in(first_instance.test_client(), "mallory", ip="10.1.0.10").status_code == 401


def test_successful_logins_never_count(make_app, login_app):
    register(login_app.test_client(), "kate")
    app = make_app("login", LOGIN_RATE_LIMIT="2 per minute")
    codes = [log_in(app.test_client(), "kate", ip="10.3.0.1").status_code for _ in range(5)]
    assert codes == [303] * 5


def test_registrations_are_limited_per_address(make_app):
    app = make_app("login", REGISTER_RATE_LIMIT="2 per hour")
    codes = []
    for i in range(3):
        client = app.test_client()
        token = csrf_from_page(client.get("/register").get_data(as_text=True))
        codes.append(
            client.post(
                "/register",
                data={"username": f"new{i}", "password": PASSWORD, "csrf_token": token},
                headers={"X-Forwarded-For": "10.4.0.1"},
            ).status_code
        )
    assert codes == [303, 303, 429]


def test_login_is_rate_limited_per_client_address(make_app):
    app = make_app("login", LOGIN_RATE_LIMIT="3 per minute")
    codes = [log_in(app.test_client(), f"user{i}", ip="10.2.0.1").status_code for i in range(4)]

    assert codes == [401, 401, 401, 429]
    assert log_in(app.test_client(), "user9", ip="10.2.0.2").status_code == 401
    json_client = app.test_client()
    token = csrf_from_page(json_client.get("/login").get_data(as_text=True))
    limited = json_client.post(
        "/login",
        data={"username": "user9", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "10.2.0.1", "Accept": "application/json"},
    )
    assert limited.status_code == 429
    assert limited.get_json() == {
        "error": "Too many failed logins. Please wait a minute and try again."
    }


def test_the_newer_vote_is_decided_by_stream_order_not_by_a_clock(make_app, client, db, master):
    """Last vote wins by stream position, on the pages as in the worker: a Postgres row from a
    later stream entry wins over this session's vote even if its timestamp is older (another
    app server's clock was behind)."""
    register(client, "judy")
    vote_client = make_app("vote").test_client()
    vote_client.set_cookie(COOKIE_NAME, session_cookie(client))
    vote_client.post(
        "/api/votes", json={"option": "cats"}, headers={"X-CSRFToken": api_token(vote_client)}
    )
    client.set_cookie(COOKIE_NAME, session_cookie(vote_client))
    [(entry_id, _)] = master.xrange("votes")
    ms, seq = (int(part) for part in entry_id.decode().split("-"))

    clock_behind = datetime.now(UTC) - timedelta(minutes=10)
    with db.begin() as conn:
        conn.execute(
            insert(votes).values(
                poll_id="first",
                voter_id="user:1",
                option="dogs",
                stream_ms=ms,
                stream_seq=seq + 1,
                vote_id=Vote.new("first", "user:1", "dogs").vote_id,
                voted_at=clock_behind,
            )
        )

    assert "Dogs" in account_page(client)
    assert "(being counted)" not in account_page(client)
