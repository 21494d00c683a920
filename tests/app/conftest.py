"""Fixtures for the web apps: real apps on the fast tier's real Redis and Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis.client
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.resources import get_resources
from app.sessions import COOKIE_NAME
from core.config import Config
from core.db import Database
from core.polls import Poll, make_draft, store
from core.polls.published import publish
from core.replicated import WaitPolicy
from ops import voter
from tests.servers import RedisCluster

MakeApp = Callable[..., Flask]
NewPoll = Callable[..., Poll]


@pytest.fixture
def make_app(app_env: dict[str, str], clean_data: None) -> Iterator[MakeApp]:
    """Build apps from the test environment plus overrides; close their clients afterwards."""
    created: list[Flask] = []

    def make(name: str, **env: str) -> Flask:
        app = create_app(name, Config.from_env({**app_env, **env}))
        created.append(app)
        return app

    yield make
    for app in created:
        with app.app_context():
            get_resources().close()


@pytest.fixture
def vote_app(make_app: MakeApp) -> Flask:
    return make_app("vote")


@pytest.fixture
def client(vote_app: Flask) -> FlaskClient:
    return vote_app.test_client()


@pytest.fixture
def master(redis_servers: RedisCluster) -> redis.client.Redis:
    """A direct client of the Redis master, to look at what the apps wrote."""
    return redis_servers.client()


def csrf_from_page(html: str) -> str:
    """The CSRF token in a page's hidden form field."""
    token = voter.csrf_from_page(html)
    assert token, "no csrf_token field in the page"
    return token


def api_token(client: FlaskClient) -> str:
    """A CSRF token for JSON requests, bound to the client's session."""
    response = client.get("/api/csrf")
    assert response.status_code == 200
    return response.get_json()["csrf_token"]


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME)
    return cookie.value if cookie else None


@pytest.fixture
def new_poll(database_url: str, redis_servers: RedisCluster, clean_data: None) -> Iterator[NewPoll]:
    """Make a poll as the login app does: stored in Postgres, then published to Redis."""
    database = Database(database_url)
    client = redis_servers.client()

    def make(
        question: str = "Tea or coffee?",
        labels: tuple[str, ...] = ("Tea", "Coffee"),
        *,
        owner_id: int | None = None,
        closes_at: datetime | None = None,
    ) -> Poll:
        draft = make_draft(question, list(labels), closes_at, now=datetime.now(UTC))
        poll = store.create(database, draft, owner_id)
        publish(client, poll, WaitPolicy())
        return poll

    yield make
    database.dispose()
