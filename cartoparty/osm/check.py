"""Checking an event against OpenStreetMap in the background: refresh its OSM data from Overpass
(if asked), then match every submission (conflate.match), as one job of the queue.

Each check is an `osm_check` row that organisers follow: queued, running (with its step),
succeeded (with the count per outcome) or failed (with the error). A failure changes no match:
the matches and the check's success are committed together, and osm/store.py keeps the previous OSM
data when a refresh fails. At most one check is queued or running per event."""

import logging
from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify, request
from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert

from ..accounts import event_organiser_required
from ..api import json_body, refuse_unknown_fields
from ..errors import CartopartyError, Invalid
from ..extensions import db
from ..jobs import defer, task
from ..models import Event, OsmCheck, OsmSnapshot
from . import conflate, store

bp = Blueprint("osmcheck", __name__, url_prefix="/api/organise")
log = logging.getLogger(__name__)

TASK = "osm_check"
ACTIVE = ("queued", "running")
OUTCOMES = ("new", "existing", "update", "ambiguous", "duplicate")
HISTORY = 10
# procrastinate's workers beat every 10 s: a job whose worker has been silent this long is dead.
WORKER_SILENCE = timedelta(minutes=1)


class NoOsmData(Invalid):
    """Matching was asked without a fetch, and the event has no OSM data to match against."""


def has_osm_data(event):
    """Whether the event has OSM data (fetched or imported) to match against."""
    return db.session.scalar(db.select(OsmSnapshot.fetched_at.is_not(None))
                             .where(OsmSnapshot.event_id == event.id)) or False


def active_check(event):
    """The event's check that is queued or running, or None."""
    return db.session.scalar(db.select(OsmCheck).where(OsmCheck.event_id == event.id,
                                                       OsmCheck.status.in_(ACTIVE)))


def request_check(event, requested_by, fetch=True, force=False):
    """Queue a check of the event (the caller commits); return (check, True), or (the check
    already queued or running, False). TooSoon when a fetch is asked, not forced, too early."""
    fail_dead_checks(event)
    if (check := active_check(event)) is not None:
        return check, False
    if fetch and not force:
        # checked when the check is asked for rather than minutes later, in the job
        store.refuse_if_too_soon(event)
    if not fetch and not has_osm_data(event):
        raise NoOsmData("no_osm_data",
                        field="fetch")
    # Two organisers asking at once: the unique index lets one insert, the other gets its check.
    check_id = db.session.scalar(
        insert(OsmCheck).values(event_id=event.id, fetch_osm=fetch, requested_by=requested_by[:300])
        .on_conflict_do_nothing(index_elements=["event_id"],
                                index_where=text("status IN ('queued', 'running')"))
        .returning(OsmCheck.id))
    if check_id is None:
        return active_check(event), False
    check = db.session.get(OsmCheck, check_id)
    check.job_id = defer(TASK, check_id=check_id, force=force)
    db.session.flush()
    return check, True


# A check whose job can no longer finish it: the job ended without saying so (a hard crash),
# was removed, or runs on a worker that stopped beating (killed, machine gone).
FAIL_DEAD = text("""
    UPDATE osm_check c SET status = 'failed', finished_at = now(),
        error = 'the worker stopped before the check finished; ask for a new check'
    WHERE c.event_id = :event_id AND c.status IN ('queued', 'running')
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
        WHERE j.id = c.job_id
          AND (j.status = 'todo' OR (j.status = 'doing' AND w.last_heartbeat > now() - :silence)))
""")


def fail_dead_checks(event):
    """Mark failed the event's checks that no worker will finish; return how many."""
    failed = db.session.execute(FAIL_DEAD, {"event_id": event.id, "silence": WORKER_SILENCE}).rowcount
    if failed:
        db.session.expire_all()  # checks already loaded are stale
    return failed


