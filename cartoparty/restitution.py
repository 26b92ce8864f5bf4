"""The restitution: what the party found and how good the data is, on a public page
(`/r/<slug>`) once the organisers publish it, and the organisers' page to preview, publish and
read the participants' feedback.

Every figure is counted by PostgreSQL in a few grouped queries, whatever the number of points."""

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from . import feedback
from .accounts import event_organiser_required
from .auth import current_organiser, load_event
from .errors import Invalid, NotFound
from .extensions import db
from .i18n import language
from .links import external_url
from .organise import render
from .osm.upload import uploaded_counts
from .presets import all_presets
from .reference.checks import summary as reference_summary
from .reference.export import changes as reference_changes
from .walker import LEAFLET_VERSION

bp = Blueprint("restitution", __name__)

# Each point once, with what the figures need; then every breakdown in one grouped pass.
# A point is complete when it has a value for every field its preset asks about.
FIGURES = text("""
    WITH fields AS (
        SELECT key AS preset, ARRAY(SELECT jsonb_array_elements_text(value)) AS keys
        FROM jsonb_each(:fields)
    ), photos AS (
        SELECT photo.submission_id, count(*) AS n
        FROM photo JOIN submission s ON s.id = photo.submission_id
        WHERE s.event_id = :event_id GROUP BY photo.submission_id
    ), point AS (
        SELECT s.preset, s.participant_id, p.pseudonym, p.team_id, t.name AS team,
               s.status::text AS status, s.status = 'approved' AS ok, s.accuracy,
               s.tags ?& coalesce(f.keys, '{}') AS complete, coalesce(ph.n, 0) AS photos,
               m.outcome
        FROM submission s JOIN participant p ON p.id = s.participant_id
        LEFT JOIN team t ON t.id = p.team_id
        LEFT JOIN fields f ON f.preset = s.preset
        LEFT JOIN photos ph ON ph.submission_id = s.id
        LEFT JOIN match m ON m.submission_id = s.id
        WHERE s.event_id = :event_id
    )
    SELECT GROUPING(preset, team_id, participant_id) AS unused, preset, team_id, team,
           participant_id, pseudonym,
           count(*) AS recorded,
           count(*) FILTER (WHERE ok) AS approved,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'rejected') AS rejected,
           count(*) FILTER (WHERE ok AND complete) AS complete,
           count(*) FILTER (WHERE ok AND photos > 0) AS with_photo,
           coalesce(sum(photos) FILTER (WHERE ok), 0) AS photos,
           count(*) FILTER (WHERE ok AND accuracy <= 5) AS accuracy_5,
           count(*) FILTER (WHERE ok AND accuracy > 5 AND accuracy <= 10) AS accuracy_10,
           count(*) FILTER (WHERE ok AND accuracy > 10 AND accuracy <= 20) AS accuracy_20,
           count(*) FILTER (WHERE ok AND accuracy > 20 AND accuracy <= 50) AS accuracy_50,
           count(*) FILTER (WHERE ok AND accuracy > 50) AS accuracy_more,
           count(*) FILTER (WHERE ok AND accuracy IS NULL) AS accuracy_unknown,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY accuracy) FILTER (WHERE ok) AS median_accuracy,
           count(*) FILTER (WHERE ok AND outcome = 'new') AS osm_new,
           count(*) FILTER (WHERE ok AND outcome = 'existing') AS osm_existing,
           count(*) FILTER (WHERE ok AND outcome = 'update') AS osm_update,
           count(*) FILTER (WHERE ok AND outcome IS NOT NULL) AS osm_checked
    FROM point
    GROUP BY GROUPING SETS ((), (preset), (team_id, team), (participant_id, pseudonym))
""").bindparams(bindparam("fields", type_=JSONB))
# GROUPING() sets a bit for each column a row is not grouped by: preset 4, team 2, walker 1.
ALL, BY_PRESET, BY_TEAM, BY_PARTICIPANT = 0b111, 0b011, 0b101, 0b110
ACCURACY = ("accuracy_5", "accuracy_10", "accuracy_20", "accuracy_50", "accuracy_more",
            "accuracy_unknown")

