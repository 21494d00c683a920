"""The register and login forms, with the username and password rules people are shown."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto, _is_submitted
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

USERNAME_HELP = "3 to 32 characters: letters, digits, dot, underscore or hyphen."
PASSWORD_HELP = "At least 10 characters, not only digits, and not your username."


def _clean_username(value: str | None) -> str | None:
    # Usernames are case-insensitive: "Bob" and "bob" are the same account.
    return value.strip().lower() if isinstance(value, str) else value


class PageForm(FlaskForm):
    """A form of an HTML page: its data is the posted form, never a JSON body (Flask-WTF would
    take one, and a JSON array or a nested object there makes WTForms fail with a 500)."""

    class Meta:
        def wrap_formdata(self, form, formdata):
            if formdata is not _Auto:
                return formdata
            return request.form if _is_submitted() else None


class RegisterForm(PageForm):
    """Create an account."""

    username = StringField(
        "Username",
        description=USERNAME_HELP,
        filters=[_clean_username],
        validators=[
            DataRequired("Choose a username."),
            Length(3, 32, "A username has 3 to 32 characters."),
            Regexp(
                r"^[a-z0-9_.-]+$",
                message="Use only letters, digits, dot, underscore or hyphen in a username.",
            ),
        ],
    )
    password = PasswordField(
        "Password",
        description=PASSWORD_HELP,
        validators=[
            DataRequired("Choose a password."),
            Length(10, 200, "A password has at least 10 characters (and at most 200)."),
        ],
    )

    def validate_password(self, field: PasswordField) -> None:
        if field.data.isdigit():
            raise ValidationError("A password must not be only digits.")
        if field.data.strip().lower() == (self.username.data or "").lower():
            raise ValidationError("A password must not be the same as the username.")


class LoginForm(PageForm):
    """Log in to an existing account."""

    username = StringField(
        "Username",
        filters=[_clean_username],
        validators=[DataRequired("Enter your username."), Length(max=200)],
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=200)]
    )
