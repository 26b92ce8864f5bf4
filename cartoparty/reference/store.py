"""An event's reference dataset in one table, `reference_row`, loaded in one set-based step:
the rows read.py could place are COPied into a temporary table, then one INSERT … SELECT keeps
each row inside the event's zone, or whose coordinates swapped are (stored swapped, `fixed`
saying so), and the others are refused as outside the zone.

Importing again replaces the event's dataset whole, in the same transaction: a town's file
comes back corrected, or was imported with the wrong CRS or columns. Once a walker has checked
a row, the dataset is theirs too and is not replaced (the import is refused, nothing changes).
When no row of the new file loads, the rows already there are kept: a wrong CRS leaves every
row outside the zone, and must not empty the dataset.

The dataset's description (reference_dataset: kind, preset, columns in order, delimiter,
position columns, CRS) is written with the rows: the export back to the town needs it. The
preset its rows are checked with is enabled on the event if it was not.
"""

from collections import Counter
from dataclasses import dataclass, field

from psycopg.types.json import Jsonb
from sqlalchemy import text

from ..errors import Invalid
from ..extensions import db
from ..i18n import translate
from ..models import ReferenceDataset
from ..presets import all_presets
from .mapping import PRESET_OF_KIND
from .read import WGS84, read_file

SWAPPED = "lat_lon_swapped"

INSERT = text("""
    INSERT INTO reference_row (event_id, kind, row_number, source_id, geom, fields, fixed)
    SELECT e.id, :kind, i.row_number, i.source_id,
           CASE WHEN c.straight THEN p.point ELSE p.swapped END, i.fields,
           CASE WHEN c.straight THEN NULL ELSE :swapped END
    FROM reference_import i
    JOIN event e ON e.id = :event_id
    CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326) AS point,
                               ST_SetSRID(ST_MakePoint(i.swapped_lon, i.swapped_lat), 4326) AS swapped) p
    CROSS JOIN LATERAL (SELECT coalesce(ST_Covers(e.zone, p.point), false) AS straight,
                               coalesce(ST_Covers(e.zone, p.swapped), false) AS swapped_inside) c
    WHERE c.straight OR c.swapped_inside
    RETURNING row_number, fixed
""")


@dataclass
class Report:
    """What an import did: rows read, loaded (those fixed, and how), refused (why), and the
    rows of the previous import it replaced, or kept when none of this file's loaded."""

    source: str
    kind: str
    crs: str
    encoding: str = ""
    schema: str | None = None
    read: int = 0
    loaded: int = 0
    replaced: int = 0
    kept: int = 0
    fixed: list = field(default_factory=list)  # (row number, what was fixed), in file order
    refused: list = field(default_factory=list)  # (row number, Invalid), in file order
    cp1252_lines: int = 0
    lost_characters: int = 0
    preset: str | None = None
    preset_added: bool = False  # the event did not offer the preset: it does now

    def reasons(self):
        """(how many rows, the first one's Invalid) for each reason of refusal, most first."""
        counts = Counter(problem.code for _, problem in self.refused)
        first = {}
        for _, problem in self.refused:
            first.setdefault(problem.code, problem)
        return [(n, first[code]) for code, n in counts.most_common()]

    def fixes(self):
        """(how many rows, what was fixed) for each kind of fix."""
        return [(n, what) for what, n in Counter(what for _, what in self.fixed).most_common()]

    def lines(self, show=10):
        """The report in English, for the command line."""
        schema = f", {self.schema}" if self.schema else ""
        lines = [f"{self.source} ({self.kind}{schema}, {self.encoding}, {self.crs}): {self.read} read, "
                 f"{self.loaded} loaded ({len(self.fixed)} fixed), {len(self.refused)} refused"]
        if self.kept:
            lines.append(f"  nothing loaded: the {self.kept} rows imported before are kept")
        elif self.replaced:
            lines.append(f"  replaced the {self.replaced} rows imported before")
        if self.preset_added:
            lines.append(f"  the event now offers the preset {self.preset}, which the rows are checked with")
        if self.cp1252_lines:
            lines.append(f"  {self.cp1252_lines} lines read as Windows-1252 (not UTF-8)")
        if self.lost_characters:
            lines.append(f"  {self.lost_characters} rows hold U+FFFD: characters lost before this file")
        lines += [f"  fixed: {n} × {translate('en', f'reference_fixed_{what}')}" for n, what in self.fixes()]
        lines += [f"  refused: {n} × {problem.message}" for n, problem in self.reasons()]
        lines += [f"  row {number}: {problem.message}" for number, problem in self.refused[:show]]
        if len(self.refused) > show:
            lines.append(f"  … and {len(self.refused) - show} more refused")
        return lines


