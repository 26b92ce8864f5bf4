"""Organiser pages: their events, preparing one (zone, presets, teams), join links, QR codes,
and the review page."""

import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, send_file, url_for
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError

from . import privacy
from .accounts import event_organiser_required, organiser_required, signed_in_organiser
from .auth import SLUG
from .errors import CartopartyError, Invalid, NotFound
from .events import event_json
from .extensions import db
from .i18n import language, messages
from .links import external_url
from .models import Event, Participant, Submission, Team
from .osm.conflate import read_match_radii
from .presets import all_presets
from .walker import LEAFLET_VERSION
from .zones import read_zone

bp = Blueprint("organise", __name__, url_prefix="/organise")


def render(template, status=200, **context):
    return render_template(template, presets=all_presets(), organiser=signed_in_organiser(),
                           tz=ZoneInfo(current_app.config["TIMEZONE"]),
                           leaflet=f"/vendor/leaflet/{LEAFLET_VERSION}", **context), status


@bp.get("")
@organiser_required
def home(organiser):
    counts = (db.select(Submission.event_id, func.count().label("n"))
              .group_by(Submission.event_id).subquery())
    events = db.session.execute(
        db.select(Event, func.coalesce(counts.c.n, 0))
        .where(Event.organisers.contains(organiser))
        .outerjoin(counts, counts.c.event_id == Event.id)
        .order_by(Event.starts_at.desc().nullslast(), Event.slug)).all()
    return render("organise/home.html", events=events)


