"""Upload of an event's plan of OSM changes (osm/changes.py) to the OSM API: each change sent
once and only once, and nothing of another mapper's work overwritten.

Every changeset is written to the log (table osm_changeset_log) before anything is sent: a copy
of the changes it holds, the payload's digest, its placeholders. Its states:

    planned → opened (OSM gave its id) → sending (the upload left; its fate unknown)
            → applied (the diffResult, or reading back, says what OSM made) → closed

One upload is one transaction on OSM's side, all or nothing, but a dropped connection says
nothing about which. So a changeset found `sending` — after a time-out, a 5xx, a lock, or a
worker killed — is read back before anything is sent again: GET /changeset/N (changes_count is 0
or all, with one upload per changeset), then its download, matching our creates by position and
tags and our modifies by id and version. The faults the API reports are handled each its own
way (see `_send`); the hourly limit pauses the upload, which resumes by itself.
"""

import hashlib
import io
import logging
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import text

from ..errors import CartopartyError, Conflict
from ..extensions import db
from ..jobs import defer, task
from ..models import OsmChangesetLog, OsmUpload
from . import api, changes, osmchange

log = logging.getLogger(__name__)

TASK = "osm_upload"
ACTIVE = ("queued", "running", "paused")
PENDING = ("planned", "opened", "sending", "applied")
VERSION_MISMATCH = re.compile(r"Version mismatch: Provided \d+, server had: \d+ of (\w+) (\d+)")
GONE = re.compile(r"The (node|way|relation) with the id (\d+) has already been deleted")
STILL_USED = re.compile(r"Precondition failed: (Node|Way|Relation) (\d+)")
# How long OSM counts a changeset against the account's hourly limit.
RATE_WINDOW = timedelta(hours=1)
EARLIEST_RETRY = timedelta(minutes=5)
READ_BACK_TRIES = 10


class Paused(Exception):
    """OSM's hourly limit: the upload waits until `resume_at`."""

    def __init__(self, resume_at):
        super().__init__(resume_at)
        self.resume_at = resume_at


class Stopped(Exception):
    """The upload cannot go on without a person: the token was refused, or OSM says no."""

    def __init__(self, error):
        super().__init__(error.message)
        self.error = error


def _config():
    config = current_app.config
    return config["OSM_API_URL"], config["OSM_API_TIMEOUT"], config.get("OSM_READBACK_DELAY", 2.5)


def active_upload(event):
    return db.session.scalar(db.select(OsmUpload).where(
        OsmUpload.event_id == event.id, OsmUpload.status.in_(ACTIVE)))


def request_upload(event, organiser, actor):
    """Queue an upload of the event's plan under `organiser`'s linked OSM account (or return
    the one already queued, running or paused). The caller commits."""
    from .account import account_of

    current = active_upload(event)
    if current is not None:
        return current, False
    plan = changes.plan_of(event)
    if plan.built_at is None:
        raise Conflict("plan_not_built")
    if plan.base != "api":
        raise Conflict("osc_needs_fresh_base")
    if account_of(organiser.id) is None:
        raise Conflict("osm_account_not_linked")
    if not changes.ready_changes(event) and not pending_logs(event):
        raise Conflict("nothing_to_upload")
    upload = OsmUpload(event_id=event.id, organiser_id=organiser.id, requested_by=actor,
                       status="queued", step="", counts={})
    db.session.add(upload)
    db.session.flush()
    upload.job_id = defer(TASK, upload_id=upload.id)
    return upload, True


class WaitForOsm(Exception):
    """Raised by the job of a paused upload, for procrastinate to run it again at `resume_at`."""

    def __init__(self, resume_at):
        super().__init__(f"OSM's hourly limit: again at {resume_at.isoformat()}")
        self.resume_at = resume_at


def _retry_when_osm_allows():
    """procrastinate's retry strategy of the upload job: a paused upload runs again when OSM
    should take changes again; any other failure is not retried."""
    from procrastinate import BaseRetryStrategy, RetryDecision

    class WhenOsmAllows(BaseRetryStrategy):
        def get_retry_decision(self, *, exception, job):
            if isinstance(exception, WaitForOsm):
                return RetryDecision(retry_at=exception.resume_at)
            return None

    return WhenOsmAllows()


