"""What a poll is, the rules a new poll must follow, and poll ids (pure: no I/O)."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

# The poll that POLL_QUESTION/POLL_OPTIONS configured before polls were data (migration 0002
# made it a poll): /vote, /api/votes, /result and /api/results are its URLs.
FIRST_POLL_ID = "first"
# What a poll id may look like anywhere (URLs, stream entries, Redis keys): new ids are 12
# characters of base64url (72 random bits), the first poll's is a word.
POLL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
NEW_ID_BYTES = 9
# An option's stable key: what votes, tallies and the API name it by.
OPTION_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

OPEN, CLOSED = "open", "closed"
STATES = (OPEN, CLOSED)

MIN_OPTIONS, MAX_OPTIONS = 2, 20
QUESTION_LENGTH = (3, 200)
LABEL_LENGTH = (1, 80)
# A closing time must leave voters a moment, and a poll cannot be scheduled forever.
MIN_OPEN = timedelta(minutes=1)
MAX_OPEN = timedelta(days=366)

# Characters no question or label may hold: they break lines, hide or reorder text.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True)
class PollOption:
    """One answer of a poll: a stable key (stored with votes and tallies) and its label."""

    key: str
    label: str


@dataclass(frozen=True)
class Poll:
    """A poll as Postgres (the source of truth) holds it and Redis publishes it.

    `state` is what the owner set; a poll whose `closes_at` has passed is closed too, so
    every reader asks `is_open(now)` rather than looking at `state` alone.
    """

    id: str
    question: str
    options: tuple[PollOption, ...]
    state: str
    created_at: datetime
    owner_id: int | None = None
    closed_at: datetime | None = None
    closes_at: datetime | None = None
    # Bumped by every change, so an older publication can never overwrite a newer one.
    revision: int = 1
    # On the home page while open; an unlisted poll is found only through its link.
    listed: bool = True

    def is_open(self, now: datetime) -> bool:
        """Voting is allowed: not closed by its owner, and its closing time (if any) is ahead."""
        return self.state == OPEN and (self.closes_at is None or now < self.closes_at)

    def status(self, now: datetime) -> str:
        """'open' or 'closed', as voters see it at `now`."""
        return OPEN if self.is_open(now) else CLOSED

    def ended_at(self, now: datetime) -> datetime | None:
        """When voting ended: the owner's close, else a closing time that has passed."""
        if self.state == CLOSED:
            return self.closed_at
        if self.closes_at is not None and self.closes_at <= now:
            return self.closes_at
        return None

    def option(self, key: str) -> PollOption | None:
        return next((o for o in self.options if o.key == key), None)

    @property
    def option_keys(self) -> frozenset[str]:
        return frozenset(o.key for o in self.options)


@dataclass(frozen=True)
class Draft:
    """A valid new poll, before it has an id and an owner."""

    question: str
    options: tuple[PollOption, ...]
    closes_at: datetime | None = None
    listed: bool = True


class InvalidPoll(ValueError):
    """A new poll breaks the rules; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


def new_poll_id() -> str:
    """A fresh id: short, URL-safe, and unguessable enough to share a poll privately."""
    return secrets.token_urlsafe(NEW_ID_BYTES)


def is_poll_id(value: object) -> bool:
    return isinstance(value, str) and POLL_ID.fullmatch(value) is not None


def text_problem(value: str, what: str, limits: tuple[int, int]) -> str | None:
    """Why `value` (already cleaned) is not an acceptable question or label, or None."""
    low, high = limits
    for char in value:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return f"{what} must not contain control characters such as line breaks."
    if len(value) < low:
        return f"{what} needs at least {low} character{'s' if low > 1 else ''}."
    if len(value) > high:
        return f"{what} has at most {high} characters."
    return None


def clean_text(value: str) -> str:
    """The text as stored: NFC, without surrounding spaces, inner runs of spaces as one.

    Only spaces are trimmed: a tab or line break anywhere is refused, never silently dropped.
    """
    return re.sub(r" {2,}", " ", unicodedata.normalize("NFC", value).strip(" "))


def slug(label: str) -> str:
    """The label's key-shaped form (accents dropped, a-z, 0-9 and -), possibly empty."""
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_label.lower()).strip("-")[:32].rstrip("-")


def keys_for_labels(labels: list[str]) -> list[str]:
    """A distinct stable key for each label, in order: its slug, else `option-N`."""
    keys: list[str] = []
    for position, label in enumerate(labels, 1):
        base = slug(label) or f"option-{position}"
        key, number = base, 2
        while key in keys:
            suffix = f"-{number}"
            key, number = base[: 32 - len(suffix)].rstrip("-") + suffix, number + 1
        keys.append(key)
    return keys


def _question(raw: object, errors: dict[str, list[str]]) -> str:
    if not isinstance(raw, str):
        errors["question"] = ["Write the question as text."]
        return ""
    question = clean_text(raw)
    problem = text_problem(question, "The question", QUESTION_LENGTH)
    if problem:
        errors["question"] = [problem]
    return question


def _labels(raw: object, errors: dict[str, list[str]]) -> list[str]:
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        errors["options"] = ["Give the options as a list of texts."]
        return []
    labels = [clean_text(v) for v in raw]
    labels = [v for v in labels if v]  # blank lines of the form are not options
    messages: list[str] = []
    if not MIN_OPTIONS <= len(labels) <= MAX_OPTIONS:
        messages.append(f"Give {MIN_OPTIONS} to {MAX_OPTIONS} options (you gave {len(labels)}).")
    seen: set[str] = set()
    for number, label in enumerate(labels, 1):
        problem = text_problem(label, f"Option {number}", LABEL_LENGTH)
        if problem:
            messages.append(problem)
        elif label.casefold() in seen:
            messages.append(f"Option {number} ({label!r}) appears twice.")
        seen.add(label.casefold())
    if messages:
        errors["options"] = messages
    return labels


def _closes_at(raw: object, now: datetime, errors: dict[str, list[str]]) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, datetime) or raw.tzinfo is None:
        errors["closes_at"] = ["Give the closing time with its time zone, e.g. 2030-01-31T18:00Z."]
        return None
    if raw < now + MIN_OPEN:
        errors["closes_at"] = ["The closing time must be at least a minute from now."]
    elif raw > now + MAX_OPEN:
        errors["closes_at"] = ["The closing time must be within a year."]
    return raw


def make_draft(
    question: object, labels: object, closes_at: object, *, now: datetime, listed: object = True
) -> Draft:
    """Check a new poll against every rule; the Draft, or InvalidPoll naming each problem.

    The form, the JSON API and the tests all come through here: the rules live only here.
    """
    errors: dict[str, list[str]] = {}
    clean_question = _question(question, errors)
    clean_labels = _labels(labels, errors)
    when = _closes_at(closes_at, now, errors)
    if not isinstance(listed, bool):
        errors["listed"] = ["Say true or false: list the poll on the home page or not."]
    if errors:
        raise InvalidPoll(errors)
    options = tuple(
        PollOption(key, label)
        for key, label in zip(keys_for_labels(clean_labels), clean_labels, strict=True)
    )
    return Draft(clean_question, options, when, bool(listed))
