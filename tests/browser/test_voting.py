"""In Chromium through HAProxy: register, log in, vote, change the vote, and vote by keyboard
(in the first poll; polls people make: test_polls.py)."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = [pytest.mark.stack, pytest.mark.browser]

PASSWORD = "correct horse battery"
MAX_TABS = 20


def options(page: Page) -> Locator:
    return page.locator("button.option")


def label(option: Locator) -> str:
    return option.locator(".option-label").inner_text().strip()


def expect_vote_shown(page: Page, chosen: Locator, other: Locator) -> None:
    """The confirmation for `chosen`, which is highlighted as the current choice; `other` not."""
    expect(page.locator(".flash-success")).to_have_text(f"Your vote for {label(chosen)} is in.")
    expect(chosen).to_have_attribute("aria-pressed", "true")
    expect(chosen).to_have_class(re.compile(r"\bchosen\b"))
    expect(chosen.locator(".badge")).to_have_text("Your vote")
    expect(other).to_have_attribute("aria-pressed", "false")
    expect(other.locator(".badge")).to_have_count(0)


def account_vote_once_counted(page: Page, timeout: float = 5.0) -> str:
    """The account page's vote once the worker applied it (no "(being counted)")."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto("/account")
        text = page.locator("dd.current-vote").inner_text().strip()
        if "being counted" not in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_register_log_in_vote_and_change_the_vote(new_visitor, shot, username):
    page = new_visitor()
    page.goto("/p/first")
    expect(page.locator("h1#question")).not_to_be_empty()

    page.get_by_role("link", name="Log in").click()
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".flash-success")).to_have_text(
        f"Welcome, {username}! Your account is ready."
    )
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flash-info")).to_have_text("You are logged out.")

    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("dd.username")).to_have_text(username)
    expect(page.get_by_role("link", name=f"Account ({username})")).to_be_visible()

    page.get_by_role("link", name="Polls", exact=True).click()
    expect(page.locator("h1#polls-title")).to_have_text("Open polls")
    page.goto("/p/first")
    first, second = options(page).nth(0), options(page).nth(1)
    expect(page.locator(".flash")).to_have_count(0)
    expect(first).to_have_attribute("aria-pressed", "false")
    first.click()
    expect_vote_shown(page, first, second)
    shot(page, "voted")

    second.click()
    expect_vote_shown(page, second, first)
    shot(page, "changed")
    new_choice = label(second)

    assert account_vote_once_counted(page) == new_choice
    shot(page, "account")


def tab_to(page: Page, target: Locator) -> int:
    """Press Tab from the top of the page until `target` has focus; return how many presses."""
    for presses in range(1, MAX_TABS + 1):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return presses
    raise AssertionError(f"{MAX_TABS} Tab presses never reached {target}")


def test_options_are_reached_with_tab_and_voted_with_enter_or_space(new_visitor, shot):
    page = new_visitor()
    page.goto("/p/first")
    first, second = options(page).nth(0), options(page).nth(1)

    presses = tab_to(page, first)
    print(f"first option reached after {presses} Tab presses")
    expect(page.locator("button.option:focus")).to_have_count(1)
    shot(page, "focused")
    page.keyboard.press("Enter")
    expect_vote_shown(page, first, second)

    tab_to(page, second)
    page.keyboard.press("Space")
    expect_vote_shown(page, second, first)
    shot(page, "voted")