@task(TASK, retry=_retry_when_osm_allows)
def upload_job(upload_id):
    """The job: run the upload with the requesting organiser's token."""
    from .account import token_for

    upload = db.session.get(OsmUpload, upload_id)
    if upload is None or upload.status not in ACTIVE:
        return
    token = token_for(upload.organiser_id) if upload.organiser_id else None
    if token is None:
        _finish(upload, "stopped", CartopartyError("osm_account_not_linked").detail())
        return
    run(upload, token)
    if upload.status == "paused":
        raise WaitForOsm(upload.resume_at)


def run(upload, token):
    """Send the event's unfinished changesets (from the log), then its ready changes, committing
    after each step; the upload ends done, paused (hourly limit), stopped or failed."""
    event_id = upload.event_id
    upload.status, upload.started_at, upload.resume_at = "running", datetime.now(UTC), None
    db.session.commit()
    try:
        while True:
            entry = _next_entry(upload)
            if entry is None:
                break
            _advance(upload, entry, token)
        _finish(upload, "done")
    except Paused as pause:
        upload.status, upload.resume_at = "paused", pause.resume_at
        upload.error_detail = CartopartyError(
            "osm_rate_limited", left=_left(event_id),
            at=pause.resume_at.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
            .strftime("%H:%M")).detail()
        upload.step = "paused"
        db.session.commit()
    except Stopped as stop:
        _finish(upload, "stopped", stop.error.detail())
    return upload


def _finish(upload, status, detail=None):
    upload.status, upload.error_detail, upload.finished_at = status, detail, datetime.now(UTC)
    upload.step = status
    db.session.commit()


def _left(event_id):
    """Changes still to send: those of unfinished changesets, and the plan's."""
    return db.session.scalar(text("""
        SELECT (SELECT count(*) FROM osm_change WHERE event_id = :id AND action IN ('create', 'modify'))
             + (SELECT coalesce(sum(jsonb_array_length(changes)), 0) FROM osm_changeset_log
                WHERE event_id = :id AND state IN ('planned', 'opened', 'sending'))
    """), {"id": event_id})


def pending_logs(event):
    return db.session.scalars(db.select(OsmChangesetLog).where(
        OsmChangesetLog.event_id == event.id, OsmChangesetLog.state.in_(PENDING))
        .order_by(OsmChangesetLog.id)).all()


def _next_entry(upload):
    """The changeset to work on: the first the log left unfinished (however the run before
    ended); when there is none, the plan's ready changes are cut into changesets and all logged
    at once, before anything is sent."""
    first = db.select(OsmChangesetLog.id).where(
        OsmChangesetLog.event_id == upload.event_id, OsmChangesetLog.state.in_(PENDING)
    ).order_by(OsmChangesetLog.id).limit(1)
    entry_id = db.session.scalar(first)
    if entry_id is None and _log_plan(upload):
        entry_id = db.session.scalar(first)
    return db.session.get(OsmChangesetLog, entry_id) if entry_id is not None else None


def _log_plan(upload):
    """Log the plan's ready changes as changesets (taken out of the plan: from now on the log is
    where they live); how many changesets."""
    from ..models import Event

    event = db.session.get(Event, upload.event_id)
    plan = changes.plan_of(event)
    sets = changes.changesets(event, plan)
    lang = current_app.config.get("OSM_LOCALE", "fr")
    for changeset in sets:
        copied = [_copy(change) for change in changeset]
        out = io.BytesIO()
        placeholders = osmchange.write_osc([_Row(item) for item in copied], out)
        db.session.add(OsmChangesetLog(
            upload_id=upload.id, event_id=event.id, changes=copied,
            tags=changes.changeset_tags(event, plan, changeset, lang),
            payload_sha256=hashlib.sha256(out.getvalue()).hexdigest(),
            placeholders={str(number): change.key for number, change in placeholders},
            state="planned"))
    db.session.execute(text("DELETE FROM osm_change WHERE event_id = :id AND key = ANY(:keys)"),
                       {"id": event.id, "keys": [c.key for changeset in sets for c in changeset]})
    db.session.commit()
    return len(sets)


def _copy(change):
    return {"key": change.key, "action": change.action, "osm_type": change.osm_type,
            "osm_id": change.osm_id, "base_version": change.base_version, "lat": change.lat,
            "lon": change.lon, "tags_after": change.tags_after, "element": change.element,
            "diff": change.diff, "submission_ids": list(change.submission_ids)}


class _Row:
    """A logged change as the writers read it (attributes)."""

    def __init__(self, item):
        self.__dict__.update(item)


