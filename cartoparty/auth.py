"""Who is asking: walkers by the bearer token they got when joining, organisers by their
signed-in session (or HTTP Basic for scripts).

Failed sign-ins slow down one email from one address only: a stranger guessing an organiser's
password from elsewhere never locks the organiser out, nor a party behind one router out of
their own accounts."""

import functools
import hashlib
import hmac
import math
import re
import secrets
from datetime import timedelta
from types import SimpleNamespace

from flask import current_app, request, session
from sqlalchemy import text
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import CartopartyError, NotFound, Unauthorised
from .extensions import db
from .models import Event, Organiser, OrganiserSession, Participant, Submission, hash_token

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class TooManyAttempts(CartopartyError):
    """A 429 whose Retry-After header says in how many seconds to try again."""

    status = 429

    def __init__(self, code, seconds, field=None, **params):
        super().__init__(code, field=field, seconds=seconds, **params)
        self.headers = {"Retry-After": str(seconds)}


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


def keyed_hash(*parts):
    """An HMAC of `parts` under the app's secret key (hex): it names an address or an email
    without keeping it, and cannot be reversed by trying every IPv4 address."""
    message = "\n".join(parts).encode("utf-8", "replace")
    return hmac.new(current_app.secret_key.encode(), message, hashlib.sha256).hexdigest()


def client_address():
    """The client's address (set by ProxyFix behind the proxy)."""
    return request.remote_addr or "unknown"


# The first failures of a pair cost nothing (a typo, a forgotten capital); then each one makes
# the pair wait twice as long as the last, up to MAX_WAIT. A day without failure forgets them.
FREE_FAILURES = 3
MAX_WAIT = 600  # seconds
FORGET_AFTER = timedelta(days=1)
# No ceiling per email across addresses: it would hand anyone the power to lock an organiser out
# (the very thing this replaces). What slows a guesser with many addresses is each address's
# own delay (some 150 guesses a day at most) against a slow password hash.
SIGN_IN_WAIT = text("""
    SELECT ceil(extract(epoch FROM last_failed_at - now())
                + least(:max_wait, CASE WHEN failures < :free THEN 0
                                        ELSE 2 ^ least(failures - :free, 10) END))::int
    FROM sign_in_failure WHERE key = :key AND last_failed_at > now() - :forget
""")
COUNT_FAILURE = text("""
    INSERT INTO sign_in_failure AS f (key, failures, last_failed_at) VALUES (:key, 1, now())
    ON CONFLICT (key) DO UPDATE
    SET failures = CASE WHEN f.last_failed_at > now() - :forget THEN f.failures + 1 ELSE 1 END,
        last_failed_at = now()
""")


def _failure_key(email):
    return keyed_hash("sign-in", email.strip().lower(), client_address())


def sign_in_wait(email):
    """Seconds this email must wait before signing in again from this address (0: none)."""
    wait = db.session.scalar(SIGN_IN_WAIT, {"key": _failure_key(email), "max_wait": MAX_WAIT,
                                            "free": FREE_FAILURES, "forget": FORGET_AFTER})
    return max(wait or 0, 0)


def sign_in_refusal(seconds):
    """The error that says when to try again, in seconds or, past a minute and a half, minutes."""
    minutes = seconds > 90
    return TooManyAttempts("sign_in_wait_minutes" if minutes else "sign_in_wait_seconds",
                           seconds, n=math.ceil(seconds / 60) if minutes else seconds)


def remember_failure(email):
    """Count a failed sign-in of this email from this address (and forget stale ones)."""
    db.session.execute(text("DELETE FROM sign_in_failure WHERE last_failed_at < now() - :forget"),
                       {"forget": FORGET_AFTER})
    db.session.execute(COUNT_FAILURE, {"key": _failure_key(email), "forget": FORGET_AFTER})
    db.session.commit()


def forget_failures(email):
    """A right password clears the pair's failures (not committed)."""
    db.session.execute(text("DELETE FROM sign_in_failure WHERE key = :key"),
                       {"key": _failure_key(email)})


def check_password(email, password):
    """The organiser with this email and password, or None (the failure counted); a
    TooManyAttempts while this email must wait from this address."""
    wait = sign_in_wait(email)
    if wait:
        raise sign_in_refusal(wait)
    organiser = find_organiser(email, password)
    if organiser is None:
        remember_failure(email)
    else:
        forget_failures(email)
    return organiser


# A session's last_seen_at is written at most this often: not a write per request.
SEEN_EVERY = timedelta(minutes=10)


def start_session(organiser_id):
    """A new server-side session of the organiser: the key for its cookie (the row is added to
    the database session, not committed)."""
    key = secrets.token_urlsafe(32)
    db.session.add(OrganiserSession(key_hash=hash_token(key), organiser_id=organiser_id))
    return key


def end_session(key):
    """Delete the server-side session with this key: its cookie, and every copy, stop working."""
    if isinstance(key, str):
        db.session.execute(db.delete(OrganiserSession).where(OrganiserSession.key_hash == hash_token(key)))


def end_stale_sessions():
    """Forget the sessions unused for longer than a session lives."""
    db.session.execute(db.delete(OrganiserSession).where(
        OrganiserSession.last_seen_at < db.func.now() - current_app.permanent_session_lifetime))


def session_organiser():
    """The organiser of the cookie session, if its server-side session is still open; one
    lookup by primary key."""
    key, organiser_id = session.get("organiser_session"), session.get("organiser_id")
    if not isinstance(key, str) or type(organiser_id) is not int:
        return None
    lifetime = current_app.permanent_session_lifetime
    row = db.session.execute(
        db.select(Organiser, OrganiserSession.last_seen_at < db.func.now() - SEEN_EVERY)
        .join(OrganiserSession, OrganiserSession.organiser_id == Organiser.id)
        .where(OrganiserSession.key_hash == hash_token(key), Organiser.id == organiser_id,
               OrganiserSession.last_seen_at > db.func.now() - lifetime)).one_or_none()
    if row is None:
        return None
    organiser, stale = row
    if stale:
        db.session.execute(db.update(OrganiserSession).where(
            OrganiserSession.key_hash == hash_token(key)).values(last_seen_at=db.func.now()))
        db.session.commit()
    return organiser


def current_organiser():
    """The signed-in organiser, or None; worked out once per request. Scripts' HTTP Basic
    sign-ins wait after failures like the sign-in form."""
    cache = request.environ  # per request: `g` outlives it when an app context was pushed before
    if "cartoparty.organiser" not in cache:
        cache["cartoparty.organiser"] = _current_organiser()
    return cache["cartoparty.organiser"]


def _current_organiser():
    if "organiser_id" in session:
        return session_organiser()
    credentials = request.authorization
    if not (credentials and credentials.type == "basic"):
        return None
    return check_password(credentials.username or "", credentials.password or "")


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
