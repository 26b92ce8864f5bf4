"""Reviewing submissions: approve, reject, correct, move, merge — each change audited (who,
when, before, after) and refused when the submission changed since the reviewer saw it."""

from flask import Blueprint, jsonify
from sqlalchemy import bindparam, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from .accounts import event_organiser_required
from .api import json_body, refuse_unknown_fields
from .auth import MAX_ID, load_submission
from .errors import Conflict, Invalid, NotFound
from .extensions import db
from .i18n import language, translate
from .models import Event, Submission
from .osm.conflate import OSM_MATCH
from .presets import all_presets, check_tags

bp = Blueprint("review", __name__, url_prefix="/api/organise")

SNAPSHOT = """jsonb_build_object('status', {p}status, 'review_reason', {p}review_reason,
    'tags', {p}tags, 'note', {p}note, 'lat', ST_Y({p}geom), 'lon', ST_X({p}geom),
    'duplicate_of_id', {p}duplicate_of_id, 'version', {p}version)"""

# One statement for one submission or ten thousand: lock the rows, change them, write the audit.
CHANGE = """
WITH old AS (
    SELECT s.* FROM submission s
    WHERE s.event_id = :event_id AND {where}
    ORDER BY s.id FOR UPDATE
), changed AS (
    UPDATE submission s SET {changes}, version = s.version + 1
    FROM old WHERE s.id = old.id
    RETURNING s.id, {after} AS after, {before} AS before
)
INSERT INTO audit_entry (submission_id, organiser_id, actor, action, before, after)
SELECT id, :organiser_id, :actor, :action, before, after FROM changed
RETURNING submission_id
"""


def change(event, where, changes, action, actor, organiser_id=None, **params):
    """Apply `changes` (SQL SET items) to the event's submissions matching `where`; audit
    each; return the ids changed."""
    statement = text(CHANGE.format(where=where, changes=changes,
                                   after=SNAPSHOT.format(p="s."), before=SNAPSHOT.format(p="old.")))
    binds = [bindparam(name, type_=kind) for name, kind in
             (("ids", ARRAY(db.BigInteger)), ("versions", ARRAY(db.Integer)),
              ("client_ids", ARRAY(db.Text)), ("tags", JSONB)) if name in params]
    rows = db.session.execute(statement.bindparams(*binds), {
        "event_id": event.id, "organiser_id": organiser_id, "actor": actor[:300],
        "action": action, **params}).scalars().all()
    return rows


DECISIONS = {"approve": "approved", "reject": "rejected"}
MOVE = "geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"


def decide(event, decision, actor, organiser_id=None, reason=None, items=None,
           client_ids=None, all_pending=False):
    """Approve or reject: `items` as [(id, version)] seen by the reviewer, `client_ids`, or
    every pending submission. Returns the ids changed."""
    status = DECISIONS[decision]
    if decision == "reject" and not (reason or "").strip():
        raise Invalid("reason_missing", field="reason")
    if items is not None:
        where = ("(s.id, s.version) IN (SELECT * FROM unnest(CAST(:ids AS bigint[]), "
                 "CAST(:versions AS int[])))")
        selection = {"ids": [i for i, _ in items], "versions": [v for _, v in items]}
    elif client_ids is not None:
        where = "s.client_id::text = ANY(:client_ids)"
        selection = {"client_ids": [str(c) for c in client_ids]}
    elif all_pending:
        where, selection = "s.status = 'pending'", {}
    else:
        raise ValueError("nothing to decide on")
    return change(event, f"{where} AND s.status <> :status",
                  "status = :status, review_reason = :reason, reviewed_at = now()",
                  decision, actor, organiser_id, status=status,
                  reason=(reason or "").strip() or None, **selection)


MAX_VERSION = 2**31 - 1
MAX_BULK = 5000
# 5,000 items of the longest ids and versions take 240 KB: the usual 64 KiB cap stopped a bulk
# decision at about 2,700 items.
MAX_BULK_BYTES = 512 * 1024


def _one(event, submission_id, field="submission_id"):
    """The event's submission, locked until the end of the transaction (so the version
    checked is the version changed)."""
    return load_submission(event, submission_id, field, lock=True)


