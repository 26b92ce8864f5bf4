"""Points from other tools — ODK, Kobo, a GPS, a paper survey typed into a spreadsheet — read
from a GeoJSON, CSV or GPX file into an event as pending submissions of one preset.

- GeoJSON: a FeatureCollection (or one Feature) of Points; a feature's properties are its
  tags, or its `tags` object when it has one (then `note` is its note, as in our exports).
- CSV: lat/latitude/y and lon/lng/longitude/x columns (any case), the other columns are tags;
  `;`, `,` or tab between cells, taken from the header line; UTF-8 with or without a BOM.
  Empty cells are no answer; a decimal comma is read as a point.
- GPX: the waypoints (`wpt`), with `desc` (else `cmt`) as the note; a waypoint has no tags.
  A file declaring a DOCTYPE or entities is refused (defusedxml).

Each point's id is in `id_field` (a property, a column or a waypoint's child element; default
`id`, for GPX `name`), else the GeoJSON feature's own `id`; without one, its position, tags and
time stand for it. The submission's client_id is a UUID5 of (event, preset, id), so importing
the same file again adds nothing: the existing client_ids are skipped (ON CONFLICT DO NOTHING).
Ids are per event and preset: two files numbering their points alike (two GPS units' 001, 002…)
need another --id-field (for GPX, `time` will do).

A `time`, `observed_at` or `timestamp` value is the observation time (ISO 8601, or the French
13/06/2026 10:15; without a time zone, in TIMEZONE), else the import's time.

Each file is one participant of the event, found again on the next import of a file of the
same name: pseudonym "import: <file name>", consented_at the import's time — the organiser who
imports vouches that the points may be published under the event's licence. Its token_hash
is no SHA-256 (it holds a ':'), so no token signs in as it; organisers review its points like
any walker's, and figures by walker count it as one.

Tags are checked like a walker's (presets.check_tags); a point must lie in the event's zone
unless the event allows points outside. Refused rows are reported and do not stop the others;
a file that cannot be read at all raises Invalid before anything is written.
"""

import csv
import hashlib
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml
from flask import current_app
from psycopg.types.json import Jsonb
from sqlalchemy import text

from .errors import Invalid
from .extensions import db
from .lookalikes import skeleton
from .models import Participant
from .presets import LIMITS, all_presets, check_tags
from .submissions import read_number

LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "lng", "longitude", "x")
TIME_NAMES = ("time", "observed_at", "timestamp")
FRENCH_TIMES = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")
# The namespace of imported points' client_ids (uuid5); never to change, or re-imports duplicate.
NAMESPACE = uuid.UUID("61e96f05-365f-49a9-b633-893679cb4804")


@dataclass
class Point:
    """One point as the file gives it, not checked yet."""

    where: str  # "line 4", "feature 2", "waypoint 7": what the report names
    source_id: str | None
    lat: object
    lon: object
    tags: object
    note: object = ""
    time: object = None
    time_name: str = "time"
    problem: Invalid | None = None  # what the reader already found wrong


@dataclass
class Report:
    """What an import did: rows read, taken (new), already there, refused with the reason."""

    source: str
    read: int = 0
    taken: int = 0
    already: int = 0
    outside: int = 0
    refused: list = field(default_factory=list)  # (where, English reason), in file order

    def summary(self):
        """One line for the command line."""
        outside = f" ({self.outside} outside the zone)" if self.outside else ""
        return (f"{self.source}: {self.read} read, {self.taken} taken, {self.already} already "
                f"there, {len(self.refused)} refused{outside}")


def _text(data):
    """The file's text (UTF-8, a BOM dropped), or Invalid naming the first bad line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Invalid("import_not_utf8", line=data[:error.start].count(b"\n") + 1) from None


def _scalar_id(value):
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def _tag_value(value):
    """A GeoJSON property as an OSM value: booleans as yes/no, numbers as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and math.isfinite(value):
        return str(value)
    return value  # text, or what check_tags refuses


def _pick(values, names):
    """(name, value) of the first key of `values` named one of `names`, in any case."""
    by_name = {str(key).lower(): key for key in reversed(list(values))}
    for name in names:
        if name in by_name:
            return by_name[name], values[by_name[name]]
    return None, None


