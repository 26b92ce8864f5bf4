"""The matching's results as a file, for reading them outside the review page: each point's
match and what decided it (`match.explanation`), as CSV or as GeoJSON points.

Positions are WGS84 degrees (GeoJSON: [lon, lat]); distances are metres. The file is written
whole or not at all: into a temporary file beside it, renamed over it at the end."""

import csv
import json
import os
import tempfile
from pathlib import Path

from sqlalchemy import text

from ..extensions import db

FORMATS = (".csv", ".geojson")
# What decided each match, in this order after the point's own columns.
EXPLANATION = ("distance_m", "accuracy_m", "sigma_m", "agree", "contradict", "cost", "new_cost",
               "runner_up", "runner_up_cost", "runner_up_distance_m", "gap", "shared", "duplicate_of")
COLUMNS = ("client_id", "preset", "outcome", "osm_type", "osm_id", *EXPLANATION)
MATCHES = text("""
    SELECT s.client_id::text, s.preset, m.outcome, m.osm_type, m.osm_id, m.distance_m,
           m.explanation, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon
    FROM submission s JOIN match m ON m.submission_id = s.id
    WHERE s.event_id = :event_id
    ORDER BY s.id
""")


def check_format(path):
    """The file's format, ".csv" or ".geojson", from its name; ValueError for another."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{Path(path).name}: the file must end in .csv or .geojson")
    return suffix


def rows(event):
    """Each matched point of the event as a dict of COLUMNS (the runner-up as "node/8", "new"
    or None), with its `lat` and `lon`."""
    for row in db.session.execute(MATCHES, {"event_id": event.id}):
        why = row.explanation or {}
        runner_up = why.get("runner_up")
        if isinstance(runner_up, dict):
            runner_up = f"{runner_up['osm_type']}/{runner_up['osm_id']}"
        yield {"client_id": row.client_id, "preset": row.preset, "outcome": row.outcome,
               "osm_type": row.osm_type, "osm_id": row.osm_id,
               **{key: _readable(why.get(key)) for key in EXPLANATION},
               "distance_m": _readable(row.distance_m), "runner_up": runner_up,
               "lat": row.lat, "lon": row.lon}


def _readable(value):
    """Metres and costs to the centimetre or the thousandth, as people read them."""
    return round(value, 3) if isinstance(value, float) else value


def write_matches(event, path):
    """Write the event's matches to `path` (.csv with a header, or .geojson); return how many."""
    suffix = check_format(path)
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            count = (_write_csv if suffix == ".csv" else _write_geojson)(rows(event), out)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 is for the file while it is incomplete
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


def _write_csv(points, out):
    """CSV with a header line of COLUMNS; empty cells for nulls."""
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for point in points:
        writer.writerow(point)
        count += 1
    return count


def _write_geojson(points, out):
    """A FeatureCollection of points ([lon, lat]) with COLUMNS as properties."""
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
                 "properties": {key: p[key] for key in COLUMNS}} for p in points]
    json.dump({"type": "FeatureCollection", "features": features}, out, ensure_ascii=False)
    out.write("\n")
    return len(features)
