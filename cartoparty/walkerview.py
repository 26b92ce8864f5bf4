"""What a walker's phone sees of its event, and only that: the walker's own points (with the
reason of a rejection) and the points of others once approved — never others' pending or
rejected points, notes, photos or pseudonyms, as the join page promises.

A phone syncs from a cursor, a PostgreSQL snapshot taken with its last answer: it is sent the
points written by transactions that snapshot could not see, and the client_ids of points that
left its view since (models.SubmissionRemoved), not the whole event again.
"""

import re

from sqlalchemy import bindparam, text

from .errors import Invalid
from .extensions import db

# pg_snapshot's text form, xmin:xmax:xip,… (bounded: a cursor is sent back by phones).
CURSOR = re.compile(r"[0-9]{1,20}:[0-9]{1,20}:(?:[0-9]{1,20}(?:,[0-9]{1,20})*)?")
MAX_CURSOR = 8192

# `since` is NULL for a full answer. Points written since the cursor are those its snapshot
# does not see; changed_xid >= its xmin lets the index skip the older ones.
COLLECTION = text("""
    WITH visible AS (
        SELECT s.* FROM submission s
        -- a "missing" verdict is no feature: others are not shown it
        WHERE s.event_id = :event_id AND (s.participant_id = :viewer
                                          OR s.status = 'approved' AND s.verdict IS DISTINCT FROM 'missing')
          AND (CAST(:since AS pg_snapshot) IS NULL
               OR s.changed_xid >= pg_snapshot_xmin(CAST(:since AS pg_snapshot))
                  AND NOT pg_visible_in_snapshot(s.changed_xid, CAST(:since AS pg_snapshot)))
    ), removed AS (
        SELECT DISTINCT r.client_id FROM submission_removed r
        WHERE CAST(:since AS pg_snapshot) IS NOT NULL AND r.event_id = :event_id
          AND (r.was_approved OR r.participant_id = :viewer)
          AND r.xid >= pg_snapshot_xmin(CAST(:since AS pg_snapshot))
          AND NOT pg_visible_in_snapshot(r.xid, CAST(:since AS pg_snapshot))
          AND r.client_id NOT IN (SELECT client_id FROM visible)
    )
    SELECT json_build_object(
        'type', 'FeatureCollection',
        'cursor', pg_current_snapshot()::text,
        'complete', CAST(:since AS pg_snapshot) IS NULL,
        'removed', (SELECT coalesce(json_agg(client_id ORDER BY client_id), '[]') FROM removed),
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature',
            'id', s.client_id,
            'geometry', ST_AsGeoJSON(s.geom, 7)::json,
            'properties', CASE WHEN s.participant_id = :viewer THEN json_build_object(
                'client_id', s.client_id, 'preset', s.preset, 'tags', s.tags, 'note', s.note,
                'status', s.status, 'mine', true, 'accuracy', s.accuracy,
                'observed_at', s.observed_at, 'received_at', s.received_at,
                'photo_count', (SELECT count(*) FROM photo WHERE photo.submission_id = s.id),
                'review_reason', CASE WHEN s.status = 'rejected' THEN s.review_reason END,
                'reference', s.reference_row_id, 'verdict', s.verdict)
            ELSE json_build_object(
                'client_id', s.client_id, 'preset', s.preset, 'tags', s.tags,
                'status', s.status, 'mine', false) END
        ) ORDER BY s.id), '[]'::json))::text
    FROM visible s
""").bindparams(bindparam("viewer", type_=db.Integer), bindparam("since", type_=db.Text))

# A cursor from another database (restored, or rebuilt) may lie ahead of this one: such a
# phone is answered in full rather than never told of anything again.
AHEAD = text("SELECT pg_snapshot_xmin(CAST(:since AS pg_snapshot)) "
             "> pg_snapshot_xmax(pg_current_snapshot())")


def read_cursor(value):
    """The cursor a phone sent (None for a full answer), or Invalid."""
    if value is None or value == "":
        return None
    if len(value) > MAX_CURSOR or not CURSOR.fullmatch(value):
        raise Invalid("cursor_invalid", field="since")
    xmin, xmax, running = value.split(":")
    xmin, xmax = int(xmin), int(xmax)
    # PostgreSQL refuses a snapshot whose running transactions are out of order or bounds.
    xids = [int(xid) for xid in running.split(",") if xid]
    if not (0 < xmin <= xmax < 2**63 and xids == sorted(xids)
            and all(xmin <= xid < xmax for xid in xids)):
        raise Invalid("cursor_invalid", field="since")
    return value


def collection(event, participant, since=None):
    """The walker's view of the event as GeoJSON text, with `cursor`, `complete` (a full
    answer: replace what the phone keeps) and `removed` (client_ids to drop)."""
    since = read_cursor(since)
    if since is not None and db.session.scalar(AHEAD, {"since": since}):
        since = None
    return db.session.scalar(COLLECTION, {"event_id": event.id, "viewer": participant.id,
                                          "since": since})
