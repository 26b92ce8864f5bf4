"""Submissions: points walkers send, stored exactly once however often a phone replays them."""

import hashlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import BigInteger, bindparam, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from . import walkerview
from .api import json_body, refuse_unknown_fields
from .auth import current_organiser, current_participant, load_event, participant_required
from .errors import CartopartyError, Conflict, Forbidden, Invalid, NotFound, Unauthorised
from .extensions import db
from .models import Event, Status, Submission
from .osm.conflate import OSM_MATCH
from .photos import forget_unused_files
from .presets import LIMITS, all_presets, check_tags

bp = Blueprint("submissions", __name__, url_prefix="/api/events")

FIELDS = {"client_id", "preset", "lat", "lon", "accuracy", "tags", "note", "observed_at",
          "reference", "verdict"}
# What a walker found of a reference row (issue 16): as described, there but different, moved,
# or not there. A "missing" verdict carries no tags: there is no feature to describe.
VERDICTS = ("confirmed", "different", "moved", "missing")


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
    reference, verdict = _verdict(body)
    if verdict == "missing":
        if body.get("tags") not in (None, {}):
            raise Invalid("verdict_missing_tags", field="tags")
        tags = dict(preset["tags"])
    else:
        tags = check_tags(preset, body.get("tags", {}))
    return {
        "client_id": client_id,
        "preset": preset_id,
        "lat": _number(body, "lat", -90, 90),
        "lon": _number(body, "lon", -180, 180),
        "accuracy": _number(body, "accuracy", 0, 100_000, required=False),
        "tags": tags,
        "note": note.replace("\x00", ""),
        "observed_at": _observed_at(body.get("observed_at"), datetime.now(UTC)),
        "reference": reference, "verdict": verdict,
    }


def _verdict(body):
    """(reference row id, verdict) of a body, both None for a point of the walker's own."""
    reference, verdict = body.get("reference"), body.get("verdict")
    if reference is None and verdict is None:
        return None, None
    if isinstance(reference, bool) or not isinstance(reference, int) or not 0 < reference < 2**63:
        raise Invalid("verdict_reference", field="reference")
    if verdict not in VERDICTS:
        raise Invalid("verdict_unknown", field="verdict", verdicts=", ".join(VERDICTS))
    return reference, verdict


# The reference rows bodies name, with the preset they are checked with: one query a batch.
REFERENCE_ROWS = text("""
    SELECT r.id, d.preset FROM reference_row r JOIN reference_dataset d ON d.event_id = r.event_id
    WHERE r.event_id = :event_id AND r.id = ANY(:ids)
""").bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


def check_references(event, values_list):
    """For each body's values, in order: None, or the Invalid refusing its reference (a row of
    no dataset of this event, or a preset other than the one its rows are checked with)."""
    ids = sorted({values["reference"] for values in values_list if values["reference"] is not None})
    presets = dict(db.session.execute(REFERENCE_ROWS, {"event_id": event.id, "ids": ids}).all()
                   ) if ids else {}
    problems = []
    for values in values_list:
        reference = values["reference"]
        if reference is None:
            problems.append(None)
        elif reference not in presets:
            problems.append(NotFound("no_such_reference_row", field="reference"))
        elif presets[reference] != values["preset"]:
            problems.append(Invalid("verdict_preset", field="preset", preset=presets[reference]))
        else:
            problems.append(None)
    return problems


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
    (SELECT count(*) FROM photo WHERE photo.submission_id = s.id) AS photo_count,
    s.reference_row_id AS reference, s.verdict
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


# One statement stores the new points inside the zone and returns them; nothing comes back for
# a replay (its client_id exists, maybe from earlier in the same batch) or a point outside the
# zone, told apart afterwards. The items come as one JSON array: one round trip for 50 points.
INSERT = text("""
    WITH new AS (
        INSERT INTO submission AS s (event_id, participant_id, client_id, preset, geom, accuracy,
                                     tags, note, observed_at, body_sha256, status, version,
                                     reference_row_id, verdict)
        SELECT e.id, :participant_id, i.client_id, i.preset, point.geom, i.accuracy, i.tags, i.note,
               coalesce(i.observed_at, now()), i.digest, 'pending', 1, i.reference, i.verdict
        FROM jsonb_to_recordset(:items) AS i(position int, client_id uuid, preset text,
                                             lat float8, lon float8, accuracy float8, tags jsonb,
                                             note text, observed_at timestamptz, digest text,
                                             reference int8, verdict text)
        CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326) AS geom) AS point
        JOIN event e ON e.id = :event_id
        WHERE e.allow_outside_zone OR ST_Covers(e.zone, point.geom)
        ORDER BY i.position
        ON CONFLICT ON CONSTRAINT submission_client_id_unique DO NOTHING
        RETURNING s.*
    )
    SELECT s.id, s.client_id::text AS client_id, s.preset, ST_Y(s.geom) AS lat,
           ST_X(s.geom) AS lon, s.accuracy, s.tags, s.note, s.status::text AS status, s.observed_at,
           s.received_at, 0 AS photo_count, s.reference_row_id AS reference, s.verdict
    FROM new s
""").bindparams(bindparam("items", type_=JSONB))

