"""Exports of an event's approved points, for towns and anyone reusing the data: GeoJSON, CSV,
GeoPackage and defibrillators in schema-dae (`tables`), a folium map to share (`webmap`) and the
photos as a zip (`photos`). This module lists the formats, writes them and serves them.

Each is written to a file in a scratch folder and renamed into place, so a reader never sees
half of one. Each states its licence (`common.licence`): ODbL for what carries the points' OSM
tags (that is what goes to OpenStreetMap), the event's own licence for the rest. Where a format
has room for it the licence is inside the file (GeoJSON members, GeoPackage metadata, README.txt
in the zip, a comment in the HTML); a comment line would break CSV readers and the schema-dae
validation, so CSV downloads carry it in HTTP headers (`Link: rel="license"`) and the CLI writes
it beside the file as FILE.licence.txt.
"""

import tempfile
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

from flask import Blueprint, current_app, send_file
from sqlalchemy import text

from ..accounts import event_organiser_required
from ..errors import NotFound
from ..extensions import db
from ..headers import sandboxed_policy
from ..i18n import language
from ..organise import render
from .common import licence, licence_text, replace_whole
from .photos import write_photos
from .tables import write_csv, write_dae, write_geojson, write_gpkg
from .webmap import map_html, write_html

bp = Blueprint("exports", __name__, url_prefix="/organise")


class Format(NamedTuple):
    write: object
    file_name: str  # after the event's slug
    media_type: str
    licence_inside: bool  # the file itself states its licence


# Media types as registered with IANA; a GeoPackage file is an SQLite container, hence its name
# (the app's own database is PostGIS, always).
FORMATS = {
    "geojson": Format(write_geojson, ".geojson", "application/geo+json", True),
    "csv": Format(write_csv, ".csv", "text/csv; charset=utf-8", False),
    "gpkg": Format(write_gpkg, ".gpkg", "application/geopackage+sqlite3", True),
    "dae": Format(write_dae, "-dae.csv", "text/csv; charset=utf-8", False),
    "html": Format(write_html, "-map.html", "text/html; charset=utf-8", True),
    "photos": Format(write_photos, "-photos.zip", "application/zip", True),
}


def write(event, fmt, path, lang="fr"):
    """Write export `fmt` of the event to `path`, replacing it whole or not at all; returns the
    number of points (photos for `photos`) written."""
    spec = FORMATS[fmt]
    return replace_whole(path, lambda partial: spec.write(event, partial, lang),
                    spec.file_name.rsplit(".", 1)[1])


def write_companion(event, fmt, path):
    """For a file with no room for its licence (CSV), FILE.licence.txt beside it; its path."""
    if FORMATS[fmt].licence_inside:
        return None
    companion = Path(f"{path}.licence.txt")
    replace_whole(companion, lambda partial: partial.write_text(licence_text(event, fmt), encoding="utf-8"),
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
            AND verdict IS DISTINCT FROM 'missing'
        UNION ALL SELECT 'defibrillators', count(*) FROM submission
        WHERE event_id = :id AND status = 'approved' AND tags ->> 'emergency' = 'defibrillator'
            AND verdict IS DISTINCT FROM 'missing'
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


@bp.get("/<slug>/exports/html/preview")
@event_organiser_required
def preview(event, organiser):
    """The map to share, shown in the browser. Its inline scripts run sandboxed, in an origin of
    their own: they can neither read the organiser's session nor call the app."""
    page, _ = map_html(event, language())
    response = current_app.response_class(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = sandboxed_policy(current_app.config["TILE_URL"])
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response