def _expect_version(event, submission_id, version, field="version"):
    """Refuse the change unless the reviewer saw the submission as it is now."""
    if type(version) is not int or not 0 < version <= MAX_VERSION:
        raise Invalid("version_missing", field=field)
    if _one(event, submission_id).version != version:
        raise Conflict("changed_meanwhile", field=field)
    return version


def _check_reason(reason):
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise Invalid("reason_too_long", field="reason", max=500)
    return reason


def detail_json(event, submission_id):
    """A submission with everything a reviewer needs, and its audit trail; a 404 when the event
    has no such submission (or no longer: the page may ask just after it went)."""
    if not 0 < submission_id <= MAX_ID:
        raise NotFound("no_such_point", field="submission_id")
    row = db.session.execute(text(f"""
        SELECT s.id, s.client_id::text AS client_id, s.preset, s.status::text AS status,
               ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, s.accuracy, s.tags, s.note,
               s.observed_at, s.received_at, s.version, s.review_reason, s.reviewed_at,
               s.duplicate_of_id, p.id AS participant_id, p.pseudonym, t.name AS team,
               u.osm_type AS in_osm_type, u.osm_id AS in_osm_id, u.changeset AS in_osm_changeset,
               coalesce((SELECT json_agg(photo.sha256 ORDER BY photo.id) FROM photo
                         WHERE photo.submission_id = s.id), '[]') AS photos,
               -- (the whole match row, kept for undoing a correction, is not for the page)
               coalesce((SELECT json_agg(json_build_object('actor', a.actor, 'action', a.action,
                             'at', a.at, 'before', a.before - 'match', 'after', a.after - 'match')
                             ORDER BY a.id)
                         FROM audit_entry a WHERE a.submission_id = s.id), '[]') AS history,
               {OSM_MATCH} AS osm_match
        FROM submission s JOIN participant p ON p.id = s.participant_id
        LEFT JOIN team t ON t.id = p.team_id
        LEFT JOIN match m ON m.submission_id = s.id
        LEFT JOIN submission original ON original.id = m.duplicate_of_id
        LEFT JOIN submission_osm u ON u.submission_id = s.id
        WHERE s.event_id = :event_id AND s.id = :id"""),  # noqa: S608  (fixed fragments only)
        {"event_id": event.id, "id": submission_id}).mappings().one_or_none()
    if row is None:
        raise NotFound("no_such_point", field="submission_id")
    return {**row, "photos": [f"/api/events/{event.slug}/photos/{sha}" for sha in row["photos"]],
            **{key: row[key].isoformat() if row[key] else None
               for key in ("observed_at", "received_at", "reviewed_at")}}


def _actor(organiser):
    return organiser.email


@bp.get("/<slug>/submissions/<int:submission_id>")
@event_organiser_required
def show(event, organiser, submission_id):
    return jsonify(detail_json(event, submission_id))


@bp.post("/<slug>/submissions/<int:submission_id>/<any(approve, reject):decision>")
@event_organiser_required
def decide_one(event, organiser, submission_id, decision):
    body = json_body()
    refuse_unknown_fields(body, {"version", "reason"})
    version = _expect_version(event, submission_id, body.get("version"))
    reason = _check_reason(body.get("reason"))
    decide(event, decision, _actor(organiser), organiser.id, reason,
           items=[(submission_id, version)])
    db.session.commit()
    return jsonify(detail_json(event, submission_id))


@bp.post("/<slug>/review/bulk")
@event_organiser_required
def decide_many(event, organiser):
    body = json_body(MAX_BULK_BYTES)
    refuse_unknown_fields(body, {"action", "items", "reason"})
    if not isinstance(body.get("action"), str) or body["action"] not in DECISIONS:
        raise Invalid("bulk_action", field="action")
    items = body.get("items")
    if not isinstance(items, list) or not items or len(items) > MAX_BULK or not all(
            isinstance(i, dict) and type(i.get("id")) is int and 0 < i["id"] <= MAX_ID
            and type(i.get("version")) is int and 0 < i["version"] <= MAX_VERSION for i in items):
        raise Invalid("bulk_items", field="items", max=MAX_BULK)
    _check_reason(body.get("reason"))
    pairs = [(i["id"], i["version"]) for i in items]
    done = decide(event, body["action"], _actor(organiser), organiser.id, body.get("reason"),
                  items=pairs)
    db.session.commit()
    conflicts = sorted({i for i, _ in pairs} - set(done))
    return jsonify({"done": sorted(done), "not_changed": conflicts})


