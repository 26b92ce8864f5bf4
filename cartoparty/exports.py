"""Exports of an event's approved points, for towns and anyone reusing the data: GeoJSON, CSV,
GeoPackage, defibrillators in schema-dae, a folium map to share and the photos as a zip.

Each is written to a file in a scratch folder and renamed into place, so a reader never sees
half of one. Each states its licence: ODbL for what carries the points' OSM tags (that is what
goes to OpenStreetMap), the event's own licence for the rest. Where a format has room for it
the licence is inside the file (GeoJSON members, GeoPackage metadata, README.txt in the zip, a
comment in the HTML); a comment line would break CSV readers and the schema-dae validation, so
CSV downloads carry it in HTTP headers (`Link: rel="license"`) and the CLI writes it beside the
file as FILE.licence.txt.
"""

import csv
import html
import io
import json
import os
import re
import shutil
import struct
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

# folium, branca, numpy and pyogrio are heavy: each is imported in the functions that use it,
# so that the app and the other commands start without them.
import xstatic.pkg.leaflet as leaflet
from flask import Blueprint, current_app, send_file
from jinja2 import Template
from markupsafe import escape
from sqlalchemy import text

from . import schemadae
from .accounts import event_organiser_required
from .errors import NotFound
from .extensions import db
from .i18n import language
from .models import Photo, Status, Submission
from .organise import render
from .presets import all_presets

bp = Blueprint("exports", __name__, url_prefix="/organise")

ODBL = "ODbL-1.0"
LICENCE_URLS = {
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "ODC-By-1.0": "https://opendatacommons.org/licenses/by/1-0/",
    "PDDL-1.0": "https://opendatacommons.org/licenses/pddl/1-0/",
    "etalab-2.0": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
}
# A spreadsheet runs a cell starting with one of these (even after spaces) as a formula.
FORMULA = re.compile(r"\s*[=+\-@\t\r]")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

APPROVED = text("""
    SELECT s.id, s.client_id::text AS client_id, s.preset, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
           s.accuracy, s.tags, s.note, s.observed_at,
           ARRAY(SELECT p.sha256 FROM photo p WHERE p.submission_id = s.id ORDER BY p.id) AS photos
    FROM submission s
    WHERE s.event_id = :event_id AND s.status = 'approved'
      AND (CAST(:preset AS text) IS NULL OR s.preset = CAST(:preset AS text))
      AND (NOT :defibrillators OR s.tags ->> 'emergency' = 'defibrillator')
    ORDER BY s.id
""")


def approved_points(event, preset=None, defibrillators=False):
    """The event's approved points in id order (lat, lon in WGS84 degrees), fetched in batches
    so that a large event is never all in memory."""
    result = db.session.execute(APPROVED.execution_options(yield_per=1000), {
        "event_id": event.id, "preset": preset, "defibrillators": defibrillators})
    yield from result.mappings()


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


def safe_cell(value):
    """A CSV cell a spreadsheet shows as text instead of running it: a leading apostrophe
    before = + - @ tab or CR (also after spaces); plain numbers such as -1 stay as they are."""
    cell = "" if value is None else str(value)
    if FORMULA.match(cell) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def coordinate(value):
    """A latitude or longitude in degrees with 7 decimals at most (about 1 cm)."""
    return format(round(value, 7), ".7f").rstrip("0").rstrip(".")


def licence(event, fmt):
    """The licence of one export: name, URL when known, attribution."""
    name = ODBL if FORMATS[fmt].osm_tags else event.licence
    return {"licence": name, "licence_url": LICENCE_URLS.get(name),
            "attribution": f"© contributors of the mapping party «{event.name}» (cartoparty)"}


