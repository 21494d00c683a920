"""The form to make a poll; its rules are core.polls' (make_draft), shown beside each field."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from core.polls import MAX_OPTIONS, MIN_OPTIONS, Draft, InvalidPoll, make_draft
from core.polls.poll import LABEL_LENGTH, QUESTION_LENGTH

QUESTION_HELP = f"{QUESTION_LENGTH[0]} to {QUESTION_LENGTH[1]} characters."
OPTIONS_HELP = (
    f"One option per line: {MIN_OPTIONS} to {MAX_OPTIONS} options of at most "
    f"{LABEL_LENGTH[1]} characters, each different."
)
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
    options = TextAreaField(
        "Options",
        description=OPTIONS_HELP,
        validators=[InputRequired("Write the options, one per line.")],
    )
    closes_in = SelectField("Close automatically", choices=CLOSES_IN, default="")
    listed = BooleanField(
        "List it on the home page",
        default=True,
        description="Unticked, only people you give its link can find it.",
    )

    def draft(self, now: datetime) -> Draft | None:
        """The valid new poll, or None with each field's errors set."""
        if not self.validate_on_submit():
            return None
        seconds = self.closes_in.data
        closes_at = now + timedelta(seconds=int(seconds)) if seconds else None
        try:
            return make_draft(
                self.question.data,
                self.options.data.splitlines(),
                closes_at,
                now=now,
                listed=bool(self.listed.data),
            )
        except InvalidPoll as exc:
            for name, messages in exc.errors.items():
                getattr(self, "closes_in" if name == "closes_at" else name).errors.extend(messages)
            return None
