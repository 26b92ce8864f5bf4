"""The OSM changes page of an event (/organise/<slug>/osm-changes): the plan's counts, a map and
the per-tag diff of each item, the conflicts to settle, items to hold back, the changeset tags,
and the files (osmChange, JOSM, GeoJSON preview) — with a JOSM remote-control link to a
short-lived signed URL, since JOSM has no session cookie."""

import io
from urllib.parse import quote, urlencode

from flask import Blueprint, current_app, redirect, request, send_file, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import text

from ..accounts import event_organiser_required
from ..errors import CartopartyError, Conflict, NotFound
from ..extensions import db
from ..i18n import language
from ..links import external_url
from ..models import Event
from ..organise import render
from . import changes, upload

bp = Blueprint("osmchanges", __name__, url_prefix="/organise")

SHOWN_AT_MOST = 300
JOSM_LINK_SECONDS = 600
JOSM_REMOTE = "http://127.0.0.1:8111/import"
MEDIA_TYPES = {"osc": "application/xml", "josm": "application/xml",
               "osm-preview": "application/geo+json"}

ITEMS = text("""
    SELECT id, key, action, osm_type, osm_id, base_version, lat, lon, diff, conflicts,
           submission_ids, reason, held_by,
           EXISTS (SELECT 1 FROM jsonb_each(c.conflicts) AS x WHERE x.value ->> 'choice' IS NULL)
               AS unsettled
    FROM osm_change c WHERE event_id = :id AND action = :action
    ORDER BY unsettled DESC, key LIMIT :limit
""")
# The plan is out of date once a point was reviewed or matched again after it was built.
CHANGED_SINCE = text("""
    SELECT greatest(max(s.reviewed_at), max(m.matched_at)) > :built_at
    FROM submission s LEFT JOIN match m ON m.submission_id = s.id WHERE s.event_id = :id
""")


def _signer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="josm-download")


def _changeset(event, number):
    """Changeset `number` (from 1) of the event's plan, or NotFound."""
    plan = changes.plan_of(event)
    if plan.built_at is None:
        raise Conflict("plan_not_built")
    sets = changes.changesets(event, plan, diff=False)
    if not 1 <= number <= len(sets):
        raise NotFound("changeset_not_found", field="changeset", n=len(sets))
    return plan, sets[number - 1]


def _send(event, fmt, number, lang):
    plan, changeset = _changeset(event, number)
    out = io.BytesIO()
    changes.write_file(event, plan, fmt, changeset, out, lang)
    out.seek(0)
    name = f"{event.slug}-{number}{changes.FORMATS[fmt]}"
    return send_file(out, mimetype=MEDIA_TYPES[fmt], as_attachment=True, download_name=name)


def josm_url(event, plan, number):
    """The remote-control link that makes a running JOSM load changeset `number`."""
    token = _signer().dumps([event.id, number, plan.built_at.isoformat()])
    file_url = external_url("osmchanges.josm_download", token=token)
    layer = f"{event.name} {number}"[:100]
    # `url` must come last: JOSM takes everything after it as the URL.
    query = urlencode({"new_layer": "true", "layer_name": layer})
    return f"{JOSM_REMOTE}?{query}&url={quote(file_url, safe='')}"


def _upload_context(event, organiser):
    from ..models import OsmUpload
    from .account import account_of

    last = db.session.scalar(db.select(OsmUpload).where(OsmUpload.event_id == event.id)
                             .order_by(OsmUpload.id.desc()).limit(1))
    return {"osm_account": account_of(organiser.id),
            "oauth_configured": bool(current_app.config["OSM_OAUTH_CLIENT_ID"]),
            "last_upload": last, "uploaded": upload.uploaded_counts(event),
            "upload_changesets": upload.changesets_of(last) if last else [],
            "osm_site": current_app.config["OSM_AUTH_URL"],
            # The page follows an upload: often while it runs, now and then while it waits.
            "refresh": {"queued": 5, "running": 5, "paused": 60}.get(last.status) if last else None}