@task(TASK)
def run(check_id, force=False):
    """The job: fetch (if asked) and match, recording each step. A failure is recorded in the
    check; the expected ones (Overpass, too soon, no data) end the job quietly, the others are
    raised again, for procrastinate to mark the job failed and log the traceback."""
    check = _claim(check_id)
    if check is None:
        return  # failed as dead, or its event deleted, before a worker got to it
    event = db.session.get(Event, check.event_id)
    try:
        if check.fetch_osm:
            _step(check, "fetching OSM data")
            store.refresh_from_overpass(event, force=force)
        elif not has_osm_data(event):
            raise NoOsmData("no_osm_data")
        submissions = _to_match(event)
        _step(check, f"matching {_points(submissions)}")
        counts = conflate.match(event)
        check.status, check.counts, check.finished_at = "succeeded", counts, datetime.now(UTC)
        check.step = f"matched {_points(submissions)}"
        db.session.commit()
    except CartopartyError as error:
        db.session.rollback()
        _fail(check_id, error)
        log.warning("check %s of %s failed: %s", check_id, event.slug, error.message)
    except Exception as error:
        db.session.rollback()
        _fail(check_id, CartopartyError("check_crashed", kind=type(error).__name__))
        raise


def _points(count):
    return f"{count:,} submission{'s' * (count != 1)}"


def _claim(check_id):
    """The check, now running, if it was still queued; else None."""
    claimed = db.session.execute(
        update(OsmCheck).where(OsmCheck.id == check_id, OsmCheck.status == "queued")
        .values(status="running", started_at=func.now(), step="starting")
        .returning(OsmCheck.id)).scalar()
    db.session.commit()
    return db.session.get(OsmCheck, claimed) if claimed else None


def _step(check, step):
    """Say what the check is doing now, for the organisers who follow it."""
    check.step = step
    db.session.commit()


def _to_match(event):
    """How many submissions conflation will look at: all but the rejected ones."""
    return db.session.scalar(text(
        "SELECT count(*) FROM submission WHERE event_id = :event_id AND status <> 'rejected'"
        " AND verdict IS DISTINCT FROM 'missing'"),
        {"event_id": event.id})


def _fail(check_id, error):
    """Record why the check failed (its step stays where it failed)."""
    check = db.session.get(OsmCheck, check_id)
    check.status, check.error, check.finished_at = "failed", error.message, datetime.now(UTC)
    check.error_detail = error.detail()
    db.session.commit()


def check_json(check):
    """A check as organisers see it."""
    return {"id": check.id, "status": check.status, "step": check.step, "fetch": check.fetch_osm,
            "error": check.error, "error_detail": check.error_detail, "counts": check.counts,
            "requested_by": check.requested_by,
            **{name: getattr(check, name).isoformat() if getattr(check, name) else None
               for name in ("queued_at", "started_at", "finished_at")}}


def outcome_counts(event):
    """How many of the event's submissions (rejected ones aside) have each outcome now, and how
    many have none yet (`unmatched`)."""
    rows = db.session.execute(text("""
        SELECT coalesce(m.outcome, 'unmatched') AS outcome, count(*) AS n
        FROM submission s LEFT JOIN match m ON m.submission_id = s.id
        WHERE s.event_id = :event_id AND s.status <> 'rejected' AND s.verdict IS DISTINCT FROM 'missing'
        GROUP BY 1"""), {"event_id": event.id}).all()
    return {name: 0 for name in (*OUTCOMES, "unmatched")} | {row.outcome: row.n for row in rows}


def overview(event):
    """The event's OSM data, its latest checks (newest first) and its outcome counts."""
    checks = db.session.scalars(db.select(OsmCheck).where(OsmCheck.event_id == event.id)
                                .order_by(OsmCheck.id.desc()).limit(HISTORY))
    return {"snapshot": store.snapshot_json(event), "checks": [check_json(c) for c in checks],
            "outcomes": outcome_counts(event)}


def _flag(body, name, default):
    value = body.get(name, default)
    if type(value) is not bool:
        raise Invalid("boolean", field=name, name=name)
    return value


@bp.get("/<slug>/osm")
@event_organiser_required
def show(event, organiser):
    if fail_dead_checks(event):
        db.session.commit()
    return jsonify(overview(event))


@bp.post("/<slug>/osm/check")
@event_organiser_required
def ask(event, organiser):
    # No body at all means the defaults (form fields may already have been read by CSRF).
    body = json_body() if request.content_length or request.mimetype else {}
    refuse_unknown_fields(body, {"fetch", "force"})
    fetch, force = _flag(body, "fetch", True), _flag(body, "force", False)
    check, queued = request_check(event, organiser.email, fetch=fetch, force=force)
    db.session.commit()
    return jsonify({"check": check_json(check)}), 202 if queued else 200