def _payload(entry, changeset_id):
    out = io.BytesIO()
    osmchange.write_osc([_Row(item) for item in entry.changes], out, changeset_id=changeset_id)
    return out.getvalue()


def _advance(upload, entry, token):
    """One step of one changeset, committed: open it, send it, read it back, close it."""
    url, timeout, _ = _config()
    upload.step = f"changeset {entry.id}: {entry.state}"
    if entry.state == "planned":
        try:
            entry.changeset_id = api.create_changeset(url, token, entry.tags, timeout=timeout)
        except api.OsmApiError as error:
            _refused(error)
            raise Stopped(error) from None
        entry.state = "opened"
    elif entry.state == "opened":
        _send(upload, entry, token)
    elif entry.state == "sending":
        _read_back(entry, token)
    elif entry.state == "applied":
        try:
            api.close_changeset(url, token, entry.changeset_id, timeout=timeout)
        except api.OsmApiError as error:
            # 409: closed already (an idle hour, or by OSM). Anything else but a refused token:
            # what it holds is in OSM, and OSM closes it by itself after an idle hour.
            _refused(error)
            if error.http_status != 409:
                log.warning("changeset %s not closed (%s): OSM closes it after an idle hour",
                            entry.changeset_id, error.code)
        entry.state, entry.closed_at = "closed", datetime.now(UTC)
    db.session.commit()


def _refused(error):
    """401/403: the token no longer serves (revoked, scope missing, terms, account blocked)."""
    if error.http_status in (401, 403):
        raise Stopped(CartopartyError("osm_token_refused", reason=error.params.get("reason", "")))


def _send(upload, entry, token):
    """Upload the changeset's osmChange in one request, and handle what OSM answers."""
    url, timeout, _ = _config()
    payload = _payload(entry, entry.changeset_id)
    entry.state, entry.sent_at = "sending", datetime.now(UTC)
    db.session.commit()                  # from here on, a cut run reads back before resending
    try:
        # An upload takes longer to apply than a read: twice the time-out of one request.
        result = api.upload(url, token, entry.changeset_id, payload, timeout=2 * timeout)
    except api.OsmApiError as error:
        _upload_failed(upload, entry, token, error)
        return
    _applied(entry, result)


def _upload_failed(upload, entry, token, error):
    status, reason = error.http_status, error.params.get("reason", "")
    if status is None or status >= 500 or "currently locked" in reason:
        _read_back(entry, token)         # maybe applied: read, never resend blindly
    elif status == 429:
        entry.state = "opened"           # nothing applied (atomic); the same changeset later
        db.session.commit()
        raise Paused(_resume_at(entry))
    elif status == 409 and "was closed at" in reason:
        _again(entry)                    # nothing applied: a new changeset
    elif status == 409 and (match := VERSION_MISMATCH.search(reason)):
        _rebase(entry, token)
    elif status in (410, 412) and (match := GONE.search(reason) or STILL_USED.search(reason)):
        _held_back(entry, match.group(1).lower(), int(match.group(2)), reason)
    elif status == 413 and len(entry.changes) > 1:
        _split(upload, entry, token)
    else:
        _refused(error)
        entry.state, entry.error_detail = "failed", error.detail()
        _restore(entry, entry.changes)
        db.session.commit()
        raise Stopped(error)


def _resume_at(entry):
    """When OSM should count fewer changes for the account: an hour after the earliest of our
    uploads in the last hour (OSM counts by changeset opening, a little earlier), and not sooner
    than in five minutes."""
    now = datetime.now(UTC)
    opened = db.session.scalar(text("""
        SELECT min(sent_at) FROM osm_changeset_log WHERE event_id = :id AND sent_at > :since
    """), {"id": entry.event_id, "since": now - RATE_WINDOW})
    return max((opened or now) + RATE_WINDOW, now + EARLIEST_RETRY)


