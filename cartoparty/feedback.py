"""Participants' feedback: a short form walkers get at the end of the event (what they learnt,
what to improve, would they come again), anonymous unless they sign it, summarised for the
organisers.

Each walker answers once: participant.feedback_at records that they did, while the answer is
stored apart, with no participant id, a random id and a time to the hour only."""

from datetime import UTC, datetime

from flask import Blueprint, jsonify, url_for
from sqlalchemy import insert, text

from .api import json_body, refuse_unknown_fields
from .auth import participant_required
from .errors import Conflict, Forbidden, Invalid
from .extensions import db
from .models import Event, Feedback, Participant

bp = Blueprint("feedback", __name__, url_prefix="/api/events")

MAX_TEXT = 2000
COME_AGAIN = ("yes", "maybe", "no")
# Line breaks and tabs are welcome in an answer; other control characters are not (and
# PostgreSQL cannot store NUL at all).
ALLOWED_CONTROLS = {"\n", "\t"}


def _answer_text(body, name):
    """A free-text answer, trimmed, or Invalid naming the field."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("not_text", field=name, name=name)
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(value) > MAX_TEXT:
        raise Invalid("text_too_long", field=name, name=name, max=MAX_TEXT)
    if any((ord(char) < 32 or ord(char) == 127) and char not in ALLOWED_CONTROLS for char in value):
        raise Invalid("text_control_characters", field=name, name=name)
    return value


def read_feedback(body):
    """The answer's values from a request body, checked field by field."""
    refuse_unknown_fields(body, {"learnt", "improve", "come_again", "sign"})
    values = {"learnt": _answer_text(body, "learnt"), "improve": _answer_text(body, "improve"),
              "come_again": body.get("come_again")}
    if values["come_again"] not in COME_AGAIN:
        raise Invalid("come_again", field="come_again")
    sign = body.get("sign", False)
    if not isinstance(sign, bool):
        raise Invalid("boolean", field="sign", name="sign")
    return values, sign


def _event(row):
    return db.session.get(Event, row.id)


def _status(event, participant_id):
    answered = db.session.scalar(db.select(Participant.feedback_at.is_not(None))
                                 .where(Participant.id == participant_id))
    return {"open": event.feedback_is_open(datetime.now(UTC)), "answered": bool(answered),
            "restitution_url": url_for("restitution.page", slug=event.slug)
            if event.restitution_is_public() else None}


@bp.get("/<slug>/feedback")
@participant_required
def status(row, participant):
    """Whether the walker is asked for feedback now, and whether they already answered."""
    return jsonify(_status(_event(row), participant.id))


# Marks the walker as having answered, unless they already had: one statement, so that two
# answers sent at once cannot both pass.
MARK_ANSWERED = text("""
    UPDATE participant SET feedback_at = date_trunc('hour', now())
    WHERE id = :id AND feedback_at IS NULL
    RETURNING pseudonym
""")


@bp.post("/<slug>/feedback")
@participant_required
def answer(row, participant):
    """Store the walker's answer, once."""
    event = _event(row)
    if not event.feedback_is_open(datetime.now(UTC)):
        raise Forbidden("feedback_not_open", field="slug")
    values, sign = read_feedback(json_body())
    pseudonym = db.session.scalar(MARK_ANSWERED, {"id": participant.id})
    if pseudonym is None:
        raise Conflict("feedback_given", field="Authorization")
    signature = pseudonym if sign else None
    created_at = db.session.scalar(insert(Feedback).values(
        event_id=event.id, signature=signature, **values).returning(Feedback.created_at))
    db.session.commit()
    return jsonify({**values, "signature": signature, "created_at": created_at.isoformat()}), 201


SUMMARY = text("""
    SELECT count(*) AS total,
           count(*) FILTER (WHERE come_again = 'yes') AS yes,
           count(*) FILTER (WHERE come_again = 'maybe') AS maybe,
           count(*) FILTER (WHERE come_again = 'no') AS no
    FROM feedback WHERE event_id = :event_id
""")
MAX_LISTED = 1000


def summary(event):
    """The answers for the organisers: how many would come again, and the texts, newest first."""
    counts = db.session.execute(SUMMARY, {"event_id": event.id}).mappings().one()
    answers = db.session.scalars(
        db.select(Feedback).where(Feedback.event_id == event.id)
        .order_by(Feedback.created_at.desc(), Feedback.id).limit(MAX_LISTED)).all()
    return {"total": counts["total"],
            "come_again": {choice: counts[choice] for choice in COME_AGAIN},
            "answers": answers}