def count_rows(event):
    """How many rows the event's reference dataset holds."""
    return db.session.scalar(text("SELECT count(*) FROM reference_row WHERE event_id = :event_id"),
                             {"event_id": event.id})


def _copy(rows):
    """The placed rows into a temporary table, in one COPY."""
    db.session.execute(text("""
        CREATE TEMPORARY TABLE reference_import (row_number int4, source_id text, lon float8,
            lat float8, swapped_lon float8, swapped_lat float8, fields jsonb) ON COMMIT DROP"""))
    # COPY in the session's own transaction, as pointsimport.py does.
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy("COPY reference_import FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "float8", "float8", "float8", "float8", "jsonb"])
        for row in rows:
            swapped_lon, swapped_lat = row.swapped or (None, None)
            copy.write_row((row.number, row.source_id, row.lon, row.lat, swapped_lon, swapped_lat,
                            Jsonb(row.fields)))


def _replace(event, kind):
    """Replace the event's rows with those of reference_import inside the zone, in a savepoint
    undone when none is; return (replaced, {row number: what was fixed or None})."""
    savepoint = db.session.begin_nested()
    replaced = db.session.execute(text("DELETE FROM reference_row WHERE event_id = :event_id"),
                                  {"event_id": event.id}).rowcount
    loaded = dict(db.session.execute(INSERT, {"event_id": event.id, "kind": kind,
                                                    "swapped": SWAPPED}).all())
    if loaded:
        savepoint.commit()
        return replaced, loaded
    savepoint.rollback()
    return 0, {}


def count_checks(event):
    """How many verdicts walkers gave on the event's reference rows."""
    return db.session.scalar(text(
        "SELECT count(*) FROM submission WHERE event_id = :event_id AND reference_row_id IS NOT NULL"),
        {"event_id": event.id})


def _preset(kind, preset):
    """The preset the rows are checked with: the kind's own, else the one the organiser chose."""
    preset = PRESET_OF_KIND.get(kind) or (preset or "").strip()
    if not preset:
        raise Invalid("reference_preset_needed", field="preset")
    if preset not in all_presets():
        raise Invalid("unknown_preset", field="preset", preset=preset[:40])
    return preset


def _describe(event, table, report, kind, preset):
    """Write the dataset's description, and offer its preset on the event."""
    dataset = db.session.get(ReferenceDataset, event.id) or ReferenceDataset(event_id=event.id)
    dataset.kind, dataset.preset, dataset.source, dataset.schema = kind, preset, report.source, table.schema
    dataset.format, dataset.columns, dataset.delimiter = table.format, table.columns, table.delimiter
    dataset.lat_column, dataset.lon_column, dataset.crs = table.lat_column, table.lon_column, report.crs
    dataset.imported_at = db.func.now()
    db.session.add(dataset)
    if preset not in event.presets:
        event.presets = [*event.presets, preset]
        report.preset_added = True


def import_reference(event, data, source, kind, crs=None, lat=None, lon=None, id_name=None,
                     preset=None):
    """Load a file's bytes as the event's reference dataset; return the Report. Raises Invalid,
    with nothing written, when the file cannot be read whole, when a GeoJSON or CSV names no
    preset to check its rows with, or once walkers have checked the rows there. The caller
    commits."""
    table = read_file(data, kind, crs, lat, lon, id_name)
    preset = _preset(kind, preset)
    checks = count_checks(event)
    if checks:
        raise Invalid("reference_checked", checks=checks)
    report = Report(source, kind, (crs or WGS84).strip().upper(), table.encoding, table.schema,
                    read=len(table.rows), cp1252_lines=table.cp1252_lines,
                    lost_characters=table.lost_characters, preset=preset)
    placed = [row for row in table.rows if row.problem is None]
    loaded = {}
    if placed:
        _copy(placed)
        report.replaced, loaded = _replace(event, kind)
        db.session.execute(text("DROP TABLE reference_import"))
    if loaded:
        _describe(event, table, report, kind, preset)
    else:
        report.kept = count_rows(event)
    report.loaded = len(loaded)
    report.fixed = [(number, what) for number, what in sorted(loaded.items()) if what]
    outside = Invalid("reference_outside_zone")
    report.refused = [(row.number, row.problem or outside) for row in table.rows
                      if row.number not in loaded]
    return report