def licence_text(event, fmt):
    """The licence of one export as a few lines of plain text."""
    info = licence(event, fmt)
    url = f" ({info['licence_url']})" if info["licence_url"] else ""
    return (f"Licence: {info['licence']}{url}\nAttribution: {info['attribution']}\n"
            f"Approved points of «{event.name}» ({event.slug}), exported "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC by cartoparty.\n")


def _feature(point):
    return {"type": "Feature", "id": point["id"],
            "geometry": {"type": "Point", "coordinates": [round(point["lon"], 7), round(point["lat"], 7)]},
            "properties": {"id": point["id"], "client_id": point["client_id"],
                           "preset": point["preset"], "tags": point["tags"],
                           "observed_at": point["observed_at"].isoformat(), "note": point["note"],
                           "accuracy_m": point["accuracy"], "photos": point["photos"]}}


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
        writer.writerow(["id", "preset", "lat", "lon", "observed_at", "note", *keys, "other_tags"])
        for point in approved_points(event):
            count += 1
            tags = point["tags"]
            writer.writerow(safe_cell(value) for value in [
                point["id"], point["preset"], coordinate(point["lat"]), coordinate(point["lon"]),
                point["observed_at"].isoformat(), point["note"], *(tags.get(key, "") for key in keys),
                other_tags(tags, keys, known.get(point["preset"]))])
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


POPUP_STYLE = """<style>.leaflet-popup-content th { text-align: left; white-space: nowrap; }
.leaflet-popup-content th, .leaflet-popup-content td { vertical-align: top; padding: 1px 4px 1px 0; }
.leaflet-popup-content td, .leaflet-popup-content strong { overflow-wrap: anywhere; }
.leaflet-popup-content strong { display: block; }</style>"""


# The points and the zone drawn by Leaflet; popups are built with textContent, so that nothing
# a walker typed is ever read as HTML, and the data is JSON escaped for <script>.
POINTS_SCRIPT = Template("""{% macro script(this, kwargs) %}
(function () {
  var map = {{ this._parent.get_name() }};
  var data = {{ this.data|tojson }};
  var zone = L.geoJSON(data.zone, {interactive: false,
                                   style: {color: "#0b5d1e", weight: 2, fill: false}}).addTo(map);
  var points = L.featureGroup().addTo(map);
  data.points.forEach(function (point) {
    var box = document.createElement("div");
    var title = document.createElement("strong");
    title.textContent = point.title;
    box.appendChild(title);
    var table = document.createElement("table");
    point.rows.forEach(function (pair) {
      var row = table.insertRow();
      var key = document.createElement("th");
      key.textContent = pair[0];
      row.appendChild(key);
      row.insertCell().textContent = pair[1];
    });
    box.appendChild(table);
    L.circleMarker([point.lat, point.lon], {radius: 7, color: "#0b5d1e", fillOpacity: 0.8})
      .bindPopup(box, {maxWidth: 320}).addTo(points);
  });
})();
{% endmacro %}""")


def _points_layer(data):
    """The map's element drawing `data` ({"zone": GeoJSON, "points": popups}) with POINTS_SCRIPT."""
    from branca.element import MacroElement

    # What a MacroElement subclass would set, without importing branca with this module.
    layer = MacroElement()
    layer._template = POINTS_SCRIPT
    layer.data = data
    return layer


def _popup(point, presets, lang):
    preset = presets.get(point["preset"])
    name = f"{preset['icon']} {preset['name'][lang]}" if preset else point["preset"]
    title = f"{name} — {point['tags']['name']}" if point["tags"].get("name") else name
    rows = [[key, value] for key, value in sorted(point["tags"].items())]
    rows.append(["observed_at", point["observed_at"].isoformat(timespec="minutes")])
    if point["note"]:
        rows.append(["note", point["note"]])
    return {"lat": point["lat"], "lon": point["lon"], "title": title, "rows": rows}


def map_bounds(points, zone):
    """[[south, west], [north, east]] in WGS84 degrees: around the points, or the zone's
    (`zone` a GeoJSON geometry) when there is no point."""
    if points:
        lats, lons = [p["lat"] for p in points], [p["lon"] for p in points]
    else:
        positions = [position for polygon in zone["coordinates"] for ring in polygon
                     for position in ring]
        lats, lons = [p[1] for p in positions], [p[0] for p in positions]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


def write_html(event, path, lang):
    """A self-contained folium map (Leaflet inlined; only the tiles come from the network),
    opening on the bounds of its points."""
    import folium
    from branca.element import Element

    zone = json.loads(db.session.scalar(text("SELECT ST_AsGeoJSON(zone, 7) FROM event WHERE id = :id"),
                                        {"id": event.id}))
    presets = all_presets()
    points = [_popup(point, presets, lang) for point in approved_points(event)]
    info = licence(event, "html")
    source = Path(leaflet.BASE_DIR)
    (south, west), (north, east) = bounds = map_bounds(points, zone)
    figure = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=16, tiles=None,
                        control_scale=True)
    figure.fit_bounds(bounds, max_zoom=18)
    figure.default_js, figure.default_css = [], []
    root = figure.get_root()
    # Nothing in a comment is markup; only "--" could end it early.
    comment = html.escape(licence_text(event, "html"), quote=False).replace("--", "- -")
    root.header.add_child(Element(f"<!--\n{comment}-->"))
    root.header.add_child(Element(f"<title>{escape(event.name)}</title>"))
    root.header.add_child(Element(f"<style>{(source / 'leaflet.css').read_text()}</style>"))
    root.header.add_child(Element(f"<script>{(source / 'leaflet.js').read_text()}</script>"))
    root.header.add_child(Element(POPUP_STYLE))
    licence_link = (f'<a href="{escape(info["licence_url"])}">{escape(info["licence"])}</a>'
                    if info["licence_url"] else escape(info["licence"]))
    folium.TileLayer(tiles=current_app.config["TILE_URL"], max_zoom=19, attr=(
        f"{current_app.config['TILE_ATTRIBUTION']} | {escape(info['attribution'])}, {licence_link}"
    )).add_to(figure)
    _points_layer({"zone": zone, "points": points}).add_to(figure)
    Path(path).write_text(root.render(), encoding="utf-8")
    return len(points)