# Points per half-hour of the deployment's local time, as the walkers' phones dated them.
TIMELINE = text("""
    SELECT date_trunc('hour', local) + floor(extract(minute FROM local) / 30) * interval '30 minutes'
               AS slot,
           count(*) AS recorded, count(*) FILTER (WHERE status = 'approved') AS approved
    FROM (SELECT s.observed_at AT TIME ZONE :tz AS local, s.status
          FROM submission s WHERE s.event_id = :event_id) AS point
    GROUP BY slot ORDER BY slot
""")
SLOT = timedelta(minutes=30)
# Beyond two days, empty half-hours are left out rather than drawn.
MAX_FILLED_SLOTS = 96

# Merged duplicates each carry their own reason ("same feature as …"): counted as one.
REASONS = text("""
    SELECT duplicate_of_id IS NOT NULL AS merged,
           CASE WHEN duplicate_of_id IS NULL THEN review_reason END AS reason, count(*) AS n
    FROM submission WHERE event_id = :event_id AND status = 'rejected'
    GROUP BY 1, 2 ORDER BY n DESC, reason LIMIT 20
""")

MAX_MAP_POINTS = 5000
MAX_REFERENCE_CHANGES = 200  # the whole report is the CSV on the organisers' reference page
MAP_POINTS = text("""
    SELECT coalesce(json_agg(json_build_object('preset', preset, 'lat', round(ST_Y(geom)::numeric, 7),
               'lon', round(ST_X(geom)::numeric, 7), 'tags', tags) ORDER BY id), '[]')::text
    FROM (SELECT id, preset, geom, tags FROM submission
          WHERE event_id = :event_id AND status = 'approved' AND verdict IS DISTINCT FROM 'missing'
          ORDER BY id LIMIT :limit) AS point
""")


def _share(part, whole):
    """`part` as a percentage of `whole` (0 when there is nothing)."""
    return round(100 * part / whole, 1) if whole else 0.0


def _breakdowns(event):
    """The totals and the rows by preset, team and walker, from one grouped query."""
    presets = all_presets()
    fields = {preset_id: [field["key"] for field in presets[preset_id]["fields"]]
              for preset_id in event.presets if preset_id in presets}
    rows = db.session.execute(FIGURES, {"event_id": event.id, "fields": fields}).mappings().all()
    total = next((dict(row) for row in rows if row["unused"] == ALL), None)
    by_preset = sorted(({**row, "share_complete": _share(row["complete"], row["approved"])}
                        for row in rows if row["unused"] == BY_PRESET),
                       key=lambda row: (-row["approved"], row["preset"]))
    by_team = sorted((row for row in rows if row["unused"] == BY_TEAM),
                     key=lambda row: (-row["approved"], row["team"] is None, row["team"] or ""))
    by_participant = sorted((row for row in rows if row["unused"] == BY_PARTICIPANT),
                            key=lambda row: (-row["approved"], row["pseudonym"].lower()))
    return total, by_preset, by_team, by_participant


def _timeline(event, zone):
    """Points per half-hour, empty half-hours included when the day is short enough."""
    rows = db.session.execute(TIMELINE, {"event_id": event.id, "tz": zone.key}).mappings().all()
    slots = {row["slot"]: row for row in rows}
    if not rows or (rows[-1]["slot"] - rows[0]["slot"]) / SLOT >= MAX_FILLED_SLOTS:
        return [dict(row) for row in rows]
    timeline, slot = [], rows[0]["slot"]
    while slot <= rows[-1]["slot"]:
        timeline.append(dict(slots.get(slot, {"slot": slot, "recorded": 0, "approved": 0})))
        slot += SLOT
    return timeline


