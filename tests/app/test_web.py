"""What the three apps share: health, errors, one session across apps, metrics, entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from app import create_app, metrics
from app.errors import UNAVAILABLE
from app.sessions import COOKIE_NAME
from core.stream import STREAM
from ops.voter import Voter
from tests.app.conftest import api_token, csrf_from_page, session_cookie
from tests.servers import free_port, wait_for

NOWHERE_DB = "postgresql+psycopg2://vote:x@127.0.0.1:1/votes"
NOWHERE_REDIS = "127.0.0.1:1"
# DATABASE_RO_URL left empty falls back to DATABASE_URL.
NO_DATABASE = {"DATABASE_URL": NOWHERE_DB, "DATABASE_RO_URL": ""}
REPO = Path(__file__).resolve().parents[2]


def test_unknown_app_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown app 'admin': expected one of vote, result"):
        create_app("admin")


@pytest.mark.parametrize("name", ["vote", "result", "login"])
def test_healthz_does_no_io(make_app, name):
    app = make_app(name, **NO_DATABASE, REDIS_SENTINELS=NOWHERE_REDIS)

    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("name", "checks"),
    [("vote", ["redis"]), ("result", ["postgres"]), ("login", ["redis", "postgres"])],
)
def test_readyz_checks_what_each_app_needs(make_app, name, checks):
    response = make_app(name).test_client().get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": dict.fromkeys(checks, "ok")}


@pytest.mark.parametrize(
    ("name", "env", "failed", "status"),
    [
        ("result", NO_DATABASE, "postgres", 503),
        ("login", NO_DATABASE, "postgres", 503),
        ("vote", {"REDIS_SENTINELS": NOWHERE_REDIS}, "redis", 503),
        # Votes are buffered in the stream while Postgres fails over.
        ("vote", NO_DATABASE, None, 200),
    ],
)
def test_readyz_names_what_failed(make_app, name, env, failed, status):
    response = make_app(name, **env).test_client().get("/readyz")

    assert response.status_code == status
    body = response.get_json()
    if failed:
        assert body["status"] == "unavailable"
        assert body["checks"][failed].startswith("failed: ")


def test_errors_are_json_for_the_api_and_html_for_people(client):
    page = client.get("/no-such-page")
    wants_json = client.get("/no-such-page", headers={"Accept": "application/json"})
    api = client.get("/api/no-such-thing")
    method = client.get("/vote")

    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert '<h1 id="error-title">Not found</h1>' in page.get_data(as_text=True)
    assert wants_json.status_code == api.status_code == 404
    assert wants_json.get_json()["error"] == api.get_json()["error"]
    assert "not found" in api.get_json()["error"]
    assert method.status_code == 405
    assert set(method.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    assert "Method not allowed" in method.get_data(as_text=True)


def test_an_unreachable_database_is_a_clean_503(make_app):
    client = make_app("result", DATABASE_RO_URL=NOWHERE_DB).test_client()

    api = client.get("/api/results")
    page = client.get("/result")

    assert api.status_code == page.status_code == 503
    assert api.get_json() == {"error": UNAVAILABLE}
    assert api.headers["Retry-After"] == "2"
    assert UNAVAILABLE in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)


def test_a_redis_master_refusing_writes_is_a_clean_503(client, master):
    # What a master cut off from its replicas answers (min-replicas-to-write).
    master.config_set("min-replicas-to-write", 2)
    try:
        page = client.get("/p/first")  # opens a session: a write
    finally:
        master.config_set("min-replicas-to-write", 0)

    assert page.status_code == 503
    assert UNAVAILABLE in page.get_data(as_text=True)


def test_one_session_cookie_works_across_the_three_apps(make_app, master):
    login, vote, result = (make_app(name).test_client() for name in ("login", "vote", "result"))
    token = csrf_from_page(login.get("/register").get_data(as_text=True))
    login.post(
        "/register", data={"username": "kim", "password": "kim's long pw", "csrf_token": token}
    )
    token = api_token(login)  # login starts a new session: a new token
    for other in (vote, result):
        other.set_cookie(COOKIE_NAME, session_cookie(login))

    # The CSRF token issued by the login app is valid in the vote app: same session.
    response = vote.post("/api/votes", json={"option": "cats"}, headers={"X-CSRFToken": token})

    assert response.status_code == 202
    [(_id, fields)] = master.xrange(STREAM)
    assert fields[b"voter"] == b"user:1"
    assert "Account (kim)" in result.get("/result").get_data(as_text=True)
    assert "My polls" in vote.get("/").get_data(as_text=True)


@pytest.mark.parametrize("cookie", ["garbage", "A" * 43, "x" * 3000, "..%2F..%2Fetc"])
def test_a_tampered_session_cookie_gets_a_fresh_anonymous_session(client, master, cookie):
    client.set_cookie(COOKIE_NAME, cookie)

    page = client.get("/p/first")
    vote = client.post(
        "/api/votes", json={"option": "dogs"}, headers={"X-CSRFToken": "from another session"}
    )

    assert page.status_code == 200
    assert session_cookie(client) not in (None, cookie)
    assert vote.status_code == 400
    assert master.xlen(STREAM) == 0


def test_metrics_count_http_requests_and_votes(vote_app, client):
    token = api_token(client)
    client.post("/api/votes", json={"option": "cats"}, headers={"X-CSRFToken": token})
    client.post("/api/votes", json={"option": "fish"}, headers={"X-CSRFToken": token})
    client.post("/api/votes", json={"option": "cats"})
    client.get("/healthz")

    text = metrics.exposition(vote_app).decode()

    assert client.get("/metrics").status_code == 404  # never on the app's own port
    assert 'vote_submissions_total{outcome="accepted",reason="ok"} 1.0' in text
    assert 'vote_submissions_total{outcome="rejected",reason="unknown_option"} 1.0' in text
    assert 'vote_submissions_total{outcome="rejected",reason="csrf"} 1.0' in text
    assert 'url_rule="/api/votes"' in text
    assert 'url_rule="/healthz"' not in text


def test_pages_forbid_framing_and_foreign_content(client):
    headers = client.get("/").headers

    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Content-Type-Options"] == "nosniff"


def _env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, **extra}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import app.wsgi; app.wsgi.vote"],
        [sys.executable, "-m", "app.serve", "vote"],
    ],
    ids=["wsgi", "serve"],
)
def test_a_config_error_is_one_line_not_a_traceback(command):
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=30)

    assert done.returncode != 0
    assert "config error: DATABASE_URL is not set" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_server_serves_the_app_and_its_metrics_on_their_own_port(
    app_env, clean_data, tmp_path, workers
):
    port, metrics_port = free_port(), free_port()
    env = _env(
        **app_env,
        WEB_BIND=f"127.0.0.1:{port}",
        METRICS_BIND=f"127.0.0.1:{metrics_port}",
        WEB_WORKERS=workers,
        WEB_ACCESS_LOG="true",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "vote"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, "the server", 20)
        assert requests.get(f"{base}/static/style.css", timeout=5).status_code == 200
        voter = Voter(base)
        for _ in range(3):
            assert voter.vote("dogs").status_code == 202
        # Whichever worker answers the scrape reports the votes of all.
        for _ in range(4):
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            assert 'vote_submissions_total{outcome="accepted",reason="ok"} 3.0' in text
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
        # One worker runs in the server's own process; more are processes of their own
        # (beside multiprocessing's resource tracker).
        children = psutil.Process(server.pid).children()
        assert len(children) == 0 if workers == "1" else len(children) > int(workers)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert b"Traceback" not in output
    assert b"free-threaded" not in output
    assert b"POST /api/votes" in output
