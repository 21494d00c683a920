"""In Chromium through HAProxy: make a poll, share its link, vote from another browser, watch
the results move, close the poll, see voting refused; all by keyboard-reachable controls."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_voting import PASSWORD

pytestmark = [pytest.mark.stack, pytest.mark.browser]

LIVE_WITHIN_MS = 5_000


def test_make_share_vote_watch_close_and_refuse(new_visitor, shot, username):
    owner = new_visitor()
    owner.goto("/register")
    owner.get_by_label("Username").fill(username)
    owner.get_by_label("Password").fill(PASSWORD)
    owner.get_by_role("button", name="Create account").click()

    owner.goto("/")
    owner.get_by_role("link", name="Make a poll").click()
    owner.get_by_label("Question").fill("Which season?")
    owner.get_by_label("Option 1", exact=True).fill("Only one")
    owner.get_by_role("button", name="Open the poll").click()
    expect(owner.locator(".errors")).to_contain_text("Give 2 to 20 options (you gave 1)")
    for number, season in enumerate(["Spring", "Summer", "Autumn", "Winter"], 1):
        owner.get_by_label(f"Option {number}", exact=True).fill(season)
    owner.get_by_role("button", name="Open the poll").click()
    expect(owner.locator(".flash-success")).to_contain_text("Your poll is open")
    link = owner.get_by_label("Share this poll").input_value()
    shot(owner, "made")

    watcher = new_visitor()
    watcher.goto(link + "/result")
    expect(watcher.locator("h1#results-title")).to_have_text("Which season?")
    count = watcher.locator('li.bar[data-key="autumn"] .count')
    expect(count).to_have_text("0")

    friend = new_visitor()
    friend.goto(link)  # the shared link, in another browser
    friend.get_by_role("button", name="Autumn").click()
    expect(friend.locator(".flash-success")).to_have_text("Your vote for Autumn is in.")
    expect(friend.get_by_role("button", name="Autumn Your vote")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(count).to_have_text("1", timeout=LIVE_WITHIN_MS)
    shot(watcher, "counted")

    owner.get_by_role("navigation", name="Main").get_by_role("link", name="My polls").click()
    owner.get_by_role("button", name="Close “Which season?”").click()
    expect(owner.locator(".flash-success")).to_contain_text("it no longer takes votes")
    expect(watcher.locator(".state-closed")).to_be_visible(timeout=LIVE_WITHIN_MS)

    # The friend's page is still the open one: the vote is refused all the same.
    friend.get_by_role("button", name="Winter").click()
    expect(friend.locator("#error-title")).to_have_text("Not possible now")
    expect(friend.locator(".error-message")).to_have_text(
        "This poll is closed: it no longer takes votes."
    )
    friend.goto(link)
    expect(friend.locator(".closed-notice")).to_contain_text("This poll is closed")
    expect(friend.get_by_role("button", name="Winter")).to_be_disabled()
    expect(count).to_have_text("1")
    shot(friend, "refused")