@bp.patch("/<slug>/submissions/<int:submission_id>")
@event_organiser_required
def correct(event, organiser, submission_id):
    body = json_body()
    refuse_unknown_fields(body, {"version", "tags", "lat", "lon", "note"})
    version = _expect_version(event, submission_id, body.get("version"))
    submission = _one(event, submission_id)
    changes, params = [], {}
    if "tags" in body:
        preset = all_presets().get(submission.preset)
        params["tags"] = check_tags(preset, body["tags"])
        changes.append("tags = :tags")
    if "lat" in body or "lon" in body:
        lat, lon = body.get("lat"), body.get("lon")
        for name, value, bound in (("lat", lat, 90), ("lon", lon, 180)):
            if type(value) not in (int, float) or not -bound <= value <= bound:
                raise Invalid("number_range", field=name, name=name, min=-bound, max=bound)
        changes.append(MOVE)
        params.update(lat=float(lat), lon=float(lon))
        inside = db.session.scalar(db.select(func.ST_Covers(Event.zone, func.ST_SetSRID(
            func.ST_MakePoint(lon, lat), 4326))).where(Event.id == event.id))
        if not (inside or event.allow_outside_zone):
            raise Invalid("outside_zone", field="lat")
    if "note" in body:
        if not isinstance(body["note"], str) or len(body["note"]) > 2000:
            raise Invalid("note_too_long", field="note", max=2000)
        changes.append("note = :note")
        params["note"] = body["note"].replace("\x00", "")
    if not changes:
        raise Invalid("nothing_to_change", field="tags")
    change(event, "s.id = :id AND s.version = :version", ", ".join(changes),
           "move" if changes == [MOVE] else "edit",
           _actor(organiser), organiser.id, id=submission_id, version=version, **params)
    db.session.commit()
    return jsonify(detail_json(event, submission_id))


@bp.post("/<slug>/submissions/<int:submission_id>/merge")
@event_organiser_required
def merge(event, organiser, submission_id):
    """Keep this submission; the duplicate is rejected as the same feature, its missing tags
    and its photos are added to this one."""
    body = json_body()
    refuse_unknown_fields(body, {"version", "duplicate", "duplicate_version"})
    version = _expect_version(event, submission_id, body.get("version"))
    duplicate_id = body.get("duplicate")
    valid = type(duplicate_id) is int and duplicate_id != submission_id and 0 < duplicate_id <= MAX_ID
    if not valid or not db.session.scalar(db.select(Submission.id).filter_by(
            event_id=event.id, id=duplicate_id)):
        raise Invalid("duplicate_not_other", field="duplicate")
    duplicate_version = _expect_version(event, duplicate_id, body.get("duplicate_version"),
                                        field="duplicate_version")
    kept, duplicate = _one(event, submission_id), _one(event, duplicate_id)
    if kept.preset != duplicate.preset:
        raise Invalid("merge_other_preset", field="duplicate")
    actor = _actor(organiser)
    change(event, "s.id = :id AND s.version = :version", "tags = :tags", "merge", actor,
           organiser.id, id=submission_id, version=version,
           tags={**duplicate.tags, **kept.tags})
    change(event, "s.id = :id AND s.version = :version",
           "status = 'rejected', duplicate_of_id = :kept, reviewed_at = now(), "
           "review_reason = :reason", "merge", actor, organiser.id, id=duplicate_id,
           version=duplicate_version, kept=submission_id,
           # In the organiser's language: the walker who recorded the duplicate reads it too.
           reason=translate(language(), "merged_reason", id=str(submission_id)))
    db.session.execute(text("""
        UPDATE photo SET submission_id = :kept WHERE submission_id = :duplicate
        AND sha256 NOT IN (SELECT sha256 FROM photo WHERE submission_id = :kept)"""),
        {"kept": submission_id, "duplicate": duplicate_id})
    db.session.commit()
    return jsonify(detail_json(event, submission_id))
