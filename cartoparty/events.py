"""Events as walkers see them through the API, and joining one.

Joins are counted per address (a whole party may share one router: tens a minute pass, a flood
does not), and a pseudonym that looks like one taken in the event is refused."""

import json
import math
import secrets
import unicodedata
from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError

from .api import json_body, refuse_unknown_fields
from .auth import TooManyAttempts, client_address, keyed_hash, load_event
from .errors import Conflict, Invalid
from .extensions import db
from .models import Event, Participant, Team, hash_token
from .presets import LIMITS, all_presets

INVISIBLE = {"Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Cs"}

bp = Blueprint("events", __name__, url_prefix="/api/events")


def event_json(event):
    """The event as the API shows it, its zone as GeoJSON."""
    zone = db.session.scalar(
        db.select(func.ST_AsGeoJSON(Event.zone, 7)).where(Event.id == event.id))
    presets = all_presets()
    return {
        "slug": event.slug,
        "name": event.name,
        "description": event.description,
        "starts_at": event.starts_at.isoformat() if event.starts_at else None,
        "ends_at": event.ends_at.isoformat() if event.ends_at else None,
        "licence": event.licence,
        "allow_outside_zone": event.allow_outside_zone,
        "zone": json.loads(zone),
        "presets": [presets[preset_id] for preset_id in event.presets if preset_id in presets],
        "limits": LIMITS,
    }


@bp.get("/<slug>")
def show(slug):
    return jsonify(event_json(load_event(slug)))


def clean_pseudonym(value):
    """The pseudonym as stored, or Invalid."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("pseudonym_missing", field="pseudonym")
    value = " ".join(value.split())
    if len(value) > 40:
        raise Invalid("pseudonym_too_long", field="pseudonym", max=40)
    if any(unicodedata.category(char) in INVISIBLE for char in value):
        raise Invalid("pseudonym_invisible", field="pseudonym")
    return value


# A party of a couple of hundred walkers behind one router (a library's wifi, a phone network's
# NAT) all join in the first minutes; a script creating thousands of walkers is stopped.
JOINS_PER_WINDOW = 300
JOIN_WINDOW = timedelta(minutes=10)
# One row per address: the window restarts once it is over. Set-based, so concurrent joins from
# several workers count exactly; a day-old row is forgotten by the next join.
COUNT_JOIN = text("""
    INSERT INTO join_rate AS r (address_hash, window_started_at, joins) VALUES (:address, now(), 1)
    ON CONFLICT (address_hash) DO UPDATE
    SET window_started_at = CASE WHEN r.window_started_at > now() - :window
                                 THEN r.window_started_at ELSE now() END,
        joins = CASE WHEN r.window_started_at > now() - :window THEN r.joins + 1 ELSE 1 END
    RETURNING joins, ceil(extract(epoch FROM window_started_at + :window - now()))::int AS wait
""")
FORGET_JOINS = text("DELETE FROM join_rate WHERE window_started_at < now() - interval '1 day'")


def count_join():
    """Count a join from the client's address (committed, whatever becomes of the join); a 429
    once the address joined JOINS_PER_WINDOW times in the current window."""
    db.session.execute(FORGET_JOINS)
    joins, wait = db.session.execute(COUNT_JOIN, {"address": keyed_hash("join", client_address()),
                                                  "window": JOIN_WINDOW}).one()
    db.session.commit()
    if joins > JOINS_PER_WINDOW:
        wait = max(wait, 1)
        raise TooManyAttempts("join_rate_limited", wait, n=math.ceil(wait / 60))


@bp.post("/<slug>/participants")
def join(slug):
    event = load_event(slug)
    count_join()
    body = json_body()
    refuse_unknown_fields(body, {"pseudonym", "consent", "team"})
    pseudonym = clean_pseudonym(body.get("pseudonym"))
    if body.get("consent") is not True:
        raise Invalid("consent_missing", field="consent", licence=event.licence)
    team = find_team(event, body["team"]) if body.get("team") is not None else None
    if body.get("team") is not None and team is None:
        raise Invalid("team_link", field="team")
    token = secrets.token_urlsafe(32)
    # The pseudonym's skeleton comes with the row (models.Participant): the unique index on
    # (event, skeleton) refuses "Camille" again, "CAMILLE", and "Cаmіllе" in Cyrillic letters.
    participant = Participant(event_id=event.id, pseudonym=pseudonym, team_id=team and team.id,
                              token_hash=hash_token(token), consented_at=datetime.now(UTC))
    db.session.add(participant)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("pseudonym_taken", field="pseudonym", pseudonym=pseudonym) from None
    return jsonify({"token": token, "pseudonym": pseudonym,
                    "team": team_json(team) if team else None}), 201


def find_team(event, join_code):
    """The event's team with this join code, or None."""
    if not isinstance(join_code, str) or len(join_code) > 16:
        return None
    return db.session.scalar(db.select(Team).filter_by(event_id=event.id, join_code=join_code))


def team_json(team):
    """A team as walkers see it: its name, its theme and its sector as GeoJSON."""
    sector = db.session.scalar(db.select(func.ST_AsGeoJSON(Team.sector, 7)).where(Team.id == team.id))
    return {"name": team.name, "presets": team.presets, "code": team.join_code,
            "sector": json.loads(sector) if sector else None}
