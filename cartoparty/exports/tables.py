"""The approved points as tables: GeoJSON, CSV, GeoPackage and the defibrillators in schema-dae."""

import csv
import json
import struct
from datetime import UTC

# numpy and pyogrio are heavy: each is imported in the functions that use it, so that the app
# and the other commands start without them.
from .. import schemadae
from ..extensions import db
from ..models import Status, Submission
from ..presets import all_presets
from .common import approved_points, licence, licence_text, safe_cell


def presets_of(event):
    """(id, preset or None) of the event's presets, then of any other its approved points use."""
    used = db.session.scalars(db.select(Submission.preset).distinct().where(
        Submission.event_id == event.id, Submission.status == Status.approved))
    known = all_presets()
    return [(preset_id, known.get(preset_id))
            for preset_id in dict.fromkeys([*event.presets, *sorted(used)])]


def field_keys(preset):
    """The OSM keys a preset asks about (none for a preset that no longer exists)."""
    return [field["key"] for field in preset["fields"]] if preset else []


def other_tags(tags, columns, preset):
    """The tags that have no column, as JSON ('' when none): nothing the walker gave is lost."""
    identifying = preset["tags"] if preset else {}
    rest = {key: value for key, value in tags.items()
            if key not in columns and identifying.get(key) != value}
    return json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else ""


def coordinate(value):
    """A latitude or longitude in degrees with 7 decimals at most (about 1 cm)."""
    return format(round(value, 7), ".7f").rstrip("0").rstrip(".")


def _feature(point):
    return {"type": "Feature", "id": point["id"],
            "geometry": {"type": "Point", "coordinates": [round(point["lon"], 7), round(point["lat"], 7)]},
            "properties": {"id": point["id"], "client_id": point["client_id"],
                           "preset": point["preset"], "tags": point["tags"],
                           "observed_at": point["observed_at"].isoformat(), "note": point["note"],
                           "accuracy_m": point["accuracy"], "photos": point["photos"],
                           "osm": point["osm"]}}


def write_geojson(event, path, lang):
    """RFC 7946 FeatureCollection (lon, lat), the licence as top-level members."""
    head = {"type": "FeatureCollection", "name": event.name, **licence(event, "geojson")}
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [')
        for count, point in enumerate(approved_points(event), start=1):
            out.write(("," if count > 1 else "") + "\n" + json.dumps(_feature(point), ensure_ascii=False))
        out.write("\n]}\n")
    return count


def write_csv(event, path, lang):
    """One row per point, one column per preset field; UTF-8 with a BOM so that spreadsheets
    read the accents right."""
    presets = presets_of(event)
    keys = list(dict.fromkeys(key for _, preset in presets for key in field_keys(preset)))
    known = dict(presets)
    count = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "preset", "lat", "lon", "observed_at", "note", *keys, "other_tags",
                         "osm"])
        for point in approved_points(event):
            count += 1
            tags = point["tags"]
            writer.writerow(safe_cell(value) for value in [
                point["id"], point["preset"], coordinate(point["lat"]), coordinate(point["lon"]),
                point["observed_at"].isoformat(), point["note"], *(tags.get(key, "") for key in keys),
                other_tags(tags, keys, known.get(point["preset"])), point["osm"] or ""])
    return count


def _texts(values):
    import numpy as np

    return np.array([value if value not in (None, "") else None for value in values], dtype=object)


def _numbers(values):
    import numpy as np

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return np.nan
    return np.array([number(value) for value in values], dtype=np.float64)


def _layer(points, preset):
    """The columns of one GeoPackage layer: names and numpy arrays."""
    import numpy as np

    keys = field_keys(preset)
    numbers = {field["key"] for field in preset["fields"] if field["type"] == "number"} if preset else ()
    columns = {
        "id": np.array([point["id"] for point in points], dtype=np.int64),
        "client_id": _texts(point["client_id"] for point in points),
        # GeoPackage keeps times in UTC.
        "observed_at": np.array([point["observed_at"].astimezone(UTC).replace(tzinfo=None)
                                 for point in points], dtype="datetime64[ms]"),
        "note": _texts(point["note"] for point in points),
        "accuracy_m": _numbers(point["accuracy"] for point in points),
    }
    for key in keys:
        values = [point["tags"].get(key) for point in points]
        columns[key] = _numbers(values) if key in numbers else _texts(values)
    columns["other_tags"] = _texts(other_tags(point["tags"], keys, preset) for point in points)
    columns["osm"] = _texts(point["osm"] for point in points)
    return columns


def write_gpkg(event, path, lang):
    """A GeoPackage with one point layer per preset in EPSG:4326, the licence in its metadata."""
    import numpy as np
    import pyogrio.raw

    info, description = licence(event, "gpkg"), licence_text(event, "gpkg")
    count = 0
    for preset_id, preset in presets_of(event):
        points = list(approved_points(event, preset_id))
        count += len(points)
        columns = _layer(points, preset)
        geometry = np.array([struct.pack("<BIdd", 1, 1, point["lon"], point["lat"]) for point in points],
                            dtype=object)  # WKB points, little-endian
        name = preset["name"][lang] if preset else preset_id
        pyogrio.raw.write(
            path, geometry, list(columns.values()), list(columns), layer=preset_id, driver="GPKG",
            geometry_type="Point", crs="EPSG:4326",
            dataset_metadata={"LICENCE": info["licence"], "ATTRIBUTION": info["attribution"]},
            layer_options={"IDENTIFIER": f"{name} · {event.name}", "DESCRIPTION": description})
    return count


def write_dae(event, path, lang):
    """The defibrillators as schema-dae CSV: the schema's columns in its order, comma-separated,
    UTF-8 without BOM, what only the operator knows left empty."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(schemadae.FIELDS)
        for point in approved_points(event, defibrillators=True):
            count += 1
            row = schemadae.row(point, event.name)
            writer.writerow(safe_cell(row[field]) for field in schemadae.FIELDS)
    return count
