"""The rules of a new poll (core.polls.make_draft), its option keys and ids, and its state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.polls import (
    CLOSED,
    OPEN,
    OPTION_KEY,
    InvalidPoll,
    Poll,
    PollOption,
    is_poll_id,
    make_draft,
    new_poll_id,
)
from core.polls.poll import keys_for_labels

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def errors(question: object, labels: object, closes_at: object = None) -> dict[str, list[str]]:
    with pytest.raises(InvalidPoll) as failure:
        make_draft(question, labels, closes_at, now=NOW)
    return failure.value.errors


def test_a_valid_poll_is_cleaned_and_keyed():
    draft = make_draft(
        "  Tea  or coffee? ", ["Tea", " Coffee ", "", "Café  au lait"], None, now=NOW
    )

    assert draft.question == "Tea or coffee?"
    assert draft.options == (
        PollOption("tea", "Tea"),
        PollOption("coffee", "Coffee"),
        PollOption("cafe-au-lait", "Café au lait"),
    )


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "at least 3"),
        ("ab", "at least 3"),
        ("x" * 201, "at most 200"),
        ("Tea\nor coffee?", "control characters"),
        ("Tea\x00?", "control characters"),
        ("Tea\tor coffee?", "control characters"),
        ("Tea\u202eor coffee?", "control characters"),
        (None, "as text"),
        (["Tea?"], "as text"),
        (5, "as text"),
    ],
)
def test_a_bad_question_is_named(question, message):
    assert message in errors(question, ["Tea", "Coffee"])["question"][0]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["Tea"], "Give 2 to 20 options (you gave 1)"),
        ([f"Option {n}" for n in range(21)], "(you gave 21)"),
        (["Tea", "tea "], "appears twice"),
        (["Tea", "x" * 81], "at most 80"),
        (["Tea", "Cof\nfee"], "control characters"),
        (["Tea", "\x07"], "control characters"),
        ("Tea,Coffee", "as a list of texts"),
        (["Tea", 5], "as a list of texts"),
        (None, "as a list of texts"),
    ],
)
def test_bad_options_are_named(labels, message):
    assert any(message in m for m in errors("Tea or coffee?", labels)["options"])


def test_every_problem_is_reported_at_once():
    found = errors("?", ["Tea"], NOW)
    assert set(found) == {"question", "options", "closes_at"}


@pytest.mark.parametrize(
    ("closes_at", "message"),
    [
        (NOW, "at least a minute"),
        (NOW + timedelta(days=400), "within a year"),
        (datetime(2030, 2, 1), "time zone"),
        ("2030-02-01T00:00Z", "time zone"),
    ],
)
def test_a_bad_closing_time_is_named(closes_at, message):
    assert message in errors("Tea or coffee?", ["Tea", "Coffee"], closes_at)["closes_at"][0]


def test_keys_are_slugs_made_distinct_else_numbered():
    keys = keys_for_labels(["Yes!", "yes?", "猫", "犬", "A" * 40, "a" * 40])

    assert keys == ["yes", "yes-2", "option-3", "option-4", "a" * 32, "a" * 30 + "-2"]
    assert all(OPTION_KEY.fullmatch(k) for k in keys)


def test_new_ids_are_short_url_safe_and_distinct():
    ids = {new_poll_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(i) == 12 and is_poll_id(i) for i in ids)
    assert not is_poll_id("a/b") and not is_poll_id("") and not is_poll_id(None)


def test_a_poll_closes_by_its_owner_or_by_its_closing_time():
    poll = Poll("p", "Q?", (), OPEN, NOW, closes_at=NOW + timedelta(hours=1))

    assert poll.status(NOW) == OPEN and poll.ended_at(NOW) is None
    later = NOW + timedelta(hours=1)
    assert poll.status(later) == CLOSED and poll.ended_at(later) == later
    closed = Poll("p", "Q?", (), CLOSED, NOW, closed_at=NOW)
    assert closed.status(NOW) == CLOSED and closed.ended_at(later) == NOW