def _read_back(entry, token):
    """After an upload whose fate is unknown: what does OSM hold for this changeset? Nothing
    yet may mean an upload still being applied, so the changeset is closed first (refused with
    "locked" while an upload runs): once closed, what it holds is final."""
    url, timeout, delay = _config()
    import time

    try:
        for _ in range(READ_BACK_TRIES):
            time.sleep(delay)   # the API's replicas catch up (iD waits 2.5 s)
            is_open, count = api.changeset_state(url, token, entry.changeset_id, timeout=timeout)
            if count or not is_open:
                break
            try:
                api.close_changeset(url, token, entry.changeset_id, timeout=timeout)
            except api.OsmApiError as error:
                _refused(error)
                if "currently locked" in error.params.get("reason", ""):
                    time.sleep(max(delay, 1))
                    continue
                if error.http_status != 409:
                    raise
        else:
            raise Stopped(CartopartyError("osm_changeset_locked", changeset=str(entry.changeset_id)))
        if count == 0:
            # Not applied, and the changeset closed: a new one takes it.
            entry.state, entry.changeset_id = "planned", None
            db.session.commit()
            return
        made = api.changeset_elements(url, token, entry.changeset_id, timeout=timeout)
    except api.OsmApiError as error:
        _refused(error)
        raise Stopped(error) from None    # cannot tell yet: the next run reads back again
    _applied(entry, _match_download(entry, made))


def _match_download(entry, made):
    """The diffResult an upload would have given, rebuilt from the changeset's download: creates
    matched by position (7 decimals) and tags, modifies by id and version base + 1."""
    created = {}
    for action, element in made:
        if action == "create" and element.osm_type == "node":
            spot = (round(element.lat, 7), round(element.lon, 7), tuple(sorted(element.tags.items())))
            created.setdefault(spot, []).append(element)
    modified = {element.key: element for action, element in made if action == "modify"}
    result = {}
    for number, key in entry.placeholders.items():
        item = next(i for i in entry.changes if i["key"] == key)
        spot = (round(item["lat"], 7), round(item["lon"], 7), tuple(sorted(item["tags_after"].items())))
        if created.get(spot):
            element = created[spot].pop(0)
            result[("node", int(number))] = (element.osm_id, element.version)
    for item in entry.changes:
        if item["action"] == "modify":
            element = modified.get((item["osm_type"], item["osm_id"]))
            if element is not None and element.version == item["base_version"] + 1:
                result[(item["osm_type"], item["osm_id"])] = (element.osm_id, element.version)
    return result


def _applied(entry, result):
    """Record what OSM made of each change: on its submissions (the point now links to its
    element) and in the log; then the changeset is closed on the next step."""
    applied, now = {}, datetime.now(UTC)
    by_placeholder = {key: int(number) for number, key in entry.placeholders.items()}
    for item in entry.changes:
        old = (("node", by_placeholder[item["key"]]) if item["action"] == "create"
               else (item["osm_type"], item["osm_id"]))
        if old in result:
            new_id, new_version = result[old]
            applied[item["key"]] = [old[0], new_id, new_version]
    missing = [item for item in entry.changes if item["key"] not in applied]
    if missing:
        # Read back, yet not all there: OSM made part of it, which one upload cannot do.
        log.error("changeset %s: %d of %d changes not found after the upload",
                  entry.changeset_id, len(missing), len(entry.changes))
    db.session.execute(text("""
        INSERT INTO submission_osm (submission_id, osm_type, osm_id, osm_version, changeset,
                                    uploaded_version, uploaded_at)
        SELECT s.id, a.osm_type, a.osm_id, a.version, :changeset, s.version, :now
        FROM unnest(CAST(:ids AS bigint[]), CAST(:types AS text[]), CAST(:osm_ids AS bigint[]),
                    CAST(:versions AS int[])) AS a(id, osm_type, osm_id, version)
        JOIN submission s ON s.id = a.id
        ON CONFLICT (submission_id) DO UPDATE SET
            (osm_type, osm_id, osm_version, changeset, uploaded_version, uploaded_at)
            = (excluded.osm_type, excluded.osm_id, excluded.osm_version, excluded.changeset,
               excluded.uploaded_version, excluded.uploaded_at)
    """), {"changeset": entry.changeset_id, "now": now, **_columns(entry, applied)})
    entry.applied, entry.state = applied, "applied"
    if missing:
        _restore(entry, missing)
    db.session.commit()


def _columns(entry, applied):
    rows = [(sid, *applied[item["key"]]) for item in entry.changes if item["key"] in applied
            for sid in item["submission_ids"]]
    return {"ids": [r[0] for r in rows], "types": [r[1] for r in rows],
            "osm_ids": [r[2] for r in rows], "versions": [r[3] for r in rows]}


def _again(entry):
    """The changeset was closed before our upload reached it: nothing applied, a new one."""
    entry.state, entry.changeset_id = "planned", None
    db.session.commit()