# The points of these client_ids stored before (or earlier in the batch), to answer replays.
STORED = text(f"""
    SELECT {SUBMISSION_COLUMNS}, s.participant_id, s.body_sha256
    FROM submission s WHERE s.event_id = :event_id AND s.client_id = ANY(:client_ids)
""").bindparams(bindparam("client_ids", type_=ARRAY(UUID)))  # noqa: S608  (fixed fragments only)


def _read_item(event, body):
    """(values, digest) of one body, checked as a single POST checks it."""
    if not isinstance(body, dict):
        raise Invalid("json_not_object")
    if len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) > \
            current_app.config["MAX_JSON_BYTES"]:
        raise CartopartyError("too_large", status=413)
    return read_submission(event, body), body_digest(body)


def _as_item(values, position, digest):
    return {**values, "position": position, "digest": digest, "client_id": str(values["client_id"]),
            "observed_at": values["observed_at"] and values["observed_at"].isoformat()}


def store(event, participant, bodies):
    """Check the bodies and store the new points in one INSERT. For each body, in order:
    (201 or 200, the point as the API shows it), or the CartopartyError refusing it (409 for a
    client_id taken by another body, 422 for a wrong field or a point outside the zone).
    The caller commits."""
    outcomes, checked = [None] * len(bodies), {}
    for position, body in enumerate(bodies):
        try:
            checked[position] = _read_item(event, body)
        except CartopartyError as error:
            outcomes[position] = error
    for position, problem in zip(list(checked), check_references(event, [v for v, _ in checked.values()]),
                                 strict=True):
        if problem is not None:
            outcomes[position] = problem
            del checked[position]
    items = [_as_item(values, position, digest) for position, (values, digest) in checked.items()]
    inserted = {row["client_id"]: row for row in db.session.execute(INSERT, {
        "items": items, "event_id": event.id, "participant_id": participant.id}).mappings()
    } if items else {}
    for position, (values, _) in checked.items():
        # A client_id sent twice in one batch was stored from its first body; pop() leaves the
        # others to be told replays or conflicts like any body sent again.
        row = inserted.pop(str(values["client_id"]), None)
        if row is not None:
            outcomes[position] = (201, _as_json(row))
    rest = [position for position in checked if outcomes[position] is None]
    stored = {row["client_id"]: row for row in db.session.execute(STORED, {
        "event_id": event.id, "client_ids": [checked[p][0]["client_id"] for p in rest]}).mappings()
    } if rest else {}
    for position in rest:
        values, digest = checked[position]
        outcomes[position] = _replay(stored.get(str(values["client_id"])), participant, digest)
    return outcomes


def _replay(stored, participant, digest):
    """The answer to a body whose point was not stored now: a replay, a conflict, or outside."""
    if stored is None:
        return Invalid("outside_zone", field="lat")
    if stored["participant_id"] != participant.id or stored["body_sha256"] != digest:
        return Conflict("client_id_taken", field="client_id")
    row = {name: value for name, value in stored.items() if name not in ("participant_id", "body_sha256")}
    return 200, _as_json(row)


@bp.post("/<slug>/submissions")
@participant_required
def create(event, participant):
    [outcome] = store(event, participant, [json_body()])
    if isinstance(outcome, CartopartyError):
        raise outcome
    db.session.commit()
    status, submission = outcome
    return jsonify(submission), status


MAX_BATCH = 50
# 50 points with long notes; each is still held to MAX_JSON_BYTES, as a single POST is.
MAX_BATCH_BYTES = 1024 * 1024


def _error_json(error):
    return {"code": error.code, "field": error.field, "message": error.message,
            "params": error.detail()["params"]}


def _result(body, outcome):
    client_id = body.get("client_id") if isinstance(body, dict) else None
    result = {"client_id": client_id if isinstance(client_id, str) else None}
    if isinstance(outcome, CartopartyError):
        return {**result, "status": outcome.status, "error": _error_json(outcome)}
    return {**result, "status": outcome[0], "submission": outcome[1]}


@bp.post("/<slug>/submissions/batch")
@participant_required
def create_batch(event, participant):
    """Up to 50 new points in one request and one INSERT, answered point by point: a phone
    back online sends what waited in seconds. The request is refused only when its envelope is
    wrong; each point is checked and stored, or refused, as a single POST would be."""
    body = json_body(MAX_BATCH_BYTES)
    refuse_unknown_fields(body, {"submissions"})
    bodies = body.get("submissions")
    if not isinstance(bodies, list):
        raise Invalid("batch_not_list", field="submissions")
    if len(bodies) > MAX_BATCH:
        raise Invalid("batch_too_long", field="submissions", max=MAX_BATCH)
    outcomes = store(event, participant, bodies) if bodies else []
    db.session.commit()
    return jsonify({"results": [_result(b, o) for b, o in zip(bodies, outcomes, strict=True)]}), 200


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
    [problem] = check_references(event, [values])
    if problem is not None:
        raise problem
    lat, lon = values.pop("lat"), values.pop("lon")
    submission.geom = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    if body.get("observed_at") is None:
        values["observed_at"] = submission.observed_at
    values["reference_row_id"] = values.pop("reference")
    for name in ("preset", "accuracy", "tags", "note", "observed_at", "reference_row_id", "verdict"):
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
                'reference', s.reference_row_id, 'verdict', s.verdict,
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