def _feature_point(index, feature, id_key):
    """A GeoJSON feature as a Point."""
    feature = feature if isinstance(feature, dict) else {}
    properties = feature.get("properties") or {}
    geometry = feature.get("geometry") if isinstance(feature.get("geometry"), dict) else {}
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        coordinates = [None, None]
    point = Point(f"feature {index}", None, coordinates[1], coordinates[0], {})
    if geometry.get("type") != "Point":
        point.problem = Invalid("import_not_point", field="geometry", type=str(geometry.get("type"))[:40])
    if not isinstance(properties, dict):
        point.problem = point.problem or Invalid("tags_not_object", field="properties")
        return point
    point.source_id = _scalar_id(properties.get(id_key)) or _scalar_id(feature.get("id"))
    time_key, point.time = _pick(properties, TIME_NAMES)
    point.time_name = time_key or "time"
    if isinstance(properties.get("tags"), dict):
        point.tags, point.note = properties["tags"], properties.get("note")
    else:
        point.tags = {key: _tag_value(value) for key, value in properties.items()
                      if key not in (id_key, time_key) and value is not None}
    return point


def read_geojson(data, id_field=None):
    """The points of a GeoJSON FeatureCollection (or of one Feature)."""
    try:
        document = json.loads(_text(data))
    except json.JSONDecodeError as error:
        raise Invalid("import_json", line=error.lineno, column=error.colno) from None
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Feature":
        features = [document]
    elif kind == "FeatureCollection" and isinstance(document.get("features"), list):
        features = document["features"]
    else:
        raise Invalid("import_not_features")
    return [_feature_point(index, feature, id_field or "id")
            for index, feature in enumerate(features, start=1)]


def _csv_columns(header, id_field):
    """The indexes of the lat, lon, id and time columns of a CSV header."""
    columns = {name.lower(): index for index, name in reversed(list(enumerate(header)))}
    lat = next((columns[name] for name in LAT_NAMES if name in columns), None)
    lon = next((columns[name] for name in LON_NAMES if name in columns), None)
    if lat is None or lon is None:
        raise Invalid("import_no_latlon")
    id_column = columns.get((id_field or "id").lower())
    if id_field and id_column is None:
        raise Invalid("import_no_id_column", name=id_field)
    time = next((columns[name] for name in TIME_NAMES if name in columns), None)
    return lat, lon, id_column, time


def _csv_point(line, header, row, columns):
    """One CSV row as a Point; empty cells are no answer."""
    lat, lon, id_column, time = columns
    cells = row + [""] * (len(header) - len(row))
    point = Point(f"line {line}", _scalar_id(cells[id_column]) if id_column is not None else None,
                  cells[lat], cells[lon], {}, time=cells[time] if time is not None else None,
                  time_name=header[time] if time is not None else "time")
    point.tags = {header[index]: cell for index, cell in enumerate(cells[:len(header)])
                  if index not in columns and cell.strip()}
    if any(cell.strip() for cell in cells[len(header):]):
        point.problem = Invalid("import_extra_cells", columns=len(header))
    return point


