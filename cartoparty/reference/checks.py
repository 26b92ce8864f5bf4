"""The field checks of a reference dataset: its rows as the walker's map shows them, the
walkers' verdicts on each row (submissions naming the row), and each row's outcome.

A row's outcome is the organiser's settlement when there is one; else what the approved
verdicts propose: the most frequent of them (the latest on a tie), its values taken from the
latest approved verdict of that kind; else "not_checked". Only approved verdicts count: an
organiser reviewed them, as every point. The outcomes are worked out by PostgreSQL in one
query for the whole dataset (OUTCOMES), which the review page, the summary on the dashboard
and the restitution, and the export back to the town all read.
"""

from flask import Blueprint, Response, json
from sqlalchemy import text

from ..auth import current_organiser, current_participant, load_event
from ..errors import Invalid, NotFound, Unauthorised
from ..extensions import db
from ..models import ReferenceDataset, ReferenceRow, Status, Submission
from .mapping import row_tags, title

bp = Blueprint("reference_checks", __name__, url_prefix="/api/events")

# What a walker's verdict makes of the row, once adopted.
OUTCOME_OF_VERDICT = {"confirmed": "confirmed", "different": "corrected", "moved": "moved",
                      "missing": "missing"}
OUTCOMES_ORDER = ("confirmed", "corrected", "moved", "missing", "not_checked")

ROWS = text("""
    SELECT r.id, r.source_id, r.fields, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon,
           r.settled IS NOT NULL AND r.settled <> 'not_checked' OR EXISTS (
               SELECT 1 FROM submission s WHERE s.reference_row_id = r.id AND s.status = 'approved'
           ) AS checked
    FROM reference_row r WHERE r.event_id = :event_id ORDER BY r.id
""")

# Each row with its outcome and the verdict its values come from (NULL for "not_checked",
# and for a settlement with no verdict behind it).
OUTCOMES = text("""
    WITH approved AS (
        SELECT s.id, s.reference_row_id, s.verdict, s.observed_at,
               CASE s.verdict WHEN 'different' THEN 'corrected' ELSE s.verdict END AS outcome
        FROM submission s
        WHERE s.event_id = :event_id AND s.reference_row_id IS NOT NULL AND s.status = 'approved'
    ), tally AS (
        SELECT reference_row_id, outcome, count(*) AS n, max(id) AS latest
        FROM approved GROUP BY reference_row_id, outcome
    ), proposal AS (
        SELECT DISTINCT ON (reference_row_id) reference_row_id, outcome, latest
        FROM tally ORDER BY reference_row_id, n DESC, latest DESC
    ), given AS (  -- every verdict, approved or not
        SELECT reference_row_id, count(*) AS n FROM submission
        WHERE event_id = :event_id AND reference_row_id IS NOT NULL GROUP BY reference_row_id
    )
    SELECT r.id, r.source_id, r.row_number, r.fields, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon,
           r.settled, r.settled_by, r.settled_at,
           coalesce(r.settled, p.outcome, 'not_checked') AS outcome,
           CASE WHEN r.settled IS NULL THEN p.latest
                WHEN r.settled = 'not_checked' THEN NULL ELSE r.settled_from_id END AS verdict_id,
           v.verdict, v.tags AS verdict_tags, ST_Y(v.geom) AS verdict_lat, ST_X(v.geom) AS verdict_lon,
           v.observed_at AS verdict_observed_at, v.note AS verdict_note,
           coalesce(g.n, 0) AS verdicts
    FROM reference_row r
    LEFT JOIN proposal p ON p.reference_row_id = r.id
    LEFT JOIN given g ON g.reference_row_id = r.id
    LEFT JOIN submission v ON v.id = CASE WHEN r.settled IS NULL THEN p.latest
                                          WHEN r.settled = 'not_checked' THEN NULL
                                          ELSE r.settled_from_id END
    WHERE r.event_id = :event_id
    ORDER BY r.row_number
""")


def dataset(event):
    """The event's ReferenceDataset, or None."""
    return db.session.get(ReferenceDataset, event.id)


def outcomes(event):
    """Each row of the event's dataset, in file order, with its outcome (OUTCOMES' columns)."""
    return db.session.execute(OUTCOMES, {"event_id": event.id}).mappings().all()


SUMMARY = text(f"""
    SELECT o.outcome, count(*) FROM ({OUTCOMES.text}) o GROUP BY o.outcome
""")  # noqa: S608  (a fixed query)


def summary(event):
    """{"rows": n, "checked": n, and n for each outcome}, or None without a dataset."""
    if dataset(event) is None:
        return None
    counts = dict.fromkeys(OUTCOMES_ORDER, 0)
    counts.update(dict(db.session.execute(SUMMARY, {"event_id": event.id}).all()))
    rows = sum(counts.values())
    return {"rows": rows, "checked": rows - counts["not_checked"], **counts}


