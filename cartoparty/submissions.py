"""Submissions: points walkers send, stored exactly once however often a phone replays them."""

import hashlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import bindparam, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from . import walkerview
from .api import json_body, refuse_unknown_fields
from .auth import current_organiser, current_participant, load_event, participant_required
from .errors import Conflict, Forbidden, Invalid, NotFound, Unauthorised
from .extensions import db
from .models import Event, Status, Submission
from .osm.conflate import OSM_MATCH
from .photos import forget_unused_files
from .presets import LIMITS, all_presets, check_tags

bp = Blueprint("submissions", __name__, url_prefix="/api/events")

FIELDS = {"client_id", "preset", "lat", "lon", "accuracy", "tags", "note", "observed_at"}


def _number(body, name, low, high, required=True):
    value = body.get(name)
    if value is None and not required:
        return None
    return read_number(value, name, low, high)


def read_number(value, name, low, high):
    """`value` as a float from `low` to `high`, or Invalid naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("not_a_number", field=name, name=name)
    if not low <= value <= high:
        raise Invalid("number_range", field=name, name=name, min=low, max=high)
    return float(value)


def _client_id(value):
    try:
        return uuid.UUID(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        return None


def _observed_at(value, now):
    if value is None:
        return None  # the database puts now(), the same instant as received_at
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Invalid("iso_time", field="observed_at", name="observed_at")
    if not datetime(2000, 1, 1, tzinfo=UTC) <= moment <= now + timedelta(days=1):
        raise Invalid("implausible_time", field="observed_at", name="observed_at")
    return moment


def read_submission(event, body):
    """The submission's values from a request body, checked field by field."""
    refuse_unknown_fields(body, FIELDS)
    client_id = _client_id(body.get("client_id"))
    if client_id is None:
        raise Invalid("client_id", field="client_id")
    preset_id = body.get("preset")
    preset = all_presets().get(preset_id) if isinstance(preset_id, str) else None
    if preset is None:
        raise Invalid("unknown_preset", field="preset", preset=str(preset_id)[:40])
    if preset_id not in event.presets:
        raise Invalid("preset_not_in_event", field="preset", preset=preset_id)
    note = "" if body.get("note") is None else body["note"]
    if not isinstance(note, str) or len(note) > LIMITS["note_length"]:
        raise Invalid("note_too_long", field="note", max=LIMITS["note_length"])
    return {
        "client_id": client_id,
        "preset": preset_id,
        "lat": _number(body, "lat", -90, 90),
        "lon": _number(body, "lon", -180, 180),
        "accuracy": _number(body, "accuracy", 0, 100_000, required=False),
        "tags": check_tags(preset, body.get("tags", {})),
        "note": note.replace("\x00", ""),
        "observed_at": _observed_at(body.get("observed_at"), datetime.now(UTC)),
    }


def body_digest(body):
    """A fingerprint of what the phone sent, to tell a replay from a different body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _inside_zone(event, lat, lon):
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    return db.session.scalar(db.select(func.ST_Covers(Event.zone, point)).where(Event.id == event.id))


SUBMISSION_COLUMNS = """
    s.id, s.client_id::text AS client_id, s.preset, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
    s.accuracy, s.tags, s.note, s.status::text AS status, s.observed_at, s.received_at,
    (SELECT count(*) FROM photo WHERE photo.submission_id = s.id) AS photo_count
"""


def _as_json(row):
    return {**row, "observed_at": row["observed_at"].isoformat(),
            "received_at": row["received_at"].isoformat()}


def submission_json(submission_id):
    """A stored submission as the API shows it."""
    row = db.session.execute(
        text(f"SELECT {SUBMISSION_COLUMNS} FROM submission s WHERE s.id = :id"),  # noqa: S608
        {"id": submission_id}).mappings().one()
    return _as_json(row)


# One round trip stores a new point inside the zone and returns it; nothing comes back for a
# replay (the client_id exists) or a point outside the zone, told apart afterwards.
INSERT = text("""
    WITH new AS (
        INSERT INTO submission AS s (event_id, participant_id, client_id, preset, geom, accuracy,
                                     tags, note, observed_at, body_sha256, status, version)
        SELECT e.id, :participant_id, :client_id, :preset, point.geom, :accuracy, :tags, :note,
               coalesce(:observed_at, now()), :digest, 'pending', 1
        FROM event e, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geom) AS point
        WHERE e.id = :event_id AND (e.allow_outside_zone OR ST_Covers(e.zone, point.geom))
        ON CONFLICT ON CONSTRAINT submission_client_id_unique DO NOTHING
        RETURNING s.*
    )
    SELECT s.id, s.client_id::text AS client_id, s.preset, ST_Y(s.geom) AS lat,
           ST_X(s.geom) AS lon, s.accuracy, s.tags, s.note, s.status::text AS status, s.observed_at,
           s.received_at, 0 AS photo_count
    FROM new s