def read_csv(data, id_field=None):
    """The points of a CSV file, one per non-blank row after the header."""
    content = _text(data)
    # The delimiter is the header's: decimal commas in the rows cannot mislead it.
    delimiter = max(";,\t", key=content.split("\n", 1)[0].count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    points, line = [], 1
    try:
        header = [name.strip() for name in next(reader, [])]
        columns = _csv_columns(header, id_field)
        line = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                points.append(_csv_point(line, header, row, columns))
            line = reader.line_num + 1
    except csv.Error:
        raise Invalid("import_csv", line=line) from None
    return points


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def read_gpx(data, id_field=None):
    """The waypoints of a GPX file (1.0 or 1.1); refuses DOCTYPEs and entities."""
    try:
        root = parse_xml(data, forbid_dtd=True)
    except DefusedXmlException:
        raise Invalid("import_xml_unsafe") from None
    except ParseError as error:
        raise Invalid("import_xml", line=error.position[0]) from None
    if _local(root.tag) != "gpx":
        raise Invalid("import_not_gpx")
    points = []
    for index, waypoint in enumerate((e for e in root if _local(e.tag) == "wpt"), start=1):
        children = {}
        for child in waypoint:
            children.setdefault(_local(child.tag), (child.text or "").strip())
        points.append(Point(f"waypoint {index}", children.get(id_field or "name") or None,
                            waypoint.get("lat"), waypoint.get("lon"), {},
                            note=children.get("desc") or children.get("cmt") or "",
                            time=children.get("time")))
    return points


READERS = {".geojson": read_geojson, ".json": read_geojson, ".csv": read_csv, ".gpx": read_gpx}


def read_points(path, id_field=None):
    """The points of a GeoJSON, CSV or GPX file (known by its extension, else by its first
    character), or Invalid when it cannot be read at all. OSError when it cannot be opened."""
    path = Path(path)
    data = path.read_bytes()
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        start = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
        reader = {b"{": read_geojson, b"<": read_gpx}.get(start)
    if reader is None:
        raise Invalid("import_format")
    return reader(data, id_field)


def _coordinate(value, name, low, high):
    """A latitude or longitude in degrees, from a number or a text (a decimal comma too)."""
    if value is None or isinstance(value, str) and not value.strip():
        raise Invalid("import_no_position", field=name)
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            value = None
    return read_number(value, name, low, high)


def _parse_time(value):
    """A datetime from ISO 8601 or the French day/month/year, or None."""
    for parse in (datetime.fromisoformat, *(lambda v, f=f: datetime.strptime(v, f) for f in FRENCH_TIMES)):
        try:
            return parse(value)
        except ValueError:
            continue
    return None


def _observed_at(value, name, zone, now):
    """When the point was seen (aware), None for "now"; a time without zone is in `zone`."""
    if value is None or isinstance(value, str) and not value.strip():
        return None
    moment = _parse_time(value.strip()) if isinstance(value, str) else None
    if moment is None:
        raise Invalid("import_time", field=name, name=name)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= moment <= now + timedelta(days=1):
        raise Invalid("implausible_time", field=name, name=name)
    return moment


def _note(value):
    note = "" if value is None else value
    if not isinstance(note, str) or len(note) > LIMITS["note_length"]:
        raise Invalid("note_too_long", field="note", max=LIMITS["note_length"])
    return note.replace("\x00", "")


def _sha256(*values):
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def check_point(point, preset, id_field, zone, now):
    """(source key, lat, lon, tags, note, observed_at, fingerprint) of a point, checked as a
    walker's would be, or Invalid saying what is wrong (the zone is checked when writing)."""
    if point.problem:
        raise point.problem
    lat = _coordinate(point.lat, "lat", -90, 90)
    lon = _coordinate(point.lon, "lon", -180, 180)
    if point.source_id is None and id_field:
        raise Invalid("import_id_missing", field=id_field, name=id_field)
    tags = check_tags(preset, point.tags)
    note = _note(point.note)
    observed_at = _observed_at(point.time, point.time_name, zone, now)
    content = (lat, lon, tags, note, observed_at and observed_at.isoformat())
    key = f"id:{point.source_id}" if point.source_id is not None else f"content:{_sha256(*content)}"
    return key, lat, lon, tags, note, observed_at, _sha256(key, *content)


def client_id(event, preset_id, key):
    """The client_id of an imported point: the same for the same event, preset and id."""
    return uuid.uuid5(NAMESPACE, f"{event.id}\n{preset_id}\n{key}")


def import_participant(event, source):
    """The participant standing for an import source (a file name), made on its first import."""
    # Not a SHA-256 (a ':' in it): no token signs in as this participant.
    marker = "import:" + hashlib.sha256(f"{event.id}\n{source}".encode()).hexdigest()[:57]
    participant = db.session.scalar(db.select(Participant).filter_by(event_id=event.id,
                                                                     token_hash=marker))
    if participant is not None:
        return participant
    wanted = f"import: {' '.join(source.split())}"
    wanted = wanted if len(wanted) <= 40 else wanted[:39] + "…"
    pseudonym, n = wanted, 1
    while db.session.scalar(db.select(Participant.id).where(
            Participant.event_id == event.id, Participant.pseudonym_skeleton == skeleton(pseudonym))):
        n += 1  # a walker chose this pseudonym, or one that looks like it, already
        pseudonym = f"{wanted[:35]} ({n})"
    participant = Participant(event_id=event.id, pseudonym=pseudonym, token_hash=marker,
                              consented_at=datetime.now(UTC))
    db.session.add(participant)
    db.session.flush()
    return participant


OUTSIDE = text("""
    DELETE FROM point_import i USING event e
    WHERE e.id = :event_id AND NOT e.allow_outside_zone
      AND NOT ST_Covers(e.zone, ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326))
    RETURNING i.ordinal
""")
INSERT = text("""
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags, note,
                            observed_at, body_sha256, status, version)
    SELECT :event_id, :participant_id, i.client_id, :preset, ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326),
           NULL, i.tags, i.note, coalesce(i.observed_at, now()), i.body_sha256, 'pending', 1
    FROM point_import i ORDER BY i.ordinal
    ON CONFLICT ON CONSTRAINT submission_client_id_unique DO NOTHING
""")


def write_points(event, participant, preset_id, rows):
    """Store rows (ordinal, client_id, lon, lat, tags, note, observed_at, fingerprint) in one
    set-based step; return (how many were new, the ordinals of those outside the zone)."""
    db.session.execute(text("""
        CREATE TEMPORARY TABLE point_import (ordinal int4, client_id uuid, lon float8, lat float8,
            tags jsonb, note text, observed_at timestamptz, body_sha256 text) ON COMMIT DROP"""))
    # COPY in the session's own transaction, as osm/store.py does: 100,000 rows in one go.
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy("COPY point_import FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "uuid", "float8", "float8", "jsonb", "text", "timestamptz", "text"])
        for ordinal, point_id, lon, lat, tags, note, observed_at, digest in rows:
            copy.write_row((ordinal, point_id, lon, lat, Jsonb(tags), note, observed_at, digest))
    outside = db.session.scalars(OUTSIDE, {"event_id": event.id}).all()
    taken = db.session.execute(INSERT, {"event_id": event.id, "participant_id": participant.id,
                                        "preset": preset_id}).rowcount
    db.session.execute(text("DROP TABLE point_import"))
    return taken, outside


def import_points(event, path, preset_id, id_field=None):
    """Import a file's points into the event as pending submissions of `preset_id`; return
    the Report. Raises Invalid (nothing written) when the file or the preset is not usable,
    OSError when the file cannot be opened. The caller commits."""
    presets = all_presets()
    if preset_id not in presets:
        raise Invalid("unknown_preset", field="preset", preset=str(preset_id)[:40])
    if preset_id not in event.presets:
        raise Invalid("preset_not_in_event", field="preset", preset=preset_id)
    points = read_points(path, id_field)
    report = Report(Path(path).name, read=len(points))
    zone, now = ZoneInfo(current_app.config["TIMEZONE"]), datetime.now(UTC)
    refused, rows, seen = {}, [], set()
    for ordinal, point in enumerate(points):
        try:
            key, lat, lon, tags, note, observed_at, digest = check_point(
                point, presets[preset_id], id_field, zone, now)
            if key in seen:
                raise (Invalid("import_same_id", id=point.source_id) if point.source_id is not None
                       else Invalid("import_same_point"))
        except Invalid as error:
            refused[ordinal] = error.message
            continue
        seen.add(key)
        rows.append((ordinal, client_id(event, preset_id, key), lon, lat, tags, note, observed_at,
                     digest))
    if rows:
        participant = import_participant(event, report.source)
        report.taken, outside = write_points(event, participant, preset_id, rows)
        report.outside = len(outside)
        refused.update(dict.fromkeys(outside, Invalid("outside_zone", field="lat").message))
    report.already = len(rows) - report.outside - report.taken
    report.refused = [(points[ordinal].where, refused[ordinal]) for ordinal in sorted(refused)]
    return report
