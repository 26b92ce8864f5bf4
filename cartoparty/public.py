"""The public map of events (`/events`): listed events, upcoming and past, each leading to its
join page or its restitution; and its JSON twin `GET /api/events`, a GeoJSON FeatureCollection
that other maps (uMap, a town's portal) can load as it is."""

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, json, render_template
from sqlalchemy import text

from .extensions import db
from .i18n import format_time, language, messages
from .links import external_url
from .walker import LEAFLET_VERSION

bp = Blueprint("public", __name__)

# One point per event, inside its zone (a centroid may fall outside a crescent-shaped zone).
LISTED = text("""
    SELECT e.slug, e.name, e.starts_at, e.ends_at, e.restitution_published_at IS NOT NULL AS published,
           round(ST_X(c.geom)::numeric, 6)::float AS lon, round(ST_Y(c.geom)::numeric, 6)::float AS lat,
           CASE WHEN e.ends_at <= :now THEN 'past'
                WHEN e.starts_at IS NULL OR e.starts_at > :now THEN 'upcoming'
                ELSE 'ongoing' END AS status
    FROM event e, LATERAL (SELECT ST_PointOnSurface(e.zone) AS geom) AS c
    WHERE e.listed
    ORDER BY coalesce(e.starts_at, e.ends_at) NULLS LAST, e.slug
""")


def listed_events(now=None):
    """The listed events as GeoJSON features, in date order."""
    rows = db.session.execute(LISTED, {"now": now or datetime.now(UTC)}).mappings()
    return [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        "properties": {
            "slug": row["slug"], "name": row["name"], "status": row["status"],
            "starts_at": row["starts_at"].isoformat() if row["starts_at"] else None,
            "ends_at": row["ends_at"].isoformat() if row["ends_at"] else None,
            # Walkers join what is still to come; what is over leads to its restitution.
            "join_url": external_url("walker.page", slug=row["slug"])
            if row["status"] != "past" else None,
            "restitution_url": external_url("restitution.page", slug=row["slug"])
            if row["published"] else None,
        },
    } for row in rows]


@bp.get("/api/events")
def events_json():
    """The listed events as a GeoJSON FeatureCollection."""
    body = json.dumps({"type": "FeatureCollection", "features": listed_events()})
    return Response(body, mimetype="application/geo+json")


def _when(properties, lang, timezone):
    """The event's dates as the page shows them: in the event's time zone, in the reader's words."""
    moments = [format_time(datetime.fromisoformat(properties[name]), lang, timezone)
               for name in ("starts_at", "ends_at") if properties[name]]
    return " – ".join(moments)


MAP_MESSAGES = ("ev_upcoming", "ev_ongoing", "ev_past", "ev_join", "ev_restitution")


@bp.get("/events")
def events_page():
    """The public map and list of events."""
    lang = language()
    t = messages(lang)
    features = listed_events()
    for feature in features:
        feature["properties"]["when"] = _when(feature["properties"], lang,
                                              current_app.config["TIMEZONE"])
    upcoming = [f["properties"] for f in features if f["properties"]["status"] != "past"]
    past = [f["properties"] for f in features if f["properties"]["status"] == "past"][::-1]
    state = {"type": "FeatureCollection", "features": features, "lang": lang,
             "messages": {key: t[key] for key in MAP_MESSAGES},
             "tiles": {"url": current_app.config["TILE_URL"],
                       "attribution": current_app.config["TILE_ATTRIBUTION"]}}
    return render_template("public/events.html", upcoming=upcoming, past=past, state=state,
                           leaflet=f"/vendor/leaflet/{LEAFLET_VERSION}")