""").bindparams(bindparam("tags", type_=JSONB), bindparam("client_id", type_=UUID),
                bindparam("observed_at", type_=db.DateTime(timezone=True)),
                bindparam("accuracy", type_=db.Float))


@bp.post("/<slug>/submissions")
@participant_required
def create(event, participant):
    body = json_body()
    values = read_submission(event, body)
    digest = body_digest(body)
    inserted = db.session.execute(INSERT, {
        **values, "event_id": event.id, "participant_id": participant.id, "digest": digest,
    }).mappings().one_or_none()
    if inserted is not None:
        db.session.commit()
        return jsonify(_as_json(inserted)), 201
    stored = db.session.execute(
        db.select(Submission.id, Submission.participant_id, Submission.body_sha256)
        .filter_by(event_id=event.id, client_id=values["client_id"])).one_or_none()
    if stored is None:
        raise Invalid("outside_zone", field="lat")
    if stored.participant_id != participant.id or stored.body_sha256 != digest:
        raise Conflict("client_id_taken", field="client_id")
    return jsonify(submission_json(stored.id)), 200


def _own_pending_submission(event, participant, client_id):
    """The walker's own submission, still open to changes, or a 4xx saying why not."""
    client_uuid = _client_id(client_id)
    submission = client_uuid and db.session.scalar(
        db.select(Submission).filter_by(event_id=event.id, client_id=client_uuid)
        .with_for_update())
    if submission is None:
        raise NotFound("no_such_submission", field="client_id")
    if submission.participant_id != participant.id:
        raise Forbidden("not_your_point", field="client_id")
    if submission.status != Status.pending:
        raise Conflict(f"point_{submission.status}", field="status")
    return submission


@bp.put("/<slug>/submissions/<client_id>")
@participant_required
def update(event, participant, client_id):
    submission = _own_pending_submission(event, participant, client_id)
    body = json_body()
    values = read_submission(event, {"client_id": client_id, **body})
    if values["client_id"] != submission.client_id:
        raise Invalid("client_id_differs", field="client_id")
    if not event.allow_outside_zone and not _inside_zone(event, values["lat"], values["lon"]):
        raise Invalid("outside_zone", field="lat")
    lat, lon = values.pop("lat"), values.pop("lon")
    submission.geom = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    if body.get("observed_at") is None:
        values["observed_at"] = submission.observed_at
    for name in ("preset", "accuracy", "tags", "note", "observed_at"):
        setattr(submission, name, values[name])
    submission.version += 1  # an organiser looking at the old version must see it changed
    db.session.commit()
    return jsonify(submission_json(submission.id)), 200


@bp.delete("/<slug>/submissions/<client_id>")
@participant_required
def delete(event, participant, client_id):
    submission = _own_pending_submission(event, participant, client_id)
    photos = list(submission.photos)
    db.session.delete(submission)
    db.session.commit()
    forget_unused_files(photos)
    return "", 204


# The organisers' view: every point of the event, with its author and its OSM match.
FEATURE_COLLECTION = text(f"""
    SELECT json_build_object(
        'type', 'FeatureCollection',
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature',
            'id', s.id,
            'geometry', ST_AsGeoJSON(s.geom, 7)::json,
            'properties', json_build_object(
                'id', s.id, 'client_id', s.client_id, 'preset', s.preset, 'tags', s.tags,
                'note', s.note, 'status', s.status, 'accuracy', s.accuracy,
                'observed_at', s.observed_at, 'received_at', s.received_at,
                'photo_count', (SELECT count(*) FROM photo WHERE photo.submission_id = s.id),
                'pseudonym', p.pseudonym, 'review_reason', s.review_reason,
                'osm_match', {OSM_MATCH})
        ) ORDER BY s.id), '[]'::json))::text
    FROM submission s JOIN participant p ON p.id = s.participant_id
    LEFT JOIN match m ON m.submission_id = s.id
    LEFT JOIN submission original ON original.id = m.duplicate_of_id
    WHERE s.event_id = :event_id
""")  # noqa: S608  (fixed fragments only)


@bp.get("/<slug>/submissions.geojson")
def feature_collection(slug):
    event = load_event(slug)
    if event.is_organised_by(current_organiser()):
        collection = db.session.scalar(FEATURE_COLLECTION, {"event_id": event.id})
    else:
        participant = current_participant(event)
        if participant is None:
            raise Unauthorised("members_only", field="Authorization")
        collection = walkerview.collection(event, participant, request.args.get("since"))
    return Response(collection, mimetype="application/geo+json")
