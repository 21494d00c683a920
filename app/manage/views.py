"""The owner's pages: /polls/new, /polls/mine, and close, reopen, delete (with confirmation)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, request

from app.auth import current_user
from app.manage import actions, bp
from app.manage.forms import OPTIONS_HELP, PollForm
from app.polls import page_url
from app.resources import get_resources
from core.polls import CLOSED, MAX_OPTIONS, OPEN, store

MINE = "/polls/mine"
MAX_LISTED = 200


def _login_redirect(next_url: str):
    flash("Please log in to manage your polls.", "info")
    return redirect(f"/login?next={next_url}", 303)


@bp.route("/polls/new", methods=["GET", "POST"])
def new():
    """Make a poll; on success, its page (with its link to share)."""
    user = current_user()
    if user is None:
        return _login_redirect("/polls/new")
    form = PollForm()
    if request.method == "POST" and request.form.get("more"):
        form.show_all_options()  # "More options": the same form, with every option field
        return _new_page(form, 200)
    draft = form.draft(datetime.now(UTC))
    if draft is not None:
        poll, published = actions.create(draft, user)
        if published:
            flash("Your poll is open. Share its link below.", "success")
        else:
            flash("Your poll is saved; it takes votes within a minute.", "info")
        return redirect(page_url(poll.id), 303)
    return _new_page(form, 400 if form.is_submitted() else 200)


def _new_page(form: PollForm, status: int):
    page = render_template(
        "polls/new.html", form=form, options_help=OPTIONS_HELP, max_options=MAX_OPTIONS
    )
    return page, status


@bp.get("/polls/mine")
def mine():
    """The account's polls, newest first, with their state and votes counted so far."""
    user = current_user()
    if user is None:
        return _login_redirect(MINE)
    database = get_resources().rw
    polls = store.owned_by(database, user.id, limit=MAX_LISTED)
    return render_template(
        "polls/mine.html",
        polls=polls,
        totals=store.vote_totals(database, [p.id for p in polls]),
        now=datetime.now(UTC),
    )


def _change(poll_id: str, state: str, done: str):
    user = current_user()
    if user is None:
        return _login_redirect(MINE)
    poll = actions.set_state(poll_id, user, state)
    flash(done.format(question=poll.question), "success")
    return redirect(MINE, 303)


@bp.post("/polls/<poll_id>/close")
def close(poll_id: str):
    """Close the poll: voting stops at once; results stay."""
    return _change(poll_id, CLOSED, "Closed “{question}”: it no longer takes votes.")


@bp.post("/polls/<poll_id>/reopen")
def reopen(poll_id: str):
    """Reopen the poll (without a closing time)."""
    return _change(poll_id, OPEN, "Reopened “{question}”.")


@bp.get("/polls/<poll_id>/delete")
def confirm_delete(poll_id: str):
    """Ask before deleting: the poll's votes go with it."""
    user = current_user()
    if user is None:
        return _login_redirect(MINE)
    return render_template("polls/delete.html", poll=actions.owned(poll_id, user))


@bp.post("/polls/<poll_id>/delete")
def delete(poll_id: str):
    """Delete the poll and its votes."""
    user = current_user()
    if user is None:
        return _login_redirect(MINE)
    actions.delete(poll_id, user)
    flash("The poll and its votes are deleted.", "success")
    return redirect(MINE, 303)
