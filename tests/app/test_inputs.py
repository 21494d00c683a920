"""Bad input of any kind, on any route of any app, is a clear 4xx: never a 500, never a vote.

The named cases are the ones a review found; the property-based test (hypothesis) then throws
generated paths, query strings, form fields, JSON bodies and encodings at every route of the
three apps, with and without a valid CSRF token, against the real Redis and Postgres.
"""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.login.views import _safe_next
from core.stream import STREAM
from tests.app.conftest import api_token, csrf_from_page


@pytest.fixture
def apps(make_app) -> dict[str, Flask]:
    return {name: make_app(name) for name in ("vote", "result", "login")}


def stream_length(master) -> int:
    return master.xlen(STREAM) if master.exists(STREAM) else 0


# --- the cases the review found ---------------------------------------------------------------


def test_a_deeply_nested_json_body_is_a_400(client, master):
    body = "[" * 5000 + "]" * 5000
    response = client.post(
        "/api/votes",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": api_token(client)},
    )
    assert response.status_code == 400
    nested = {"option": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "cats"}}}}}}}}}
    response = client.post("/api/votes", json=nested, headers={"X-CSRFToken": api_token(client)})
    assert response.status_code == 400
    assert stream_length(master) == 0


@pytest.mark.parametrize("value", ["ad\x00min", "x\ny", "tab\there", "del\x7f"])
def test_control_characters_in_a_login_field_are_a_400(apps, value):
    client = apps["login"].test_client()
    token = csrf_from_page(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": value, "password": "a long password", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "control character" in response.get_data(as_text=True)


@pytest.mark.parametrize("target", ["/x\nSet-Cookie: a=b", "/\x00", "/\r\n//evil.example"])
def test_control_characters_in_next_are_a_400(apps, target):
    response = apps["login"].test_client().get(f"/login?next={quote(target)}")
    assert response.status_code == 400


def test_bad_encoding_is_reported_as_such_not_as_a_missing_csrf_token(client, master):
    token = api_token(client)
    for body, kind in [
        (b"option=caf\xe9&csrf_token=" + token.encode(), "application/x-www-form-urlencoded"),
        (b'{"option": "caf\xe9"}', "application/json"),
    ]:
        response = client.post(
            "/vote" if "form" in kind else "/api/votes",
            data=body,
            content_type=kind,
            headers={"X-CSRFToken": token},
        )
        text = response.get_data(as_text=True)
        assert response.status_code == 400, text
        assert "UTF-8" in text and "CSRF" not in text
    assert client.get("/?q=%ff").status_code == 400
    assert stream_length(master) == 0


def test_an_unknown_option_is_not_echoed_back_at_length(client):
    response = client.post(
        "/api/votes", json={"option": "x" * 5000}, headers={"X-CSRFToken": api_token(client)}
    )
    assert response.status_code == 400
    assert len(response.get_data()) < 300


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        " //evil.example",
        "\x01//evil.example",
        "https://evil.example",
        "http:evil.example",
        "evil.example",
    ],
)
def test_next_is_judged_on_what_a_browser_reads(target):
    """What the URL parser reads: no scheme, no host, a single leading slash."""
    assert _safe_next(target, "/account") == "/account"


def test_next_keeps_a_local_path_with_its_query():
    assert _safe_next("/result?x=1#top", "/account") == "/result?x=1#top"


def test_pages_and_api_answers_are_never_cached_static_files_are(client):
    assert client.get("/").headers["Cache-Control"] == "no-store"
    assert client.get("/api/csrf").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/style.css").headers.get("Cache-Control", "")


# --- every route, generated input -------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["\x00", "\n", "\r\n", "%00", "../..", "a" * 3000, "cats", "dogs", "/"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
# The apps' own field names, so generated values reach the views (not only unknown fields).
FIELD = st.sampled_from(["option", "username", "password", "next"]) | TEXT
BODY = st.one_of(
    st.dictionaries(FIELD, TEXT, max_size=4).map(lambda d: ("form", d)),
    st.dictionaries(FIELD, JSON, max_size=3).map(lambda j: ("json", j)),
    JSON.map(lambda j: ("json", j)),
    st.integers(1, 4000).map(lambda n: ("raw", b"[" * n + b"]" * n)),
    st.binary(max_size=200).map(lambda b: ("raw", b)),
    st.just(("none", None)),
)


def _routes() -> list[tuple[str, str, str]]:
    """(app, method, path) of every route of the three apps."""
    from app import APPS, create_app
    from core.config import Config

    env = {
        "SECRET_KEY": "x",
        "REDIS_SENTINELS": "127.0.0.1:1",
        "DATABASE_URL": "postgresql+psycopg2://x@127.0.0.1:1/x",
    }
    found = []
    for name in APPS:
        for rule in create_app(name, Config.from_env(env)).url_map.iter_rules():
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((name, method, rule.rule.replace("<path:filename>", "style.css")))
    return sorted(set(found))


@pytest.mark.parametrize(("name", "method", "path"), _routes())
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.lists(st.tuples(FIELD, TEXT), max_size=3),
    body=BODY,
    with_token=st.booleans(),
    # What a WSGI server hands over as PATH_INFO: bytes as latin-1 characters, decoded %-escapes.
    suffix=st.sampled_from(["", "", "", "/", "\x00", "/..", "\xff", "\xc3\xa9", "/\n"]),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain"]
    ),
)
def test_no_route_answers_500_or_changes_the_tally_on_any_input(
    apps, master, name, method, path, query, body, with_token, suffix, content_type
):
    client = apps[name].test_client()
    headers = {"X-CSRFToken": api_token(client)} if with_token else {}
    before = stream_length(master)
    kind, value = body
    kwargs: dict = {
        "headers": headers,
        "query_string": "&".join(f"{quote(k)}={quote(v)}" for k, v in query),
        "environ_overrides": {"PATH_INFO": path + suffix},
    }
    if kind == "form":
        kwargs["data"] = {**value, "csrf_token": headers.get("X-CSRFToken", "")}
    elif kind == "json":
        kwargs["data"] = json.dumps(value)
        kwargs["content_type"] = "application/json"
    elif kind == "raw":
        kwargs["data"] = value
        kwargs["content_type"] = content_type

    response = client.open("/", method=method, **kwargs)

    assert response.status_code < 500, (path + suffix, body, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        assert stream_length(master) == before, "a refused request wrote a vote"


def test_a_too_large_chunked_body_is_a_413_not_a_truncated_request(client, master):
    """Werkzeug alone cuts a body without Content-Length at MAX_CONTENT_LENGTH silently."""
    body = json.dumps({"option": "cats", "pad": "x" * 40_000}).encode()
    response = client.post(
        "/api/votes",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked", "X-CSRFToken": api_token(client)},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 413
    assert stream_length(master) == 0
    small = json.dumps({"option": "cats"}).encode()
    response = client.post(
        "/api/votes",
        input_stream=io.BytesIO(small),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked", "X-CSRFToken": api_token(client)},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 202