def _when(value, field):
    """A datetime-local field, read in the deployment's time zone."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("not_a_time", field=field, name=field) from None
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


MIN_CORNERS = 3


def _rings(document):
    """Every ring of the polygons of a GeoJSON geometry, Feature or FeatureCollection, as lists
    of positions; what is malformed is skipped (read_zone says what is wrong with it)."""
    if not isinstance(document, dict):
        return []
    if document.get("type") == "FeatureCollection":
        features = document.get("features")
        return [ring for feature in features for ring in _rings(feature)] \
            if isinstance(features, list) else []
    if document.get("type") == "Feature":
        return _rings(document.get("geometry"))
    coordinates = document.get("coordinates")
    polygons = {"Polygon": [coordinates], "MultiPolygon": coordinates}.get(document.get("type"))
    if not isinstance(polygons, list):
        return []
    return [ring for polygon in polygons if isinstance(polygon, list) for ring in polygon
            if isinstance(ring, list)]


def _corners(ring):
    """How many distinct corners a ring has (its closing position repeats the first)."""
    return len({tuple(position[:2]) for position in ring
                if isinstance(position, list) and len(position) >= 2
                and all(isinstance(n, int | float) for n in position[:2])})


def read_outline(text, field):
    """An event's zone or a team's sector (`field`) from GeoJSON text, as EWKT. An outline of
    fewer than three corners (two taps on the map, then "Finish") is refused by name here:
    PostGIS would call it unreadable, or an area of zero."""
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return read_zone(text)  # which says why it cannot be read
    if any(_corners(ring) < MIN_CORNERS for ring in _rings(document)):
        raise Invalid("sector_corners" if field == "sector" else "zone_corners", field=field,
                      min=MIN_CORNERS)
    return read_zone(document)


RETENTION_DAYS = (1, 3650)
PRIVACY_CONTACT_MAX = 200


def _retention_days(value):
    """The retention period in days, 90 when left empty."""
    if not value.strip():
        return 90
    try:
        days = int(value)
    except ValueError:
        days = None
    if days is None or not RETENTION_DAYS[0] <= days <= RETENTION_DAYS[1]:
        raise Invalid("retention_days_range", field="retention_days", min=RETENTION_DAYS[0],
                      max=RETENTION_DAYS[1])
    return days


def read_event_form(form, files, creating):
    """The event's values from the form, or CartopartyError naming the first bad field.

    An event is listed on /events only when the organiser ticks the box: nothing is public
    by accident."""
    values = {"name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
              "licence": form.get("licence", "").strip() or "ODbL-1.0",
              "allow_outside_zone": form.get("allow_outside_zone") == "on",
              "listed": form.get("listed") == "on",
              "starts_at": _when(form.get("starts_at"), "starts_at"),
              "ends_at": _when(form.get("ends_at"), "ends_at"),
              "retention_days": _retention_days(form.get("retention_days", "")),
              "privacy_contact": form.get("privacy_contact", "").strip()}
    if not values["name"] or len(values["name"]) > 200:
        raise Invalid("event_name_length", field="name", max=200)
    if len(values["description"]) > 5000 or len(values["licence"]) > 100:
        raise Invalid("description_too_long", field="description", description=5000, licence=100)
    if values["starts_at"] and values["ends_at"] and values["ends_at"] < values["starts_at"]:
        raise Invalid("ends_before_start", field="ends_at")
    if len(values["privacy_contact"]) > PRIVACY_CONTACT_MAX:
        raise Invalid("privacy_contact_too_long", field="privacy_contact", max=PRIVACY_CONTACT_MAX)
    chosen = [preset for preset in form.getlist("presets") if preset in all_presets()]
    if not chosen:
        raise Invalid("no_presets_chosen", field="presets")
    values["presets"] = chosen
    values["match_radii"] = read_match_radii(
        {preset: form.get(f"radius_{preset}", "") for preset in chosen}, all_presets())
    upload = files.get("zone_file")
    zone_text = upload.read() if upload and upload.filename else form.get("zone", "").strip()
    if zone_text:
        values["zone"] = read_outline(zone_text, "zone")
    elif creating:
        raise Invalid("zone_missing", field="zone")
    if creating:
        slug = form.get("slug", "").strip()
        if not SLUG.fullmatch(slug):
            raise Invalid("slug_format", field="slug")
        values["slug"] = slug
    return values


@bp.route("/new", methods=["GET", "POST"])
@organiser_required
def new_event(organiser):
    if request.method == "GET":
        return render("organise/event_form.html", event=None, form={}, error=None, zone=None)
    try:
        values = read_event_form(request.form, request.files, creating=True)
        event = Event(**values)
        event.organisers.append(organiser)
        db.session.add(event)
        db.session.commit()
    except CartopartyError as error:
        db.session.rollback()
        return render("organise/event_form.html", 422, event=None, form=request.form,
                      error=error.text(language()), zone=None, zone_input=request.form.get("zone"))
    except IntegrityError:
        db.session.rollback()
        return render("organise/event_form.html", 422, event=None, form=request.form,
                      error=Invalid("slug_taken", field="slug").text(language()), zone=None,
                      zone_input=request.form.get("zone"))
    return redirect(url_for("organise.settings", slug=event.slug))


def _teams(event):
    return db.session.execute(
        db.select(Team, func.ST_AsGeoJSON(Team.sector, 7), func.count(Participant.id))
        .outerjoin(Participant, Participant.team_id == Team.id)
        .where(Team.event_id == event.id).group_by(Team.id).order_by(Team.name)).all()


def _settings_page(event, status=200, error=None, form=None):
    """The event's settings and teams, with an error's text when something was refused."""
    teams = _teams(event)
    return render("organise/event_form.html", status, event=event, form=form or {}, error=error,
                  zone=event_json(event)["zone"], teams=teams, join_url=join_url(event),
                  team_urls={team.id: join_url(event, team) for team, _, _ in teams})


@bp.route("/<slug>/settings", methods=["GET", "POST"])
@event_organiser_required
def settings(event, organiser):
    if request.method == "GET":
        return _settings_page(event)
    try:
        values = read_event_form(request.form, request.files, creating=False)
    except CartopartyError as error:
        db.session.rollback()
        return _settings_page(event, 422, error.text(language()), request.form)
    for name, value in values.items():
        setattr(event, name, value)
    db.session.commit()
    return redirect(url_for("organise.settings", slug=event.slug, saved=1))


@bp.post("/<slug>/teams")
@event_organiser_required
def add_team(event, organiser):
    name = request.form.get("name", "").strip()
    chosen = [p for p in request.form.getlist("presets") if p in event.presets]
    try:
        if not name or len(name) > 80:
            raise Invalid("team_name_length", field="name", max=80)
        upload = request.files.get("sector_file")
        sector_text = upload.read() if upload and upload.filename else request.form.get("sector", "")
        sector = read_outline(sector_text, "sector") if sector_text.strip() else None
        if sector and not db.session.scalar(db.select(func.ST_CoveredBy(
                func.ST_Buffer(func.ST_GeomFromEWKT(sector), -1e-7), Event.zone))
                .where(Event.id == event.id)):
            raise Invalid("sector_outside_zone", field="sector")
        db.session.add(Team(event_id=event.id, name=name, presets=chosen or list(event.presets),
                            sector=sector))
        db.session.commit()
    except CartopartyError as error:
        db.session.rollback()
        return _settings_page(event, 422, error.text(language()))
    except IntegrityError:
        db.session.rollback()
        return _settings_page(event, 422, Invalid("team_name_taken", field="name", name=name)
                              .text(language()))
    return redirect(url_for("organise.settings", slug=event.slug, _anchor="teams"))


def _team(event, team_id):
    team = db.session.scalar(db.select(Team).filter_by(event_id=event.id, id=team_id))
    if team is None:
        raise NotFound("no_such_team", field="team")
    return team


@bp.post("/<slug>/teams/<int:team_id>/delete")
@event_organiser_required
def delete_team(event, organiser, team_id):
    """Delete a team once the organiser confirmed it in the page (its walkers stay, teamless)."""
    team = _team(event, team_id)
    if request.form.get("confirm") != "yes":
        refused = Invalid("team_delete_unconfirmed", field="confirm", name=team.name)
        return _settings_page(event, 422, refused.text(language()))
    db.session.delete(team)
    db.session.commit()
    return redirect(url_for("organise.settings", slug=event.slug, _anchor="teams"))


def join_url(event, team=None):
    """The link walkers open (printed as a QR code)."""
    if team is None:
        return external_url("walker.page", slug=event.slug)
    return external_url("walker.page", slug=event.slug, team=team.join_code)


def qr_response(url, kind):
    """A QR code of `url` as PNG or SVG, large enough to print."""
    import segno  # imported when a QR code is drawn, not by every command

    code = segno.make(url, error="m")
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=10, border=4, title=url)
    else:
        code.save(out, kind="png", scale=12, border=4)
    out.seek(0)
    return send_file(out, mimetype="image/svg+xml" if kind == "svg" else "image/png",
                     download_name=f"cartoparty-qr.{kind}")


@bp.get("/<slug>/qr.<any(png, svg):kind>")
@event_organiser_required
def event_qr(event, organiser, kind):
    return qr_response(join_url(event), kind)


@bp.get("/<slug>/teams/<int:team_id>/qr.<any(png, svg):kind>")
@event_organiser_required
def team_qr(event, organiser, team_id, kind):
    return qr_response(join_url(event, _team(event, team_id)), kind)


@bp.get("/<slug>/print")
@event_organiser_required
def print_links(event, organiser):
    teams = [(team, join_url(event, team)) for team in event.teams]
    return render("organise/print.html", event=event, event_url=join_url(event), teams=teams)


@bp.get("/<slug>")
@event_organiser_required
def review_page(event, organiser):
    state = {"event": event_json(event), "lang": language(), "messages": messages(language()),
             "timezone": current_app.config["TIMEZONE"],
             "teams": [{"id": team.id, "name": team.name} for team in event.teams],
             "tiles": {"url": current_app.config["TILE_URL"],
                       "attribution": current_app.config["TILE_ATTRIBUTION"]},
             # The OSM site the elements are on (the development server's, when set so).
             "osm_site": current_app.config["OSM_AUTH_URL"]}
    return render("organise/review.html", event=event, state=state)


def _participants_page(event, status=200, error=None):
    """The event's walkers with their number of points, and what their data becomes."""
    counts = (db.select(Submission.participant_id, func.count().label("n"))
              .where(Submission.event_id == event.id).group_by(Submission.participant_id)
              .subquery())
    rows = db.session.execute(
        db.select(Participant, Team.name, func.coalesce(counts.c.n, 0))
        .outerjoin(Team, Team.id == Participant.team_id)
        .outerjoin(counts, counts.c.participant_id == Participant.id)
        .where(Participant.event_id == event.id)
        .order_by(Participant.erased_at.is_not(None), func.lower(Participant.pseudonym))).all()
    return render("organise/participants.html", status, event=event, participants=rows,
                  erase_after=privacy.erase_after(event), error=error)


