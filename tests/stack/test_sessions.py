"""One session across every app instance; votes reach the results fast; HAProxy spreads load."""

from __future__ import annotations

import re
import secrets
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import bindparam, create_engine, text

from ops.local.layout import HOST, WORKERS
from ops.voter import Voter, csrf_from_page
from ops.wait import wait_for

pytestmark = pytest.mark.stack

TIMEOUT = 10
PASSWORD = "correct horse battery"
CHOSEN = re.compile(r'value="([a-z0-9_-]+)"\s+class="option chosen"\s+aria-pressed="true"')
OPTION = re.compile(r'<button type="submit" name="option" value="([a-z0-9_-]+)"')


def instances(stack, app: str) -> list[str]:
    """Base URLs of the app's instances (granian), reached directly (not through HAProxy)."""
    return [f"http://{HOST}:{port}" for _, name, port in stack.layout.app_instances if name == app]


def csrf_from(html: str) -> str:
    token = csrf_from_page(html)
    assert token, "no csrf_token field in the page"
    return token


def browser(stack) -> Voter:
    """A new browser: its own cookies, trusting the stack's self-signed certificate."""
    return Voter(stack.urls["web"], verify=stack.verify)


def get(session: Voter, url: str) -> requests.Response:
    response = session.request("GET", url, timeout=TIMEOUT)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:200]}"
    return response


FIRST = "/p/first"


def poll_options(stack) -> list[str]:
    return OPTION.findall(get(browser(stack), stack.urls["web"] + FIRST).text)


def test_an_anonymous_session_made_by_one_vote_instance_works_on_the_other(stack):
    vote1, vote2 = instances(stack, "vote")
    first, second = poll_options(stack)[:2]
    one = browser(stack)
    token = csrf_from(get(one, f"{vote1}{FIRST}").text)

    voted = one.request("POST", f"{vote1}/vote", data={"option": first, "csrf_token": token})
    assert voted.status_code == 303, voted.text
    page = get(one, f"{vote2}{voted.headers['Location']}").text
    assert "is in." in page, "vote-2 did not find the voter or the choice vote-1 recorded"
    assert CHOSEN.findall(page) == [first]

    # vote-1's token, sent to vote-2: the same session, so the same valid token.
    changed = one.request(
        "POST", f"{vote2}/api/votes", json={"option": second}, headers={"X-CSRFToken": token}
    )
    assert changed.status_code == 202, changed.text
    assert CHOSEN.findall(get(one, f"{vote1}{FIRST}").text) == [second]

    stranger = browser(stack).request(
        "POST", f"{vote2}/api/votes", json={"option": second}, headers={"X-CSRFToken": token}
    )
    assert stranger.status_code == 400, "a CSRF token must only work with its own session"


