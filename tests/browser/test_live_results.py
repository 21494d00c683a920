"""In Chromium: an open results page shows a vote cast elsewhere within seconds, without reload."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.stack, pytest.mark.browser]

LIVE_WITHIN_MS = 5_000


def test_results_page_counts_a_new_vote_without_reloading(new_visitor, shot):
    watcher, voter = new_visitor(), new_visitor()
    opened = watcher.goto("/result")
    assert opened is not None and opened.ok, f"/result answered {opened and opened.status}"
    reloads: list[str] = []
    watcher.on(
        "framenavigated", lambda frame: frame == watcher.main_frame and reloads.append(frame.url)
    )

    voter.goto("/p/first")
    option = voter.locator("button.option").first
    key = option.get_attribute("value")
    count = watcher.locator(f'li.bar[data-key="{key}"] .count')
    total = watcher.locator(".total-count")
    count_before, total_before = count.inner_text(), total.inner_text()

    option.click()
    expect(voter.locator(".flash-success")).to_contain_text("is in.")
    voted = time.monotonic()
    expect(count).not_to_have_text(count_before, timeout=LIVE_WITHIN_MS)
    print(f"results page showed the vote {time.monotonic() - voted:.2f} s after it was accepted")

    assert int(count.inner_text()) > int(count_before)
    assert int(total.inner_text()) > int(total_before)
    assert reloads == [], f"the results page navigated: {reloads}"
    shot(watcher, "updated")
