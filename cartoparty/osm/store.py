"""An event's OpenStreetMap data: refreshed from Overpass (at most once every few minutes
unless forced) or imported from an extract, stored in PostGIS with when and whence. A failed
refresh keeps the previous data and records the error."""

import struct
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from flask import current_app
from psycopg.types.json import Jsonb
from sqlalchemy import delete, func, text

from ..errors import CartopartyError
from ..extensions import db
from ..models import Event, OsmElement, OsmSnapshot
from ..presets import all_presets
from . import overpass

MIN_INTERVAL = timedelta(minutes=5)
# Larger boxes are asked tile by tile (square degrees; about 20 km x 20 km at 45°N).
MAX_TILE_AREA = 0.05
# A point as EWKB: little-endian, the point type with the SRID flag, the SRID, lon, lat.
EWKB_POINT = struct.Struct("<BIIdd")
EWKB_POINT_WITH_SRID = 0x20000001
# The installed version (not the app package's, which this package does not import).
USER_AGENT = (f"cartoparty/{version('cartoparty')} "
              "(mapping parties; https://wiki.openstreetmap.org/wiki/Mapping_party)")


class TooSoon(CartopartyError):
    status = 429


def tag_sets(event):
    """The identifying tags of the event's presets: what to ask OSM for."""
    presets = all_presets()
    return [presets[preset]["tags"] for preset in event.presets if preset in presets]


def bbox(event):
    """The event zone's bounding box as (south, west, north, east), Overpass's order."""
    west, south, east, north = db.session.execute(db.select(
        func.ST_XMin(Event.zone), func.ST_YMin(Event.zone), func.ST_XMax(Event.zone),
        func.ST_YMax(Event.zone)).where(Event.id == event.id)).one()
    return south, west, north, east


def snapshot(event):
    """The event's snapshot record (made when missing)."""
    record = db.session.get(OsmSnapshot, event.id)
    if record is None:
        record = OsmSnapshot(event_id=event.id, source="", element_count=0)
        db.session.add(record)
    return record


def store(event, elements, source):
    """Replace the event's OSM data by `elements` (those inside its zone); return their number."""
    db.session.execute(delete(OsmElement).where(OsmElement.event_id == event.id))
    # COPY, in the session's own transaction: a town's 200,000 features in a few seconds rather
    # than the ten of row-by-row INSERTs. Binary, so that the server parses no WKT and no JSON
    # text (into a table without indexes: 1.4 s instead of 2.4 s for 200,000 features).
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy("COPY osm_element (event_id, osm_type, osm_id, version, timestamp, tags, geom) "
                     "FROM STDIN (FORMAT BINARY)") as copy:
        # psycopg has no adapter for geometry, whose binary input is EWKB: it goes as bytea's bytes.
        copy.set_types(["int4", "text", "int8", "int4", "timestamptz", "jsonb", "bytea"])
        for e in elements:
            copy.write_row((event.id, e.osm_type, e.osm_id, e.version, e.timestamp, Jsonb(e.tags),
                            EWKB_POINT.pack(1, EWKB_POINT_WITH_SRID, 4326, e.lon, e.lat)))
    outside = db.session.execute(text("""
        DELETE FROM osm_element o USING event e
        WHERE o.event_id = :event_id AND e.id = o.event_id AND NOT ST_Covers(e.zone, o.geom)
    """), {"event_id": event.id})
    count = cursor.rowcount - outside.rowcount
    record = snapshot(event)
    record.source, record.fetched_at, record.element_count = source, datetime.now(UTC), count
    record.last_error = record.last_error_detail = record.last_error_at = None
    return count


def record_failure(event, error):
    """Keep the previous data; say what went wrong and when."""
    record = snapshot(event)
    record.last_error, record.last_error_at = error.message[:2000], datetime.now(UTC)
    record.last_error_detail = error.detail()


def refuse_if_too_soon(event):
    """Raise TooSoon when Overpass was asked for this event less than MIN_INTERVAL ago."""
    record = db.session.get(OsmSnapshot, event.id)
    if record and record.fetched_at and record.source.startswith("overpass"):
        wait = MIN_INTERVAL - (datetime.now(UTC) - record.fetched_at)
        if wait > timedelta(0):
            raise TooSoon("osm_too_soon", minutes=MIN_INTERVAL.seconds // 60,
                          seconds=int(wait.total_seconds()) + 1)


def refresh_from_overpass(event, force=False):
    """Fetch the event's features from Overpass (tile by tile for large zones) and store them."""
    if not force:
        refuse_if_too_soon(event)
    config = current_app.config
    try:
        results = [overpass.fetch(tile, tag_sets(event), config["OVERPASS_URL"],
                                  config["OVERPASS_TIMEOUT"], USER_AGENT,
                                  backoff=config.get("OVERPASS_BACKOFF", 1.0))
                   for tile in overpass.split_bbox(bbox(event), MAX_TILE_AREA)]
    except overpass.OverpassError as error:
        db.session.rollback()
        record_failure(event, error)
        db.session.commit()
        raise
    count = store(event, overpass.merge(results), f"overpass {config['OVERPASS_URL'][0]}")
    db.session.commit()
    return count


def import_extract(event, path):
    """Load the event's features from an OSM extract (.osm, .osm.pbf…) and store them."""
    from .extract import read_extract

    elements = read_extract(path, bbox(event), tag_sets(event))
    count = store(event, elements, f"file {Path(path).name}")
    db.session.commit()
    return count


def snapshot_json(event):
    """What organisers see of the OSM data: source, time, size and last error."""
    record = db.session.get(OsmSnapshot, event.id)
    if record is None:
        return None
    return {"source": record.source, "fetched_at": _iso(record.fetched_at),
            "element_count": record.element_count, "last_error": record.last_error,
            "last_error_detail": record.last_error_detail, "last_error_at": _iso(record.last_error_at)}


def _iso(moment):
    return moment.isoformat() if moment else None