def figures(event, zone):
    """Everything the restitution page shows, computed in SQL."""
    total, by_preset, by_team, by_participant = _breakdowns(event)
    empty = {name: 0 for name in ("recorded", "approved", "pending", "rejected", "complete",
                                  "with_photo", "photos", "osm_checked", *ACCURACY)}
    total = total or {**empty, "median_accuracy": None}
    summary = reference_summary(event)  # None without a town dataset
    return {
        "total": total,
        "walkers": db.session.scalar(text("SELECT count(*) FROM participant WHERE event_id = :id"),
                                     {"id": event.id}),
        "contributors": len(by_participant),
        "share_complete": _share(total["complete"], total["approved"]),
        "share_photo": _share(total["with_photo"], total["approved"]),
        "accuracy": [{"key": key, "count": total[key], "share": _share(total[key], total["approved"])}
                     for key in ACCURACY],
        "by_preset": by_preset,
        "by_team": by_team,
        "by_participant": by_participant,
        "timeline": _timeline(event, zone),
        "reasons": db.session.execute(REASONS, {"event_id": event.id}).mappings().all(),
        "uploaded": uploaded_counts(event),
        "reference": summary,
        "reference_changes": reference_changes(event) if summary else [],
    }


def map_state(event):
    """What the page's map script needs: the approved points (at most MAX_MAP_POINTS), the
    zone, the presets' icons and names, and the tiles."""
    points = db.session.scalar(MAP_POINTS, {"event_id": event.id, "limit": MAX_MAP_POINTS})
    zone = db.session.scalar(text("SELECT ST_AsGeoJSON(zone, 7) FROM event WHERE id = :id"),
                             {"id": event.id})
    presets = all_presets()
    lang = language()
    return {"points": json.loads(points), "zone": json.loads(zone), "lang": lang,
            "presets": {preset_id: {"icon": presets[preset_id]["icon"],
                                    "name": presets[preset_id]["name"][lang],
                                    "fields": {field["key"]: field["label"][lang]
                                               for field in presets[preset_id]["fields"]}}
                        for preset_id in event.presets if preset_id in presets},
            "tiles": {"url": current_app.config["TILE_URL"],
                      "attribution": current_app.config["TILE_ATTRIBUTION"]}}


@bp.get("/r/<slug>")
def page(slug):
    """The public restitution page; its organisers may preview it before it is published."""
    event = load_event(slug)
    preview = not event.restitution_is_public()
    if preview and not event.is_organised_by(current_organiser()):
        raise NotFound("restitution_unpublished", field="slug")
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    response = current_app.make_response(render_template(
        "restitution/page.html", event=event, preview=preview, figures=figures(event, zone),
        state=map_state(event), presets=all_presets(), tz=zone,
        leaflet=f"/vendor/leaflet/{LEAFLET_VERSION}", max_map_points=MAX_MAP_POINTS,
        max_reference_changes=MAX_REFERENCE_CHANGES,
        osm_site=current_app.config["OSM_AUTH_URL"]))
    # Publishing and unpublishing take effect at once; a preview is for its organisers only.
    response.headers["Cache-Control"] = "private, no-store" if preview else "no-cache"
    return response


@bp.get("/organise/<slug>/restitution")
@event_organiser_required
def organise(event, organiser):
    """The organisers' page: publish or not, list on /events or not, and the feedback."""
    return render("restitution/organise.html", event=event, summary=feedback.summary(event),
                  public_url=external_url("restitution.page", slug=event.slug))


ACTIONS = {"publish", "unpublish", "list", "unlist"}


@bp.post("/organise/<slug>/restitution")
@event_organiser_required
def change(event, organiser):
    """Publish or unpublish the restitution; list the event on /events or not."""
    action = request.form.get("action")
    if action not in ACTIONS:
        raise Invalid("restitution_action", field="action")
    if action == "publish" and event.restitution_published_at is None:
        event.restitution_published_at = datetime.now(UTC)
    elif action == "unpublish":
        event.restitution_published_at = None
    elif action in ("list", "unlist"):
        event.listed = action == "list"
    db.session.commit()
    return redirect(url_for("restitution.organise", slug=event.slug, saved=1))
