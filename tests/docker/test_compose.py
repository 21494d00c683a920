"""docker compose on a real engine: up from nothing, reachable, one session everywhere, restarts."""

from __future__ import annotations

import json
import time

import requests

from ops.drill.compose_view import APPS, SENTINELS
from ops.voter import Voter, csrf_from_page, poll_options
from ops.wait import wait_for

TIMEOUT = 10


def test_the_project_comes_up_whole_from_nothing(compose, figures):
    # The fixture started it from no containers and no volumes and waited for wholeness.
    assert compose.whole_problems() == []
    assert figures["compose_cold_start_to_whole_s"] < 300


def test_pages_and_the_stats_page_answer_on_the_published_ports(compose):
    ca = compose.view.ca_file()
    for path in ("/", "/result", "/login", "/register"):
        page = requests.get(compose.web + path, timeout=TIMEOUT, verify=ca)
        assert page.status_code == 200, path
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        plain = requests.get(compose.http + path, timeout=TIMEOUT, allow_redirects=False)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    stats = f"https://127.0.0.1:{compose.published.stats}/"
    assert requests.get(stats, timeout=TIMEOUT, verify=ca).status_code == 401
    password = compose.view.secret("haproxy-stats")
    page = requests.get(stats, auth=("admin", password), timeout=TIMEOUT, verify=ca)
    assert page.status_code == 200 and "vote1" in page.text


def _count(web: str, option: str, ca: str) -> int:
    body = requests.get(f"{web}/api/results", timeout=TIMEOUT, verify=ca).json()
    return next(o["count"] for o in body["options"] if o["key"] == option)


def test_a_vote_through_haproxy_shows_in_the_results(compose):
    ca = compose.view.ca_file()
    option = poll_options(compose.web, ca)[0]
    before = _count(compose.web, option, ca)
    reply = Voter(compose.web, verify=ca).vote(option)
    assert reply.status_code == 202, reply.text
    wait_for(lambda: _count(compose.web, option, ca) == before + 1, "the vote in the results", 30)


def _log_in(web: str, ca: str) -> tuple[Voter, str]:
    """Register an account in one browser, log in to it from another (through HAProxy)."""
    username, password = f"d{time.monotonic_ns()}", "correct horse battery"
    for path in ("/register", "/login"):
        browser = Voter(web, verify=ca)
        form = {"username": username, "password": password, "csrf_token": None}
        form["csrf_token"] = csrf_from_page(browser.request("GET", path).text)
        reply = browser.request("POST", path, data=form)
        assert reply.status_code == 303, f"{path}: {reply.text[:300]}"
    return browser, username


def test_a_session_made_through_haproxy_works_on_every_instance(compose):
    browser, username = _log_in(compose.web, compose.view.ca_file())
    hosts = compose.view.addresses()
    # Each instance directly (not through HAProxy), with the session cookie made above.
    for app in APPS:
        path = {"vote": "/", "result": "/result", "login": "/account"}[app.rstrip("12")]
        page = browser.request("GET", f"http://{hosts[app]}:8000{path}")
        assert page.status_code == 200, f"{app}: {page.status_code}"
        assert username in page.text, f"{app} does not know the session"


def test_votectl_status_inside_the_network_shows_the_whole_topology(compose):
    done = compose.run("run", "--rm", "votectl", "status", "--json", timeout=120)
    status = json.loads(done.stdout)
    assert status["redis"]["master"] and len(status["redis"]["replicas"]) == 2
    assert status["sentinel"]["quorum_ok"] and len(status["sentinel"]["sentinels"]) == len(
        SENTINELS
    )
    assert status["postgres"]["leader"] and status["postgres"]["sync_standby"]
    servers = {(s["proxy"], s["server"]): s["status"] for s in status["haproxy"]["backends"]}
    assert all(servers[("vote", f"vote{i}")] == "UP" for i in (1, 2))


def test_a_crashed_redis_master_is_restarted_and_rejoins_as_a_replica(compose, figures):
    view = compose.view
    victim = view.redis_master()
    container = view.container(victim)
    restarts = view.engine.inspect(container)[0]["RestartCount"]
    started = time.monotonic()
    view.engine.crash(container)  # a crash: Docker's restart policy answers it
    wait_for(lambda: view.redis_master() != victim, "the Sentinels to promote a replica", 60)
    wait_for(lambda: not compose.whole_problems(), "the project to be whole again", 120, 1)
    figures["crash_redis_master_to_whole_s"] = round(time.monotonic() - started, 1)
    assert view.engine.inspect(container)[0]["RestartCount"] == restarts + 1
    with view.deployment().node_client(victim, 6379) as node:
        assert node.info("replication")["role"] == "slave"