def test_votes_through_both_vote_instances_belong_to_one_voter(stack):
    vote1, vote2 = instances(stack, "vote")
    first, second = poll_options(stack)[:2]
    one = browser(stack)
    token = get(one, f"{vote1}/api/csrf").json()["csrf_token"]
    vote_ids = []
    for base, option in ((vote1, first), (vote2, second)):
        response = one.request(
            "POST", f"{base}/api/votes", json={"option": option}, headers={"X-CSRFToken": token}
        )
        assert response.status_code == 202, response.text
        vote_ids.append(response.json()["vote_id"])

    # The worker keeps one row per voter: the second vote replaces the first only if both
    # came from the same voter.
    query = text("SELECT vote_id, option FROM votes WHERE vote_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    engine = create_engine(stack.deployment.database_url)
    try:
        deadline = time.monotonic() + 5
        while True:
            with engine.connect() as conn:
                rows = conn.execute(query, {"ids": vote_ids}).all()
            if any(row.vote_id == vote_ids[1] for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert [(row.vote_id, row.option) for row in rows] == [(vote_ids[1], second)]


def log_in_through_haproxy(stack) -> tuple[Voter, str]:
    """Register an account in one browser, then log in to it from another; return the latter."""
    username = f"s{secrets.token_hex(6)}"
    registrar = browser(stack)
    form = {"username": username, "password": PASSWORD}
    token = csrf_from(get(registrar, "/register").text)
    created = registrar.request("POST", "/register", data={**form, "csrf_token": token})
    assert created.status_code == 303, created.text

    user = browser(stack)
    token = csrf_from(get(user, "/login").text)
    logged_in = user.request("POST", "/login", data={**form, "csrf_token": token})
    assert logged_in.status_code == 303, logged_in.text
    return user, username


def test_a_login_through_haproxy_is_honoured_by_every_app_instance(stack):
    user, username = log_in_through_haproxy(stack)
    nav = f"Account ({username})"

    for base in instances(stack, "login"):
        account = get(user, f"{base}/account").text
        assert f'<dd class="username">{username}</dd>' in account, base
    for base in instances(stack, "vote"):
        assert nav in get(user, f"{base}/").text, base
    for base in instances(stack, "result"):
        assert nav in get(user, f"{base}/result").text, base

    anonymous = browser(stack).request("GET", f"{instances(stack, 'login')[0]}/account")
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"].startswith("/login")


def workers_running(stack) -> list[str]:
    """The workers whose metrics endpoint answers (they serve it while they run)."""
    running = []
    for worker in WORKERS:
        url = f"http://{HOST}:{stack.layout.port('worker-metrics', worker)}/metrics"
        try:
            requests.get(url, timeout=2).raise_for_status()
        except requests.RequestException:
            continue
        running.append(worker)
    return running


def counts(stack) -> dict[str, int]:
    results = get(browser(stack), "/api/results").json()
    return {option["key"]: option["count"] for option in results["options"]}


def settled_counts(stack, timeout: float = 5.0) -> dict[str, int]:
    """The counts once two reads 0.3 s apart agree (votes of earlier tests are applied)."""
    deadline = time.monotonic() + timeout
    last = counts(stack)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = counts(stack)
        if now == last:
            return now
        last = now
    return last


def seconds_until_counted(stack, option: str, before: int, limit: float = 5.0) -> float:
    """Seconds until /api/results counts more than `before` for `option` (end of that read)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if counts(stack)[option] > before:
            return time.monotonic() - start
        time.sleep(0.01)
    return float("inf")


def test_a_vote_through_haproxy_reaches_the_results_within_a_second(stack):
    wait_for(lambda: workers_running(stack), "a worker to drain the vote stream", 30, 0.5)
    option = poll_options(stack)[0]
    delays = []
    for form in (True, False):
        voter = browser(stack)
        voter.open_page(FIRST)
        before = settled_counts(stack)[option]
        response = voter.vote(option, form=form)
        assert response.status_code in (202, 303), response.text
        delays.append(seconds_until_counted(stack, option, before))
    print("vote-to-results delays (form, API): " + ", ".join(f"{d:.3f} s" for d in delays))
    assert max(delays) < 1.0, delays


def served_requests(stack, program: str) -> float:
    """The instance's flask_http_request_total, summed over its labels (all its processes),
    from its own metrics port."""
    port = stack.layout.app_metrics_port(program)
    metrics = requests.get(f"http://{HOST}:{port}/metrics", timeout=TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "flask_http_request"
        for sample in family.samples
        if sample.name == "flask_http_request_total"
    )


def vote_servers_up(stack) -> bool:
    backends = stack.status()["haproxy"]["backends"]
    up = [b for b in backends if b["proxy"] == "vote" and b["status"].startswith("UP")]
    return len(up) == len(instances(stack, "vote"))


def test_haproxy_spreads_vote_requests_over_both_instances(stack):
    # An instance restarted by an earlier test is back in rotation after two passed checks.
    wait_for(lambda: vote_servers_up(stack), "both vote instances in rotation", 30, 0.5)
    programs = [p for p, app, _ in stack.layout.app_instances if app == "vote"]
    before = [served_requests(stack, program) for program in programs]
    requests_sent = 20
    client = browser(stack)
    for _ in range(requests_sent):
        get(client, "/")
    served = [served_requests(stack, p) - b for p, b in zip(programs, before, strict=True)]

    assert sum(served) >= requests_sent
    assert all(n >= requests_sent / 4 for n in served), f"requests per instance: {served}"
