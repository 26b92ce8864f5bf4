"""A participant's personal data: exported for them, erased on request (theirs or an
organiser's), and erased by itself once the event's retention period has passed.

Erasing keeps the points (position, tags, status: what went or goes to OpenStreetMap under the
ODbL stays there) as anonymous contributions, and removes what says who made them: the
pseudonym, the token, the notes, the photos and the signature of their feedback. One code path
for the organiser's page, the command line, the walker's own phone and the retention task.
"""

import io
import json
import logging
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Blueprint, current_app, jsonify, send_file
from sqlalchemy import Integer, Select, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from . import jobs
from .auth import participant_required
from .extensions import db
from .models import Event, Feedback, Participant, Photo, Submission, Team
from .photos import forget_unused_files

bp = Blueprint("privacy", __name__, url_prefix="/api/events")
log = logging.getLogger(__name__)

RETENTION_CRON = "17 * * * *"  # hourly, off the round hour


def erase_after(event):
    """When the event's personal data goes: `retention_days` after its end, else its start,
    else its creation (an aware datetime)."""
    since = event.ends_at or event.starts_at or event.created_at or datetime.now(UTC)
    return since + timedelta(days=event.retention_days)


def _time(moment):
    return moment.isoformat() if moment else None


POINTS = text("""
    SELECT s.id, s.client_id, s.preset, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, s.accuracy,
           s.tags, s.note, s.status::text AS status, s.review_reason, s.observed_at,
           s.received_at, s.reviewed_at
    FROM submission s WHERE s.participant_id = :id ORDER BY s.observed_at, s.id
""")


def _photo_name(photo):
    return f"photos/{photo.filename.rsplit('/', 1)[1]}"


def participant_data(participant):
    """Everything held about the participant, as JSON, and their photos."""
    event = db.session.get(Event, participant.event_id)
    team = db.session.get(Team, participant.team_id) if participant.team_id else None
    photos = db.session.scalars(db.select(Photo).join(Submission)
                                .where(Submission.participant_id == participant.id)
                                .order_by(Photo.id)).all()
    by_point = {}
    for photo in photos:
        by_point.setdefault(photo.submission_id, []).append(_photo_name(photo))
    points = [{"client_id": str(row.client_id), "preset": row.preset, "lat": row.lat,
               "lon": row.lon, "accuracy": row.accuracy, "tags": row.tags, "note": row.note,
               "status": row.status, "review_reason": row.review_reason,
               "observed_at": _time(row.observed_at), "received_at": _time(row.received_at),
               "reviewed_at": _time(row.reviewed_at), "photos": by_point.get(row.id, [])}
              for row in db.session.execute(POINTS, {"id": participant.id})]
    # Once erased, no answer is theirs any more (another walker may be called "anonyme-12").
    signed = [] if participant.erased_at else db.session.scalars(
        db.select(Feedback).where(Feedback.event_id == event.id,
                                  Feedback.signature == participant.pseudonym)
        .order_by(Feedback.created_at)).all()
    data = {
        "event": {"slug": event.slug, "name": event.name, "starts_at": _time(event.starts_at),
                  "ends_at": _time(event.ends_at), "licence": event.licence,
                  "privacy_contact": event.privacy_contact,
                  "personal_data_erased_after": _time(erase_after(event))},
        "participant": {"pseudonym": participant.pseudonym,
                        "consented_at": _time(participant.consented_at),
                        "team": team.name if team else None,
                        "feedback_at": _time(participant.feedback_at),
                        "erased_at": _time(participant.erased_at)},
        "points": points,
        "feedback": [{"learnt": answer.learnt, "improve": answer.improve,
                      "come_again": answer.come_again, "signature": answer.signature,
                      "created_at": _time(answer.created_at)} for answer in signed],
        "exported_at": _time(datetime.now(UTC)),
    }
    return data, photos