def _page(event, organiser, status=200, error=None):
    plan = changes.plan_of(event)
    lang = language()
    counts = changes.summary(event)
    sections = {action: db.session.execute(ITEMS, {"id": event.id, "action": action,
                                                   "limit": SHOWN_AT_MOST}).mappings().all()
                for action in ("modify", "create", "held")}
    sets, stale = [], False
    if plan.built_at is not None:
        stale = bool(db.session.scalar(CHANGED_SINCE, {"id": event.id, "built_at": plan.built_at}))
        for number, changeset in enumerate(changes.changesets(event, plan, diff=False), start=1):
            sets.append({"number": number, "count": len(changeset),
                         "creates": sum(c.action == "create" for c in changeset),
                         "tags": changes.changeset_tags(event, plan, changeset, lang),
                         "josm": josm_url(event, plan, number)})
    box = db.session.execute(text(
        "SELECT ST_YMin(zone), ST_XMin(zone), ST_YMax(zone), ST_XMax(zone) FROM event WHERE id = :id"),
        {"id": event.id}).one()
    return render("organise/osm_changes.html", status, event=event, plan=plan, counts=counts,
                  bounds=[[box[0], box[1]], [box[2], box[3]]], **_upload_context(event, organiser),
                  sections=sections, changesets=sets, stale=stale, error=error,
                  shown_at_most=SHOWN_AT_MOST, position=changes.POSITION)


@bp.get("/<slug>/osm-changes")
@event_organiser_required
def page(event, organiser):
    return _page(event, organiser)


def _act(event, organiser, action):
    """Run a change of the plan from a form; on a refusal show the page with the reason."""
    try:
        action()
        db.session.commit()
    except CartopartyError as error:
        db.session.rollback()
        return _page(event, organiser, error.status, error.text(language()))
    return redirect(url_for("osmchanges.page", slug=event.slug, _anchor=request.form.get("back", "")))


@bp.post("/<slug>/osm-changes/build")
@event_organiser_required
def build(event, organiser):
    return _act(event, organiser, lambda: changes.build(event, organiser.email))


@bp.post("/<slug>/osm-changes/settings")
@event_organiser_required
def settings(event, organiser):
    return _act(event, organiser, lambda: changes.update_settings(changes.plan_of(event), request.form))


@bp.post("/<slug>/osm-changes/<int:change_id>/settle")
@event_organiser_required
def settle(event, organiser, change_id):
    return _act(event, organiser, lambda: changes.settle(event, change_id, request.form.get("key", ""),
                                              request.form.get("choice"), organiser.email))


@bp.post("/<slug>/osm-changes/<int:change_id>/hold")
@event_organiser_required
def hold(event, organiser, change_id):
    return _act(event, organiser, lambda: changes.hold(event, change_id, request.form.get("held") == "1",
                                            organiser.email))


@bp.post("/<slug>/osm-changes/upload")
@event_organiser_required
def start_upload(event, organiser):
    return _act(event, organiser, lambda: upload.request_upload(event, organiser, organiser.email))


@bp.get("/<slug>/osm-changes/<int:number>.osc")
@event_organiser_required
def osc(event, organiser, number):
    return _send(event, "osc", number, language())


@bp.get("/<slug>/osm-changes/<int:number>.osm")
@event_organiser_required
def josm(event, organiser, number):
    return _send(event, "josm", number, language())


@bp.get("/<slug>/osm-changes/preview.geojson")
@event_organiser_required
def preview(event, organiser):
    out = io.BytesIO()
    changes.write_file(event, changes.plan_of(event), "osm-preview",
                       changes.ready_changes(event), out, language())
    out.seek(0)
    return send_file(out, mimetype=MEDIA_TYPES["osm-preview"],
                     download_name=f"{event.slug}-osm-preview.geojson")


@bp.get("/josm/<token>")
def josm_download(token):
    """The JOSM file behind a remote-control link: no session (JOSM has none), a signed token
    that expires in ten minutes and only while the plan is the one it was made for."""
    try:
        event_id, number, built_at = _signer().loads(token, max_age=JOSM_LINK_SECONDS)
    except (BadSignature, ValueError, TypeError):
        raise NotFound("josm_link_expired") from None
    event = db.session.get(Event, event_id)
    plan = db.session.get(changes.OsmPlan, event_id) if event else None
    if plan is None or plan.built_at is None or plan.built_at.isoformat() != built_at:
        raise NotFound("josm_link_expired")
    return _send(event, "josm", number, language())