def collection(event):
    """The dataset as the walker's map reads it (ReferenceCollection), as JSON text."""
    described = dataset(event)
    features = []
    if described is not None:
        for row in db.session.execute(ROWS, {"event_id": event.id}).mappings():
            features.append({"type": "Feature", "id": row["id"],
                             "geometry": {"type": "Point", "coordinates": [round(row["lon"], 7),
                                                                           round(row["lat"], 7)]},
                             "properties": {"id": row["id"], "source_id": row["source_id"],
                                            "title": title(row["fields"], row["source_id"]),
                                            "tags": row_tags(described.preset, row["fields"]),
                                            "checked": row["checked"]}})
    return json.dumps({"type": "FeatureCollection", "preset": described and described.preset,
                       "kind": described and described.kind, "features": features})


@bp.get("/<slug>/reference.geojson")
def reference_collection(slug):
    event = load_event(slug)
    if not event.is_organised_by(current_organiser()) and current_participant(event) is None:
        raise Unauthorised("members_only", field="Authorization")
    return Response(collection(event), mimetype="application/geo+json")


# Every verdict of the event, by row, with what the review page shows of it.
VERDICTS = text("""
    SELECT s.id, s.reference_row_id, s.verdict, s.status::text AS status, s.tags, s.note,
           s.observed_at, p.pseudonym, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
           ST_Distance(s.geom::geography, r.geom::geography) AS distance,
           (SELECT count(*) FROM photo WHERE photo.submission_id = s.id) AS photos
    FROM submission s JOIN participant p ON p.id = s.participant_id
    JOIN reference_row r ON r.id = s.reference_row_id
    WHERE s.event_id = :event_id AND s.reference_row_id IS NOT NULL
    ORDER BY s.reference_row_id, s.id
""")


def verdicts_by_row(event):
    """{row id: [its verdicts, oldest first]}."""
    found = {}
    for verdict in db.session.execute(VERDICTS, {"event_id": event.id}).mappings():
        found.setdefault(verdict["reference_row_id"], []).append(verdict)
    return found


SETTLE = text("""
    UPDATE reference_row SET settled = :settled, settled_from_id = :verdict_id,
                             settled_by = :actor, settled_at = now()
    WHERE id = :row_id AND event_id = :event_id
""")
SETTLE_PROPOSED = text(f"""
    UPDATE reference_row r SET settled = o.outcome, settled_from_id = o.verdict_id,
                               settled_by = :actor, settled_at = now()
    FROM ({OUTCOMES.text}) o
    WHERE r.id = o.id AND r.settled IS NULL AND o.outcome <> 'not_checked'
""")  # noqa: S608  (a fixed query)
# A settlement that takes a verdict's position or tags needs one of the row's verdicts that
# was not rejected, and of a kind that says so.
VERDICTS_FOR = {"corrected": ("different", "moved", "confirmed"), "moved": ("moved",),
                "confirmed": ("confirmed", "different", "moved"), "missing": ("missing",)}


def settle(event, row_id, settled, verdict_id, actor):
    """Set a row's outcome as the organiser decides ("proposed": back to what the approved
    verdicts propose); raise Invalid or NotFound naming what is wrong. The caller commits."""
    row = db.session.get(ReferenceRow, row_id) if 0 < row_id < 2**63 else None
    if row is None or row.event_id != event.id:
        raise NotFound("no_such_reference_row", field="row")
    if settled == "proposed":
        row.settled = row.settled_from_id = row.settled_by = row.settled_at = None
        return
    if settled not in OUTCOMES_ORDER:
        raise Invalid("settle_outcome", field="settled")
    verdict = db.session.get(Submission, verdict_id) if verdict_id and 0 < verdict_id < 2**63 else None
    if verdict_id and (verdict is None or verdict.reference_row_id != row.id):
        raise NotFound("no_such_verdict", field="verdict")
    if verdict is not None and (verdict.status == Status.rejected
                                or verdict.verdict not in VERDICTS_FOR.get(settled, ())):
        raise Invalid("settle_verdict", field="verdict")
    if settled in ("corrected", "moved") and verdict is None:
        raise Invalid("settle_needs_verdict", field="verdict")
    db.session.execute(SETTLE, {"settled": settled, "verdict_id": verdict.id if verdict else None,
                                "actor": actor, "row_id": row.id, "event_id": event.id})


def settle_proposed(event, actor):
    """Settle every row not settled yet as its approved verdicts propose; return how many."""
    return db.session.execute(SETTLE_PROPOSED, {"event_id": event.id, "actor": actor}).rowcount
