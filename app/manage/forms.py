"""The form to make a poll; its rules are core.polls' (make_draft), shown beside each field."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import request
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from core.polls import MAX_OPTIONS, MIN_OPTIONS, Draft, InvalidPoll, make_draft
from core.polls.poll import LABEL_LENGTH, QUESTION_LENGTH

QUESTION_HELP = f"{QUESTION_LENGTH[0]} to {QUESTION_LENGTH[1]} characters."
OPTIONS_HELP = (
    f"{MIN_OPTIONS} to {MAX_OPTIONS} options of at most {LABEL_LENGTH[1]} characters, each "
    "different; empty fields are left out."
)
# Option fields shown at first; "More options" shows all MAX_OPTIONS (no script needed).
FIRST_OPTION_FIELDS = 6
OPTION_FIELD = re.compile(r"options-(\d{1,3})")
# "Close automatically": a choice of durations needs no time zone from the browser.
CLOSES_IN = [
    SelectChoice("", "Never: I close it myself"),
    SelectChoice("3600", "In 1 hour"),
    SelectChoice("86400", "In 1 day"),
    SelectChoice("604800", "In 1 week"),
    SelectChoice("2592000", "In 30 days"),
]


class PollForm(FlaskForm):
    """Make a poll."""

    question = StringField(
        "Question",
        description=QUESTION_HELP,
        validators=[InputRequired("Write the question.")],
    )
    # One text field per option (a field never holds a line break: app/inputs.py).
    options = FieldList(
        StringField("Option"), min_entries=FIRST_OPTION_FIELDS, max_entries=MAX_OPTIONS
    )
    closes_in = SelectField("Close automatically", choices=CLOSES_IN, default="")
    listed = BooleanField(
        "List it on the home page",
        default=True,
        description="Unticked, only people you give its link can find it.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What is wrong with the options as a whole (their number, a repeated one...).
        self.options_errors: list[str] = []

    def show_all_options(self) -> None:
        """Offer every option field ("More options")."""
        while len(self.options) < MAX_OPTIONS:
            self.options.append_entry()

    def draft(self, now: datetime) -> Draft | None:
        """The valid new poll, or None with each field's errors set."""
        if not self.validate_on_submit():
            return None
        seconds = self.closes_in.data
        closes_at = now + timedelta(seconds=int(seconds)) if seconds else None
        try:
            return make_draft(
                self.question.data,
                _sent_options(),
                closes_at,
                now=now,
                listed=bool(self.listed.data),
            )
        except InvalidPoll as exc:
            for name, messages in exc.errors.items():
                if name == "options":
                    self.options_errors.extend(messages)
                else:
                    field = self.closes_in if name == "closes_at" else getattr(self, name)
                    field.errors.extend(messages)
            return None


def _sent_options() -> list[str]:
    """Every option field sent, in order: FieldList would silently drop those beyond
    MAX_OPTIONS, and make_draft must see (and refuse) them."""
    numbered = []
    for key, value in request.form.items():
        match = OPTION_FIELD.fullmatch(key)
        if match:
            numbered.append((int(match.group(1)), value))
    return [value for _, value in sorted(numbered)]
