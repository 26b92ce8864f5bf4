"""The OpenStreetMap side of the review map: the event's OSM features and the lines from each
submission to its match in view, the features around one submission, and an organiser's
correction of a match ("it is that OSM feature", "it is a different feature") and its undoing,
each kept in the audit trail.

Positions are WGS84 degrees (`lat`, `lon`); distances are metres on the spheroid."""

from flask import Blueprint, jsonify
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from ..accounts import event_organiser_required
from ..api import json_body, refuse_unknown_fields
from ..auth import MAX_ID, load_submission
from ..errors import Conflict, Invalid
from ..extensions import db
from ..presets import all_presets
from ..review import SNAPSHOT, detail_json
from ..reviewmap import read_bbox
from . import conflate
from .conflate import OSM_MATCH

bp = Blueprint("matches", __name__, url_prefix="/api/organise")

FEATURES_AT_MOST = 2000
OSM_TYPES = ("node", "way", "relation")
# Candidates are looked for this many times farther than the preset's match radius: the
# organiser corrects the cases matching got wrong, often a feature just beyond the radius.
CANDIDATE_REACH = 4
CANDIDATES_AT_MOST = 20
DEFAULT_RADIUS = 25

# Both lists take the GiST index of their table through `&&` on the view's envelope.
ELEMENTS_IN_VIEW = text("""
    SELECT o.osm_type, o.osm_id, o.version, ST_Y(o.geom) AS lat, ST_X(o.geom) AS lon, o.tags
    FROM osm_element o
    WHERE o.event_id = :event_id AND o.geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
    LIMIT :limit
""")
LINES_IN_VIEW = text("""
    SELECT s.id, m.outcome, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, o.osm_type, o.osm_id,
           ST_Y(o.geom) AS osm_lat, ST_X(o.geom) AS osm_lon, m.overridden_by IS NOT NULL AS overridden
    FROM submission s
    JOIN match m ON m.submission_id = s.id
    JOIN osm_element o ON o.event_id = s.event_id AND o.osm_type = m.osm_type AND o.osm_id = m.osm_id
    WHERE s.event_id = :event_id AND s.geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
    LIMIT :limit
""")


@bp.get("/<slug>/osm/features")
@event_organiser_required
def features(event, organiser):
    """The event's OSM features in the bbox, and the lines from submissions there to their match."""
    bbox = read_bbox(required=True)
    params = dict(zip(("west", "south", "east", "north"), bbox, strict=True),
                  event_id=event.id, limit=FEATURES_AT_MOST + 1)
    elements = db.session.execute(ELEMENTS_IN_VIEW, params).mappings().all()
    lines = db.session.execute(LINES_IN_VIEW, params).mappings().all()
    return jsonify(elements=[dict(row) for row in elements[:FEATURES_AT_MOST]],
                   lines=[dict(row) for row in lines[:FEATURES_AT_MOST]],
                   truncated=len(elements) > FEATURES_AT_MOST or len(lines) > FEATURES_AT_MOST)


CANDIDATES = text("""
    SELECT o.osm_type, o.osm_id, o.version, ST_Y(o.geom) AS lat, ST_X(o.geom) AS lon, o.tags,
           ST_Distance(s.geom::geography, o.geom::geography) AS distance_m,
           :known AND o.tags @> :ident AS same_kind,
           m.submission_id IS NOT NULL AS matched
    FROM submission s
    JOIN osm_element o ON o.event_id = s.event_id
         -- a box in degrees that surely holds the circle, for the GiST index on geom
         AND o.geom && ST_Expand(s.geom, :reach / (110574 * cos(radians(least(abs(ST_Y(s.geom)), 89)))),
                                 :reach / 110574.0)
         AND ST_DWithin(s.geom::geography, o.geom::geography, :reach)
    LEFT JOIN match m ON m.submission_id = s.id AND m.osm_type = o.osm_type AND m.osm_id = o.osm_id
    WHERE s.event_id = :event_id AND s.id = :id
    ORDER BY distance_m, o.osm_type, o.osm_id
    LIMIT :limit
""").bindparams(bindparam("ident", type_=JSONB))


def _preset_of(event, submission_id):
    """The submission's preset id, or a 404 naming `submission_id`."""
    return load_submission(event, submission_id).preset


@bp.get("/<slug>/submissions/<int:submission_id>/candidates")
@event_organiser_required
def candidates(event, organiser, submission_id):
    """The OSM features near a submission, nearest first, to choose its match by hand."""
    preset = all_presets().get(_preset_of(event, submission_id))
    reach = CANDIDATE_REACH * (preset["match_radius"] if preset else DEFAULT_RADIUS)
    rows = db.session.execute(CANDIDATES, {
        "event_id": event.id, "id": submission_id, "reach": reach, "limit": CANDIDATES_AT_MOST,
        "known": preset is not None, "ident": preset["tags"] if preset else {}}).mappings()
    return jsonify(radius_m=reach, candidates=[dict(row) for row in rows])


def read_choice(body):
    """The organiser's choice: ("new", None, None) or ("osm", osm_type, osm_id)."""
    refuse_unknown_fields(body, {"osm_type", "osm_id", "outcome"})
    if "outcome" in body:
        if body["outcome"] != "new" or "osm_type" in body or "osm_id" in body:
            raise Invalid("match_outcome", field="outcome")
        return "new", None, None
    osm_type, osm_id = body.get("osm_type"), body.get("osm_id")
    if osm_type not in OSM_TYPES:
        raise Invalid("osm_type", field="osm_type")
    if type(osm_id) is not int or not 0 < osm_id <= MAX_ID:
        raise Invalid("osm_id", field="osm_id")
    return "osm", osm_type, osm_id


