"""Polls through HAProxy: each route reaches its app (create on login, read and vote on vote,
results on result), and a closed poll refuses votes while its results stay."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from ops.voter import Voter
from ops.wait import wait_for

pytestmark = pytest.mark.stack

PASSWORD = "correct horse battery"


def results(voter: Voter, poll_id: str) -> dict:
    reply = voter.request("GET", f"/api/polls/{poll_id}/results")
    assert reply.status_code == 200, reply.text
    return reply.json()


def counted(voter: Voter, poll_id: str, option: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = {o["key"]: o["count"] for o in results(voter, poll_id)["options"]}[option]
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_a_poll_made_voted_in_closed_and_deleted_through_haproxy(stack):
    web = stack.urls["web"]
    # HAProxy puts the login instances in rotation after two passed checks (up to 4 s).
    wait_for(
        lambda: requests.get(f"{web}/register", timeout=5, verify=stack.verify).ok,
        "the login app",
        30,
        0.5,
    )
    owner = Voter(web, verify=stack.verify)
    owner.register(f"p{secrets.token_hex(6)}", PASSWORD)
    poll = owner.create_poll("Through HAProxy?", ["Yes", "No"])
    poll_id = poll["id"]
    assert poll["published"] is True

    voter = Voter(web, verify=stack.verify)
    assert poll_id in [p["id"] for p in voter.request("GET", "/api/polls").json()["polls"]]
    assert voter.request("GET", f"/api/polls/{poll_id}").json()["question"] == "Through HAProxy?"
    assert "Through HAProxy?" in voter.request("GET", f"/p/{poll_id}").text
    voted = voter.vote("yes", poll=poll_id)
    assert voted.status_code == 202, voted.text
    assert counted(voter, poll_id, "yes") == 1

    closed = owner.json("POST", f"/api/polls/{poll_id}/close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    refused = voter.vote("no", poll=poll_id)
    assert refused.status_code == 409, refused.text
    final = results(voter, poll_id)
    assert final["state"] == "closed" and final["total"] == 1

    assert owner.json("DELETE", f"/api/polls/{poll_id}").status_code == 204
    assert voter.request("GET", f"/api/polls/{poll_id}").status_code == 404
    assert voter.request("GET", f"/api/polls/{poll_id}/results").status_code == 404
    assert voter.vote("no", poll=poll_id).status_code == 404


def test_the_first_poll_keeps_its_old_urls(stack):
    voter = Voter(stack.urls["web"], verify=stack.verify)
    old = voter.request("GET", "/api/results").json()
    new = voter.request("GET", "/api/polls/first/results").json()
    assert old["id"] == new["id"] == "first"
    assert [o["key"] for o in old["options"]] == [o["key"] for o in new["options"]]
    assert voter.vote(old["options"][0]["key"]).status_code == 202
    assert '<h1 id="results-title">' in voter.request("GET", "/result").text