def write_photos(event, path, lang):
    """A zip of the approved points' photos (photos/<submission id>_<sha256>.<ext>), an index.csv
    and a README.txt; files are copied from disk one by one, never all held in memory."""
    directory = Path(current_app.config["PHOTO_DIR"])
    rows = db.session.execute(
        db.select(Photo, Submission.client_id, Submission.preset).join(Submission)
        .where(Submission.event_id == event.id, Submission.status == Status.approved)
        .order_by(Submission.id, Photo.id)).all()
    index = io.StringIO()
    writer = csv.writer(index)
    writer.writerow(["file", "submission_id", "client_id", "preset", "sha256", "media_type",
                     "width", "height"])
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", licence_text(event, "photos") + (
            "\nphotos/<submission id>_<sha256>.<ext>: the photos; index.csv says which point each "
            "shows (an empty file name: the photo file was missing on the server).\n"))
        for photo, client_id, preset in rows:
            source = directory / photo.filename
            name = f"photos/{photo.submission_id}_{photo.sha256}.{photo.filename.rsplit('.', 1)[1]}"
            if source.is_file():
                # Photos are compressed already: stored as they are.
                archive.write(source, name, compress_type=zipfile.ZIP_STORED)
                count += 1
            else:
                name = ""
            writer.writerow(safe_cell(value) for value in [
                name, photo.submission_id, client_id, preset, photo.sha256, photo.media_type,
                photo.width, photo.height])
        archive.writestr("index.csv", index.getvalue())
    return count


class Format(NamedTuple):
    write: object
    file_name: str  # after the event's slug
    media_type: str
    osm_tags: bool  # carries the points' OSM tags: ODbL
    licence_inside: bool  # the file itself states its licence


# Media types as registered with IANA; a GeoPackage file is an SQLite container, hence its name
# (the app's own database is PostGIS, always).
FORMATS = {
    "geojson": Format(write_geojson, ".geojson", "application/geo+json", True, True),
    "csv": Format(write_csv, ".csv", "text/csv; charset=utf-8", True, False),
    "gpkg": Format(write_gpkg, ".gpkg", "application/geopackage+sqlite3", True, True),
    "dae": Format(write_dae, "-dae.csv", "text/csv; charset=utf-8", False, False),
    "html": Format(write_html, "-map.html", "text/html; charset=utf-8", True, True),
    "photos": Format(write_photos, "-photos.zip", "application/zip", False, True),
}


def _replace(target, produce, extension):
    """Make `target` with produce(path of a scratch file beside it), then rename the result into
    place: the target is replaced whole or not at all. Returns what `produce` returned."""
    target = Path(target)
    scratch = tempfile.mkdtemp(prefix=".cartoparty-export-", dir=target.parent)
    try:
        # The scratch file has the format's extension: GDAL wants a GeoPackage called *.gpkg.
        partial = Path(scratch) / f"export.{extension}"
        result = produce(partial)
        os.replace(partial, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def write(event, fmt, path, lang="fr"):
    """Write export `fmt` of the event to `path`, replacing it whole or not at all; returns the
    number of points (photos for `photos`) written."""
    spec = FORMATS[fmt]
    return _replace(path, lambda partial: spec.write(event, partial, lang),
                    spec.file_name.rsplit(".", 1)[1])


def write_companion(event, fmt, path):
    """For a file with no room for its licence (CSV), FILE.licence.txt beside it; its path."""
    if FORMATS[fmt].licence_inside:
        return None
    companion = Path(f"{path}.licence.txt")
    _replace(companion, lambda partial: partial.write_text(licence_text(event, fmt), encoding="utf-8"),
             "txt")
    return companion


def _header(value):
    """Text safe in an HTTP header: anything outside printable ASCII percent-encoded."""
    return quote(value, safe=" !#$&'()*+,./:;=?@[]^_`{|}~-")


@bp.get("/<slug>/exports")
@event_organiser_required
def page(event, organiser):
    counts = dict(db.session.execute(text("""
        SELECT 'points', count(*) FROM submission WHERE event_id = :id AND status = 'approved'
        UNION ALL SELECT 'defibrillators', count(*) FROM submission
        WHERE event_id = :id AND status = 'approved' AND tags ->> 'emergency' = 'defibrillator'
    """), {"id": event.id}).all())
    return render("organise/exports.html", event=event, counts=counts,
                  formats=[(fmt, licence(event, fmt)) for fmt in FORMATS])


@bp.get("/<slug>/exports/<fmt>")
@event_organiser_required
def download(event, organiser, fmt):
    if fmt not in FORMATS:
        raise NotFound("no_such_export", field="format", format=fmt[:40], formats=", ".join(FORMATS))
    spec = FORMATS[fmt]
    with tempfile.TemporaryDirectory(prefix="cartoparty-export-") as scratch:
        path = Path(scratch) / f"{event.slug}{spec.file_name}"
        write(event, fmt, path, language())
        # The folder goes away now; the open file stays readable until it has been sent.
        handle = open(path, "rb")
    response = send_file(handle, mimetype=spec.media_type, as_attachment=True,
                         download_name=path.name, etag=False, max_age=0)
    info = licence(event, fmt)
    if info["licence_url"]:
        response.headers["Link"] = f'<{info["licence_url"]}>; rel="license"'
    response.headers["X-Licence"] = _header(info["licence"])
    response.headers["X-Attribution"] = _header(info["attribution"])
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response