def _restore(entry, items):
    """Put changes back into the plan (they were taken out when logged), for review or a
    later changeset."""
    from ..models import OsmChange

    for item in items:
        db.session.execute(text("DELETE FROM osm_change WHERE event_id = :id AND key = :key"),
                           {"id": entry.event_id, "key": item["key"]})
        db.session.add(OsmChange(
            event_id=entry.event_id, key=item["key"], action=item["action"],
            osm_type=item["osm_type"], osm_id=item["osm_id"], base_version=item["base_version"],
            lat=item["lat"], lon=item["lon"], tags_before={}, tags_after=item["tags_after"],
            diff=item["diff"], conflicts={}, element=item["element"],
            submission_ids=item["submission_ids"], reason=item.get("reason")))


def _rebase(entry, token):
    """409 version mismatch: someone edited an element since the plan was built. Nothing was
    applied; the plan is built again (the elements read again, the three-way merge run again),
    what still applies goes in the next changeset, the clashes go back to review."""
    from ..models import Event

    entry.state = "failed"
    entry.error_detail = {"code": "osm_version_mismatch", "params": {}}
    _restore(entry, entry.changes)
    db.session.flush()
    changes.build(db.session.get(Event, entry.event_id), "upload")
    _close_quietly(entry, token)
    db.session.commit()


def _held_back(entry, osm_type, osm_id, reason):
    """410/412: an element was deleted, or is still used, since: that change goes back to review
    with OSM's reason; the others are sent again in this changeset."""
    keep, back = [], []
    for item in entry.changes:
        touches = (item["osm_type"], item["osm_id"]) == (osm_type, osm_id) or (
            item["element"] and osm_id in (item["element"].get("nodes") or []))
        (back if touches else keep).append(item)
    if not back:
        back, keep = entry.changes, []
    for item in back:
        item["reason"] = {"code": "osm_refused", "reason": reason[:200]}
    _restore(entry, back)
    for item in back:
        db.session.execute(text("""
            UPDATE osm_change SET action = 'held' WHERE event_id = :id AND key = :key
        """), {"id": entry.event_id, "key": item["key"]})
    entry.changes = keep
    entry.placeholders = {n: k for n, k in entry.placeholders.items() if any(
        i["key"] == k for i in keep)}
    entry.state = "opened" if keep else "failed"
    db.session.commit()


def _split(upload, entry, token):
    """413 (the changeset's area or the payload too big): two smaller changesets instead."""
    half = len(entry.changes) // 2
    for part in (entry.changes[:half], entry.changes[half:]):
        rows = [_Row(item) for item in part]
        out = io.BytesIO()
        placeholders = osmchange.write_osc(rows, out)
        db.session.add(OsmChangesetLog(
            upload_id=upload.id, event_id=entry.event_id, changes=part, tags=entry.tags,
            payload_sha256=hashlib.sha256(out.getvalue()).hexdigest(),
            placeholders={str(n): c.key for n, c in placeholders}, state="planned"))
    entry.state = "failed"
    entry.error_detail = {"code": "osm_changeset_too_big", "params": {}}
    _close_quietly(entry, token)
    db.session.commit()


def _close_quietly(entry, token):
    url, timeout, _ = _config()
    try:
        api.close_changeset(url, token, entry.changeset_id, timeout=timeout)
    except api.OsmApiError:
        pass    # it closes by itself after an idle hour


def uploaded_counts(event):
    """Points added to OSM and points that improved an existing feature, and the changesets."""
    row = db.session.execute(text("""
        SELECT count(*) FILTER (WHERE m.outcome = 'new'), count(*) FILTER (WHERE m.outcome <> 'new'),
               coalesce(array_agg(DISTINCT u.changeset), '{}')
        FROM submission s JOIN submission_osm u ON u.submission_id = s.id
        LEFT JOIN match m ON m.submission_id = s.id
        WHERE s.event_id = :id
    """), {"id": event.id}).one()
    return {"added": row[0], "improved": row[1], "changesets": sorted(row[2])}


def changesets_of(upload):
    """OSM's ids of the changesets an upload sent, in order."""
    return db.session.scalars(db.select(OsmChangesetLog.changeset_id).where(
        OsmChangesetLog.upload_id == upload.id, OsmChangesetLog.state.in_(("applied", "closed")))
        .order_by(OsmChangesetLog.id)).all()
