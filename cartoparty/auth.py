"""Who is asking: walkers by the bearer token they got when joining, organisers by their
signed-in session (or HTTP Basic for scripts)."""

import functools
import re
import secrets
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from flask import request, session
from sqlalchemy import text
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import CartopartyError, NotFound, Unauthorised
from .extensions import db
from .models import Event, Organiser, Participant, SignInAttempt, Submission, hash_token

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class TooManyAttempts(CartopartyError):
    status = 429


def hash_password(password):
    """The stored form of an organiser's password."""
    return generate_password_hash(password)


def find_organiser(email, password):
    """The organiser with this email and password, or None."""
    if "\x00" in email or len(email) > 254:
        return None
    organiser = db.session.scalar(db.select(Organiser).filter_by(email=email.strip().lower()))
    # An unknown email costs the same hash check as a known one: the time of the answer must
    # not tell which emails have an account.
    stored = organiser.password_hash if organiser else _dummy_hash()
    if check_password_hash(stored, password) and organiser:
        return organiser
    return None


@functools.cache
def _dummy_hash():
    return generate_password_hash(secrets.token_hex(16))


MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)


def _address():
    return (request.remote_addr or "unknown")[:64]


def too_many_failures(email):
    """Whether this email or this address failed to sign in too often lately."""
    since = datetime.now(UTC) - FAILURE_WINDOW
    email = email.replace("\x00", "")[:254]  # PostgreSQL text holds no NUL
    failures = db.session.scalar(
        db.select(db.func.count()).select_from(SignInAttempt)
        .where(SignInAttempt.at > since,
               (SignInAttempt.email == email) | (SignInAttempt.address == _address())))
    return failures >= MAX_FAILURES


def remember_failure(email):
    """Count a failed sign-in (and forget those older than a day)."""
    db.session.execute(db.delete(SignInAttempt).where(
        SignInAttempt.at < datetime.now(UTC) - timedelta(days=1)))
    db.session.add(SignInAttempt(email=email.replace("\x00", "")[:254], address=_address()))
    db.session.commit()


def current_organiser():
    """The signed-in organiser, or None. Scripts' HTTP Basic sign-ins count against the same
    limit as the sign-in form."""
    if session.get("organiser_id"):
        return db.session.get(Organiser, session["organiser_id"])
    credentials = request.authorization
    if not (credentials and credentials.type == "basic"):
        return None
    email = (credentials.username or "").strip().lower()
    if too_many_failures(email):
        raise TooManyAttempts("too_many_sign_ins", minutes=15)
    organiser = find_organiser(email, credentials.password or "")
    if organiser is None:
        remember_failure(email)
    return organiser


def bearer_token():
    """The token of an `Authorization: Bearer …` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def current_participant(event):
    """The walker of `event` whose token came with the request, or None."""
    token = bearer_token()
    if token is None or len(token) > 200:
        return None
    return db.session.scalar(db.select(Participant).filter_by(
        event_id=event.id, token_hash=hash_token(token)))


def load_event(slug):
    """The event with this slug, or a 404 naming it."""
    event = db.session.scalar(db.select(Event).filter_by(slug=slug)) if SLUG.fullmatch(slug) else None
    if event is None:
        raise NotFound("no_such_event", field="slug", slug=slug[:64])
    return event


# Ids are PostgreSQL bigints: a larger number names nothing (and must not reach the database).
MAX_ID = 2**63 - 1


def load_submission(event, submission_id, field="submission_id", lock=False):
    """The event's submission with this id, or a 404 naming `field`; with `lock`, its row is
    locked until the end of the transaction (two organisers changing it take turns)."""
    query = db.select(Submission).filter_by(event_id=event.id, id=submission_id)
    submission = db.session.scalar(query.with_for_update() if lock else query) \
        if type(submission_id) is int and 0 < submission_id <= MAX_ID else None
    if submission is None:
        raise NotFound("no_such_point", field=field)
    return submission


# Walkers' routes are the busiest: the event and the walker come in one query, as plain rows.
EVENT_AND_WALKER = text("""
    SELECT e.id, e.slug, e.presets, e.allow_outside_zone, p.id AS participant_id
    FROM event e LEFT JOIN participant p ON p.event_id = e.id AND p.token_hash = :token_hash
    WHERE e.slug = :slug
""")


def participant_required(view):
    """Load the event named by `slug` (id, slug, presets, allow_outside_zone) and the walker
    (id) whose token came with the request."""

    @functools.wraps(view)
    def wrapped(slug, **kwargs):
        token = bearer_token()
        row = db.session.execute(EVENT_AND_WALKER, {
            "slug": slug, "token_hash": hash_token(token) if token and len(token) <= 200 else ""
        }).one_or_none() if SLUG.fullmatch(slug) else None
        if row is None:
            raise NotFound("no_such_event", field="slug", slug=slug[:64])
        event, participant = row, SimpleNamespace(id=row.participant_id)
        if row.participant_id is None:
            raise Unauthorised("walker_token", field="Authorization")
        return view(event, participant, **kwargs)

    return wrapped


def member_required(view):
    """Load the event named by `slug` for one of its walkers or organisers."""

    @functools.wraps(view)
    def wrapped(slug, **kwargs):
        event = load_event(slug)
        if not event.is_organised_by(current_organiser()) and current_participant(event) is None:
            raise Unauthorised("members_only", field="Authorization")
        return view(event, **kwargs)

    return wrapped
