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
from ops.voter import csrf_from_page

pytestmark = pytest.mark.stack

TIMEOUT = 10
PASSWORD = "correct horse battery"
CHOSEN = re.compile(r'value="([a-z0-9_-]+)"\s+class="option chosen"\s+aria-pressed="true"')
OPTION = re.compile(r'<button type="submit" name="option" value="([a-z0-9_-]+)"')


def instances(stack, app: str) -> list[str]:
    """Base URLs of the app's gunicorn instances, reached directly (not through HAProxy)."""
    return [f"http://{HOST}:{port}" for _, name, port in stack.layout.app_instances if name == app]


def csrf_from(html: str) -> str:
    token = csrf_from_page(html)
    assert token, "no csrf_token field in the page"
    return token


def get(session: requests.Session, url: str) -> requests.Response:
    response = session.get(url, timeout=TIMEOUT, allow_redirects=False)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:200]}"
    return response


FIRST = "/p/first"


def poll_options(stack) -> list[str]:
    return OPTION.findall(requests.get(stack.urls["web"] + FIRST, timeout=TIMEOUT).text)


def test_an_anonymous_session_made_by_one_vote_instance_works_on_the_other(stack):
    vote1, vote2 = instances(stack, "vote")
    first, second = poll_options(stack)[:2]
    browser = requests.Session()
    token = csrf_from(get(browser, f"{vote1}{FIRST}").text)

    voted = browser.post(
        f"{vote1}/vote",
        data={"option": first, "csrf_token": token},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert voted.status_code == 303, voted.text
    page = get(browser, f"{vote2}{FIRST}").text
    assert "is in." in page, "vote-2 did not show the flash vote-1 stored in the session"
    assert CHOSEN.findall(page) == [first]

    # vote-1's token, sent to vote-2: the same session, so the same valid token.
    changed = browser.post(
        f"{vote2}/api/votes",
        json={"option": second},
        headers={"X-CSRFToken": token},
        timeout=TIMEOUT,
    )
    assert changed.status_code == 202, changed.text
    assert CHOSEN.findall(get(browser, f"{vote1}{FIRST}").text) == [second]

    stranger = requests.post(
        f"{vote2}/api/votes",
        json={"option": second},
        headers={"X-CSRFToken": token},
        timeout=TIMEOUT,
    )
    assert stranger.status_code == 400, "a CSRF token must only work with its own session"


def test_votes_through_both_vote_instances_belong_to_one_voter(stack):
    vote1, vote2 = instances(stack, "vote")
    first, second = poll_options(stack)[:2]
    browser = requests.Session()
    token = get(browser, f"{vote1}/api/csrf").json()["csrf_token"]
    vote_ids = []
    for base, option in ((vote1, first), (vote2, second)):
        response = browser.post(
            f"{base}/api/votes",
            json={"option": option},
            headers={"X-CSRFToken": token},
            timeout=TIMEOUT,
        )
        assert response.status_code == 202, response.text
        vote_ids.append(response.json()["vote_id"])

    # The worker keeps one row per voter: the second vote replaces the first only if both
    # came from the same voter.
    query = text("SELECT vote_id, option FROM votes WHERE vote_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    engine = create_engine(stack.env["DATABASE_URL"])
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


def log_in_through_haproxy(stack) -> tuple[requests.Session, str]:
    """Register an account in one browser, then log in to it from another; return the latter."""
    web = stack.urls["web"]
    username = f"s{secrets.token_hex(6)}"
    registrar = requests.Session()
    form = {"username": username, "password": PASSWORD}
    token = csrf_from(get(registrar, f"{web}/register").text)
    created = registrar.post(
        f"{web}/register",
        data={**form, "csrf_token": token},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert created.status_code == 303, created.text

    browser = requests.Session()
    token = csrf_from(get(browser, f"{web}/login").text)
    logged_in = browser.post(
        f"{web}/login",
        data={**form, "csrf_token": token},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    assert logged_in.status_code == 303, logged_in.text
    return browser, username


def test_a_login_through_haproxy_is_honoured_by_every_app_instance(stack):
    browser, username = log_in_through_haproxy(stack)
    nav = f"Account ({username})"

    for base in instances(stack, "login"):
        account = get(browser, f"{base}/account").text
        assert f'<dd class="username">{username}</dd>' in account, base
    for base in instances(stack, "vote"):
        assert nav in get(browser, f"{base}/").text, base
    for base in instances(stack, "result"):
        assert nav in get(browser, f"{base}/result").text, base

    anonymous = requests.get(
        f"{instances(stack, 'login')[0]}/account", timeout=TIMEOUT, allow_redirects=False
    )
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
    results = requests.get(f"{stack.urls['web']}/api/results", timeout=TIMEOUT).json()
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
    deadline = time.monotonic() + 30
    while not workers_running(stack) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert workers_running(stack), "no worker is running: nothing drains the vote stream"
    web = stack.urls["web"]
    option = poll_options(stack)[0]
    delays = []
    for form in (True, False):
        voter = requests.Session()
        token = csrf_from(get(voter, f"{web}{FIRST}").text)
        before = settled_counts(stack)[option]
        if form:
            response = voter.post(
                f"{web}/vote",
                data={"option": option, "csrf_token": token},
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        else:
            response = voter.post(
                f"{web}/api/votes",
                json={"option": option},
                headers={"X-CSRFToken": token},
                timeout=TIMEOUT,
            )
        assert response.status_code in (202, 303), response.text
        delays.append(seconds_until_counted(stack, option, before))
    print("vote-to-results delays (form, API): " + ", ".join(f"{d:.3f} s" for d in delays))
    assert max(delays) < 1.0, delays


def served_requests(base: str) -> float:
    """The instance's flask_http_request_total, summed over its labels (all gunicorn workers)."""
    metrics = requests.get(f"{base}/metrics", timeout=TIMEOUT).text
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
    deadline = time.monotonic() + 30
    while not vote_servers_up(stack) and time.monotonic() < deadline:
        time.sleep(0.5)
    vote_instances = instances(stack, "vote")
    before = [served_requests(base) for base in vote_instances]
    requests_sent = 20
    with requests.Session() as client:
        for _ in range(requests_sent):
            get(client, f"{stack.urls['web']}/")
    served = [served_requests(base) - b for base, b in zip(vote_instances, before, strict=True)]

    assert sum(served) >= requests_sent
    assert all(n >= requests_sent / 4 for n in served), f"requests per instance: {served}"
