"""Organiser accounts: signing in and out, and the decorators that guard organiser pages.

There is no open sign-up: accounts are made with `cartoparty organiser add`. Failed sign-ins
are counted in the database (so every gunicorn worker sees them) to slow down guessing, per
email and address (auth.check_password). A session lives on the server too: signing out ends it
for every copy of its cookie."""

import functools
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for

from .auth import (
    TooManyAttempts,
    check_password,
    current_organiser,
    end_session,
    end_stale_sessions,
    load_event,
    start_session,
)
from .errors import Forbidden, Unauthorised
from .extensions import db
from .i18n import language, messages

bp = Blueprint("accounts", __name__)


def safe_next(target):
    """`target` if it is a path on this site, else the organiser's home (no open redirect)."""
    parts = urlsplit(target or "")
    if target and target.startswith("/") and not parts.netloc and not target.startswith("//") \
            and "\\" not in target:
        return target
    return url_for("organise.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    next_page = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("organise/sign_in.html", next_page=next_page, error=None)
    email = request.form.get("email", "").strip().lower()
    try:
        organiser = check_password(email, request.form.get("password", ""))
    except TooManyAttempts as refusal:
        return render_template("organise/sign_in.html", next_page=next_page, email=email,
                               error=refusal.text(language())), 429, refusal.headers
    if organiser is None:
        error = messages(language())["wrong_password"]
        return render_template("organise/sign_in.html", next_page=next_page, error=error,
                               email=email), 401
    end_session(session.get("organiser_session"))
    end_stale_sessions()
    session.clear()
    session.permanent = True
    session["organiser_id"] = organiser.id
    session["organiser_session"] = start_session(organiser.id)
    db.session.commit()
    return redirect(next_page)


@bp.post("/sign-out")
def sign_out():
    end_session(session.get("organiser_session"))
    db.session.commit()
    session.clear()
    return redirect(url_for("accounts.sign_in"))


def signed_in_organiser():
    """The organiser of the session only (no HTTP Basic on pages), or None."""
    return current_organiser() if session.get("organiser_id") else None


def organiser_required(view):
    """A page for signed-in organisers; signed-out visitors go to the sign-in page and back."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        organiser = signed_in_organiser()
        if organiser is None:
            return redirect(url_for("accounts.sign_in", next=request.full_path.rstrip("?")))
        return view(organiser, **kwargs)

    return wrapped


def event_organiser_required(view):
    """A page or API route of one event, for its organisers only (checked on the server)."""

    @functools.wraps(view)
    def wrapped(slug, **kwargs):
        organiser = current_organiser()
        if organiser is None:
            if request.path.startswith("/api/"):
                raise Unauthorised("organiser_sign_in")
            return redirect(url_for("accounts.sign_in", next=request.full_path.rstrip("?")))
        event = load_event(slug)
        if not event.is_organised_by(organiser):
            raise Forbidden("not_organiser")
        return view(event, organiser, **kwargs)

    return wrapped