def _participant(event, participant_id):
    participant = db.session.scalar(db.select(Participant).filter_by(event_id=event.id,
                                                                     id=participant_id))
    if participant is None:
        raise NotFound("no_such_participant", field="participant")
    return participant


@bp.get("/<slug>/participants")
@event_organiser_required
def participants(event, organiser):
    return _participants_page(event)


@bp.get("/<slug>/participants/<int:participant_id>/data.zip")
@event_organiser_required
def participant_data(event, organiser, participant_id):
    """Everything held about one walker, for the organiser to hand over."""
    data = privacy.export_participant(_participant(event, participant_id))
    response = send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                         download_name=f"cartoparty-{event.slug}-participant-{participant_id}.zip",
                         etag=False)
    response.headers["Cache-Control"] = "no-store"  # personal data: kept by no cache
    return response


@bp.post("/<slug>/participants/<int:participant_id>/erase")
@event_organiser_required
def erase_participant(event, organiser, participant_id):
    """Erase one walker's personal data once the organiser confirmed it in the page."""
    participant = _participant(event, participant_id)
    if request.form.get("confirm") != "yes":
        refused = Invalid("erase_unconfirmed", field="confirm", name=participant.pseudonym)
        return _participants_page(event, 422, refused.text(language()))
    privacy.erase([participant.id], organiser.email, organiser.id)
    return redirect(url_for("organise.participants", slug=event.slug, erased=1))
