"""Login views: /register, /login, /logout (POST) and /account."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request
from flask_limiter.util import get_remote_address

from app.auth import current_user, log_in, log_out
from app.choices import current_choice
from app.login.accounts import UsernameTaken, authenticate, create_account, username_taken
from app.login.forms import LoginForm, RegisterForm
from app.ratelimit import (
    LOGIN_LIMITED,
    REGISTER_LIMITED,
    account_key,
    failed,
    limiter,
    login_limit,
    register_limit,
)
from app.resources import get_resources
from core.polls import FIRST_POLL_ID, store

bp = Blueprint("login", __name__)

WRONG_CREDENTIALS = "Wrong username or password."
TAKEN = "That username is taken, please choose another one."


def _safe_next(target: str | None, default: str) -> str:
    """Only follow a `next` that stays on this site: judged on what a URL parser (and so a
    browser) reads, not on the raw string: a path, no scheme, no host, nothing a browser
    would read as a host (backslashes, control characters)."""
    if not target or any(ch in target for ch in "\\\r\n\t") or not target.isprintable():
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return default
    if parts.path.startswith("//"):
        return default
    return target


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(
    register_limit,
    key_func=get_remote_address,
    methods=["POST"],
    scope="register-ip",
    error_message=REGISTER_LIMITED,
)
def register():
    """Create an account and log it in."""
    if current_user() is not None:
        return redirect("/account", 303)
    form = RegisterForm()
    status = 200
    if form.validate_on_submit():
        database = get_resources().rw
        try:
            if username_taken(database, form.username.data):
                raise UsernameTaken(form.username.data)
            user = create_account(database, form.username.data, form.password.data)
        except UsernameTaken:
            form.username.errors.append(TAKEN)
            status = 409
        else:
            log_in(user)
            flash(f"Welcome, {user.username}! Your account is ready.", "success")
            return redirect("/account", 303)
    elif form.is_submitted():
        status = 400
    return render_template("login/register.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    login_limit,
    key_func=get_remote_address,
    methods=["POST"],
    scope="login-ip",
    error_message=LOGIN_LIMITED,
    deduct_when=failed,
)
@limiter.limit(
    login_limit,
    key_func=account_key,
    methods=["POST"],
    scope="login-account",
    error_message=LOGIN_LIMITED,
    deduct_when=failed,
)
def login():
    """Log in; failed POSTs are limited per client address and per (account, address)."""
    next_url = _safe_next(request.args.get("next"), "/account")
    form = LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        user = authenticate(get_resources().rw, form.username.data, form.password.data)
        if user is not None:
            log_in(user)
            flash(f"Welcome back, {user.username}!", "success")
            return redirect(next_url, 303)
        error, status = WRONG_CREDENTIALS, 401
    elif form.is_submitted():
        status = 400
    return render_template("login/login.html", form=form, error=error, next_url=next_url), status


@bp.post("/logout")
def logout():
    """Log out (POST with a CSRF token, so another site cannot log people out)."""
    log_out()
    flash("You are logged out.", "info")
    return redirect("/", 303)


@bp.get("/account")
def account():
    """The account's name and its current vote in the first poll (Postgres, or this session's
    newer vote)."""
    user = current_user()
    if user is None:
        return redirect("/login?next=/account", 303)
    first = store.get(get_resources().rw, FIRST_POLL_ID)
    choice = current_choice(user.voter, FIRST_POLL_ID, look_up=True) if first else None
    option = first.option(choice.option) if first and choice else None
    return render_template(
        "login/account.html",
        user=user,
        choice=choice,
        choice_label=option.label if option else None,
        first_poll=first,
    )
