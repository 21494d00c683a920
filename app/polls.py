"""How the web apps present a poll: its JSON document, its links and its times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask

from core.polls import Poll


def page_url(poll_id: str) -> str:
    """The poll's page (vote app)."""
    return f"/p/{poll_id}"


def results_url(poll_id: str) -> str:
    """The poll's live results (result app)."""
    return f"/p/{poll_id}/result"


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds")


def poll_document(poll: Poll, now: datetime) -> dict[str, Any]:
    """A poll as the JSON API shows it (README, "The JSON API")."""
    return {
        "id": poll.id,
        "question": poll.question,
        "options": [{"key": o.key, "label": o.label} for o in poll.options],
        "state": poll.status(now),
        "created_at": iso(poll.created_at),
        "closes_at": iso(poll.closes_at),
        "closed_at": iso(poll.ended_at(now)),
        "listed": poll.listed,
        "url": page_url(poll.id),
        "results_url": results_url(poll.id),
    }


def _when(value: datetime | None) -> str:
    """A time for people, e.g. '28 Nov 2026, 14:03 UTC'."""
    return "" if value is None else value.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def init_app(app: Flask) -> None:
    """Make the links and the time format available to every template."""
    app.add_template_filter(_when, "when")
    app.add_template_global(page_url, "poll_url")
    app.add_template_global(results_url, "poll_results_url")
