"""What more than one export uses: the approved points, the licence of each export and CSV
cells a spreadsheet cannot run, and how a file is replaced whole."""

import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from ..extensions import db

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
# The exports that carry the points' OSM tags, hence under ODbL (the others: the event's licence).
OSM_TAGGED = frozenset({"geojson", "csv", "gpkg", "html"})
# A spreadsheet runs a cell starting with one of these (even after spaces) as a formula.
FORMULA = re.compile(r"\s*[=+\-@\t\r]")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

APPROVED = text("""
    SELECT s.id, s.client_id::text AS client_id, s.preset, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
           s.accuracy, s.tags, s.note, s.observed_at,
           -- where the point is in OpenStreetMap once uploaded, as "node/123"
           (SELECT u.osm_type || '/' || u.osm_id FROM submission_osm u WHERE u.submission_id = s.id)
               AS osm,
           ARRAY(SELECT p.sha256 FROM photo p WHERE p.submission_id = s.id ORDER BY p.id) AS photos
    FROM submission s
    WHERE s.event_id = :event_id AND s.status = 'approved'
      AND s.verdict IS DISTINCT FROM 'missing'  -- a town's record not found is no feature
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


def safe_cell(value):
    """A CSV cell a spreadsheet shows as text instead of running it: a leading apostrophe
    before = + - @ tab or CR (also after spaces); plain numbers such as -1 stay as they are."""
    cell = "" if value is None else str(value)
    if FORMULA.match(cell) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def licence(event, fmt):
    """The licence of one export: name, URL when known, attribution."""
    name = ODBL if fmt in OSM_TAGGED else event.licence
    return {"licence": name, "licence_url": LICENCE_URLS.get(name),
            "attribution": f"© contributors of the mapping party «{event.name}» (cartoparty)"}


def licence_text(event, fmt):
    """The licence of one export as a few lines of plain text."""
    info = licence(event, fmt)
    url = f" ({info['licence_url']})" if info["licence_url"] else ""
    return (f"Licence: {info['licence']}{url}\nAttribution: {info['attribution']}\n"
            f"Approved points of «{event.name}» ({event.slug}), exported "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC by cartoparty.\n")


def replace_whole(target, produce, extension):
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