def export_participant(participant):
    """A zip of everything held about the participant: participant.json and photos/<sha>.<ext>."""
    data, photos = participant_data(participant)
    folder = Path(current_app.config["PHOTO_DIR"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("participant.json", json.dumps(data, ensure_ascii=False, indent=2))
        for photo in {photo.sha256: photo for photo in photos}.values():
            path = folder / photo.filename
            if path.is_file():  # a file lost on disk is left out, not a failed export
                archive.write(path, _photo_name(photo), compress_type=zipfile.ZIP_STORED)
    log.info("participant %d's data exported", participant.id)
    return out.getvalue()


IDS = [bindparam("ids", type_=ARRAY(Integer))]
# Each statement works on every participant given at once; the order matters: the signatures
# are found by the pseudonyms, which go last.
LOCK = text("""
    SELECT id FROM participant WHERE id = ANY(:ids) AND erased_at IS NULL ORDER BY id FOR UPDATE
""").bindparams(*IDS)
UNSIGN = text("""
    UPDATE feedback f SET signature = NULL FROM participant p
    WHERE p.id = ANY(:ids) AND f.event_id = p.event_id AND f.signature = p.pseudonym
""").bindparams(*IDS)
# One entry per point, saying what went (whether there was a note, how many photos), never
# what it was.
AUDIT = text("""
    INSERT INTO audit_entry (submission_id, organiser_id, actor, action, before, after)
    SELECT s.id, :organiser_id, :actor, 'erase',
           jsonb_build_object('note', s.note <> '',
                              'photos', (SELECT count(*) FROM photo WHERE submission_id = s.id)),
           jsonb_build_object('note', false, 'photos', 0)
    FROM submission s WHERE s.participant_id = ANY(:ids)
""").bindparams(*IDS)
DELETE_PHOTOS = text("""
    DELETE FROM photo USING submission s
    WHERE photo.submission_id = s.id AND s.participant_id = ANY(:ids)
    RETURNING photo.sha256, photo.media_type
""").bindparams(*IDS)
# Earlier audit entries keep each version's note (review.SNAPSHOT): emptied too.
FORGET_AUDITED_NOTES = text("""
    UPDATE audit_entry a
    SET before = CASE WHEN a.before ? 'note' THEN jsonb_set(a.before, '{note}', '""') ELSE a.before END,
        after = CASE WHEN a.after ? 'note' THEN jsonb_set(a.after, '{note}', '""') ELSE a.after END
    FROM submission s
    WHERE a.submission_id = s.id AND s.participant_id = ANY(:ids)
      AND (a.before ? 'note' OR a.after ? 'note')
""").bindparams(*IDS)
# A new version: a reviewer's page still showing the note must not save it back.
EMPTY_NOTES = text("""
    UPDATE submission SET note = '', version = version + 1 WHERE participant_id = ANY(:ids)
""").bindparams(*IDS)
# The skeleton has a newline, which no chosen pseudonym has: it never takes a walker's place in
# the event's unique index. The token hash is no SHA-256 (a ':' in it): no token matches it.
PSEUDONYMISE = text("""
    UPDATE participant
    SET pseudonym = 'anonyme-' || id, pseudonym_skeleton = E'erased\\n' || id,
        token_hash = 'erased:' || gen_random_uuid(), erased_at = now(), erased_by = :actor
    WHERE id = ANY(:ids)
""").bindparams(*IDS)


def erase(participants, actor, organiser_id=None):
    """Erase the personal data of `participants` (ids, or a select of ids): pseudonym, token,
    notes, photos, feedback signature; their points stay, anonymous. `actor` says who asked
    (an organiser's email, "walker", "retention"). Those already erased are skipped.

    Commits, then removes the photo files no other point uses (only once the rows are gone for
    good). Returns how many participants were erased."""
    wanted = list(db.session.scalars(participants) if isinstance(participants, Select)
                  else participants)
    ids = list(db.session.scalars(LOCK, {"ids": wanted})) if wanted else []
    if not ids:
        db.session.commit()
        return 0
    binds = {"ids": ids, "actor": actor[:300], "organiser_id": organiser_id}
    db.session.execute(UNSIGN, binds)
    db.session.execute(AUDIT, binds)
    removed = [Photo(sha256=row.sha256, media_type=row.media_type)
               for row in db.session.execute(DELETE_PHOTOS, binds)]
    for statement in (FORGET_AUDITED_NOTES, EMPTY_NOTES, PSEUDONYMISE):
        db.session.execute(statement, binds)
    db.session.commit()
    db.session.expire_all()  # loaded participants and points read their new values
    forget_unused_files(removed)
    log.info("%d participant(s) erased (%s)", len(ids), "retention" if actor == "retention"
             else "walker" if actor == "walker" else "organiser")
    return len(ids)


DUE = text("""
    SELECT p.id FROM participant p JOIN event e ON e.id = p.event_id
    WHERE p.erased_at IS NULL
      AND coalesce(e.ends_at, e.starts_at, e.created_at)
          + make_interval(days => e.retention_days) <= now()
""")
PURGE_JOBS = text("""
    DELETE FROM procrastinate_jobs j
    WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
      AND NOT EXISTS (SELECT FROM procrastinate_events e
                      WHERE e.job_id = j.id AND e.at > now() - make_interval(days => :days))
""")


def run_retention():
    """Erase the participants of every event past its retention period, and delete the jobs
    finished more than JOB_RETENTION_DAYS ago; returns (participants erased, jobs deleted)."""
    days = current_app.config.get("JOB_RETENTION_DAYS", 30)
    purged = db.session.execute(PURGE_JOBS, {"days": days}).rowcount
    db.session.commit()
    erased = erase(list(db.session.scalars(DUE)), "retention")
    return erased, purged


@jobs.task("retention", cron=RETENTION_CRON)
def retention_job(timestamp=None):
    """The periodic job (procrastinate passes the time it was due as `timestamp`)."""
    erased, purged = run_retention()
    log.info("retention: %d participant(s) erased, %d finished job(s) deleted", erased, purged)


@bp.get("/<slug>/me/data")
@participant_required
def my_data(event, participant):
    """The walker's own data, as a zip to download."""
    data = export_participant(db.session.get(Participant, participant.id))
    response = send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                         download_name=f"cartoparty-{event.slug}-my-data.zip", etag=False)
    response.headers["Cache-Control"] = "no-store"  # personal data: kept by no cache
    return response


@bp.delete("/<slug>/me")
@participant_required
def erase_me(event, participant):
    """Erase the walker's own personal data; their token stops working."""
    erase([participant.id], "walker")
    return jsonify({"erased": True})