# What the submission is and what it was matched to, as the audit trail keeps it: `osm_match`
# as the page shows it, `match` the whole row, so that undoing a correction puts it back.
AUDIT_SNAPSHOT = text(f"""
    SELECT {SNAPSHOT.format(p="s.")} || jsonb_build_object(
        'osm_match', {OSM_MATCH}, 'match', to_jsonb(m) - 'submission_id')
    FROM submission s LEFT JOIN match m ON m.submission_id = s.id
         LEFT JOIN submission original ON original.id = m.duplicate_of_id
    WHERE s.event_id = :event_id AND s.id = :id
    FOR UPDATE OF s
""")  # noqa: S608  (fixed fragments only)
AUDIT = text("""
    INSERT INTO audit_entry (submission_id, organiser_id, actor, action, before, after)
    VALUES (:id, :organiser_id, :actor, :action, :before, :after)
""").bindparams(bindparam("before", type_=JSONB), bindparam("after", type_=JSONB))


def _snapshot(event, submission_id):
    """The submission and its match, its row locked until the end of the transaction (so two
    organisers correcting it at once take turns), or a 404 naming `submission_id`."""
    load_submission(event, submission_id)
    return db.session.scalar(AUDIT_SNAPSHOT, {"event_id": event.id, "id": submission_id})


def _audited(event, organiser, submission_id, action, correct):
    """Run `correct()` on the submission's match and keep the change in the audit trail."""
    before = _snapshot(event, submission_id)
    correct()
    db.session.execute(AUDIT, {"id": submission_id, "organiser_id": organiser.id,
                               "actor": organiser.email[:300], "action": action, "before": before,
                               "after": _snapshot(event, submission_id)})
    db.session.commit()
    return jsonify(detail_json(event, submission_id))


@bp.post("/<slug>/submissions/<int:submission_id>/match")
@event_organiser_required
def set_match(event, organiser, submission_id):
    """The organiser says which OSM feature the submission is, or that it is a new one."""
    kind, osm_type, osm_id = read_choice(json_body())
    if kind == "new":
        return _audited(event, organiser, submission_id, "match_new",
                        lambda: conflate.mark_new(event, submission_id, organiser.email))
    return _audited(event, organiser, submission_id, "match_osm", lambda: conflate.override(
        event, submission_id, osm_type, osm_id, organiser.email))


# The match a point had before the organisers' corrections began: kept by the first of the
# latest run of corrections (the latest one made while the match was not corrected by hand).
# Null when it had none, or when the correction predates audits keeping the whole match.
PREVIOUS_MATCH = text("""
    SELECT before->'match' FROM audit_entry
    WHERE submission_id = :id AND action IN ('match_osm', 'match_new')
      AND before->'osm_match'->>'overridden_by' IS NULL
    ORDER BY id DESC LIMIT 1
""")
# Put it back unless it no longer holds: its OSM feature is gone or at another version (its
# tag diff would be stale), its original is gone, or another point has taken the feature
# meanwhile. Then the point waits for the next check, unmatched.
RESTORE_MATCH = text("""
    WITH previous AS (
        SELECT * FROM jsonb_populate_record(
            NULL::match, CAST(:previous AS jsonb) || jsonb_build_object('submission_id', :id))
    )
    INSERT INTO match SELECT p.* FROM previous p
    WHERE (p.osm_type IS NULL OR EXISTS (
            SELECT 1 FROM osm_element o WHERE o.event_id = :event_id AND o.osm_type = p.osm_type
              AND o.osm_id = p.osm_id AND o.version IS NOT DISTINCT FROM p.osm_version))
      AND (p.duplicate_of_id IS NULL OR EXISTS (
            SELECT 1 FROM submission d WHERE d.id = p.duplicate_of_id AND d.event_id = :event_id))
      AND NOT (p.outcome IN ('existing', 'update') AND EXISTS (
            SELECT 1 FROM match h JOIN submission hs ON hs.id = h.submission_id
            WHERE hs.event_id = :event_id AND h.submission_id <> p.submission_id
              AND h.osm_type = p.osm_type AND h.osm_id = p.osm_id
              AND h.outcome IN ('existing', 'update')))
""").bindparams(bindparam("previous", type_=JSONB), bindparam("id", type_=db.BigInteger))


def restore_previous_match(event, submission_id):
    """Undo the organisers' corrections of a point's match: give back the match it had before
    them when it still holds; return whether there was a correction to undo."""
    previous = db.session.scalar(PREVIOUS_MATCH, {"id": submission_id})
    if not conflate.clear_override(event, submission_id):
        return False
    if previous is not None:
        db.session.execute(RESTORE_MATCH, {"event_id": event.id, "id": submission_id,
                                           "previous": previous})
    return True


@bp.delete("/<slug>/submissions/<int:submission_id>/match")
@event_organiser_required
def undo_match(event, organiser, submission_id):
    """Undo the organiser's correction: the point gets back the match it had before."""

    def undo():
        if not restore_previous_match(event, submission_id):
            raise Conflict("nothing_to_undo", field="submission_id")

    return _audited(event, organiser, submission_id, "match_undo", undo)
