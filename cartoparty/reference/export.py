"""Back to the town: its reference dataset as it imported it, corrected by the field checks, in
its own layout, and the report of what changed, row by row.

The dataset comes back in its own format: a CSV with the columns of the file imported, in the
same order and with the same delimiter (UTF-8, a header line), or a GeoJSON FeatureCollection
with the same properties. Each row is written from its stored fields, then, by its outcome
(checks.outcomes):

- confirmed, corrected, moved: the columns a survey can know take the values of the verdict's
  tags where they differ from the row's own (mapping.corrected_fields);
- moved: the position takes the verdict's, in the file's CRS and decimal separator: the
  latitude and longitude columns (or the "lat, lon" text column), the GeoJSON geometry, and an
  Opendatasoft "Geo Shape" column holding a GeoJSON Point (always WGS84);
- missing: nothing changes: a walker's "not found" is not the town's decision;
- every row gets two more columns (GeoJSON properties): `verification_terrain` (confirmé,
  corrigé, déplacé, introuvable, non vérifié) and `date_verification` (the verdict's day in the
  app's TIMEZONE, YYYY-MM-DD; empty when not checked).

Rows refused at import are not in the dataset, hence not in the export either. CSV cells a
spreadsheet would run as a formula are neutralised (exports.common.safe_cell). `validate`
checks a written CSV against a Table Schema (schema-dae, schema-arbre…) with frictionless.
"""

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, send_file

from ..accounts import event_organiser_required
from ..errors import Invalid, NotFound
from ..exports.common import replace_whole, safe_cell
from . import checks
from .mapping import corrected_fields, row_tags
from .read import WGS84, column_key, transformer

bp = Blueprint("reference_export", __name__, url_prefix="/organise")

WORDS = {"confirmed": "confirmé", "corrected": "corrigé", "moved": "déplacé",
         "missing": "introuvable", "not_checked": "non vérifié"}
ADDED = ("verification_terrain", "date_verification")
SHAPE_NAMES = ("geo_shape",)  # Opendatasoft's "Geo Shape": the point again, as GeoJSON text
CHANGE_COLUMNS = ("source_id", "row_number", "verification", "field", "old", "new")
RANKED = re.compile(r"(.+) \(\d+\)")  # read.field_names' name of a repeated column
# A row's tags cross over from its verdict unless the walker did not find it.
TAGGED = ("confirmed", "corrected", "moved")
MEDIA_TYPES = {"csv": "text/csv", "geojson": "application/geo+json"}


@dataclass
class Checked:
    """One row as it goes back to the town: its outcome, its fields corrected, what changed
    ((column, old, new), in column order) and, for GeoJSON, its point in the file's CRS."""

    source_id: str
    row_number: int
    outcome: str
    day: str
    fields: dict
    changes: list = field(default_factory=list)
    point: tuple | None = None


def dataset_of(event):
    """The event's ReferenceDataset; NotFound when it has none."""
    described = checks.dataset(event)
    if described is None:
        raise NotFound("reference_export_no_dataset", field="event")
    return described


def file_name(dataset):
    """The export's file name: the source file's, "-verifie" before its extension."""
    source = Path(dataset.source or "reference")
    return f"{source.stem}-verifie{source.suffix or '.' + dataset.format}"


def changes_name(dataset):
    """The change report's file name, after the source file's."""
    return f"{Path(dataset.source or 'reference').stem}-verifie-changements.csv"


def _moved(row):
    return row["outcome"] == "moved" and row["verdict_lat"] is not None


def _positions(dataset, rows, every):
    """{row id: (x, y) in the file's CRS}: where each moved row is now and, with `every`,
    where every other row is (lon, lat in WGS84 when the file is in WGS84). One PROJ call."""
    wanted = {}
    for row in rows:
        if _moved(row):
            wanted[row["id"]] = (row["verdict_lon"], row["verdict_lat"])
        elif every:
            wanted[row["id"]] = (row["lon"], row["lat"])
    transform = transformer(dataset.crs)
    if transform is None or not wanted:
        return wanted
    xs, ys = transform.transform(*zip(*wanted.values(), strict=True), direction="INVERSE")
    return dict(zip(wanted, zip(xs, ys, strict=True), strict=True))


def _decimals(crs):
    """Decimals a coordinate keeps: 7 for degrees (about 1 cm), 2 for metres."""
    if (crs or WGS84).upper() == WGS84:
        return 7
    from pyproj import CRS

    return 7 if CRS.from_user_input(crs).is_geographic else 2


def _number(value, decimals, comma=False):
    """A coordinate as text, no trailing zeros; with a decimal comma when the file had one."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if comma else text


def _is_point(value):
    """Whether a cell holds a GeoJSON Point, as text (CSV) or as an object (GeoJSON)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return False
    return isinstance(value, dict) and value.get("type") == "Point"


def _position_cells(dataset, fields, x, y, decimals, lon, lat):
    """{column: new text} of a moved CSV row: (x, y) in the file's CRS, (lon, lat) in WGS84."""
    lat_column, lon_column = dataset.lat_column, dataset.lon_column
    if lat_column == lon_column:
        cells = {lat_column: f"{_number(y, decimals)}, {_number(x, decimals)}"}
    else:
        cells = {lat_column: _number(y, decimals, "," in str(fields.get(lat_column, ""))),
                 lon_column: _number(x, decimals, "," in str(fields.get(lon_column, "")))}
    point = {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}
    for name, value in fields.items():
        if column_key(name) in SHAPE_NAMES and _is_point(value):
            cells[name] = json.dumps(point) if isinstance(value, str) else point
    return cells


def _typed(old, new):
    """A GeoJSON property's new value as a number when the file held a number there."""
    if isinstance(old, int | float) and not isinstance(old, bool) and isinstance(new, str):
        try:
            number = float(new.replace(",", "."))
        except ValueError:
            return new
        return int(number) if isinstance(old, int) and number.is_integer() else number
    return new


def _day(row, zone):
    """The day of the row's check (the verdict's, else the organiser's settlement), or ""."""
    when = row["verdict_observed_at"] or row["settled_at"]
    return when.astimezone(zone).date().isoformat() if when and row["outcome"] != "not_checked" else ""


def _checked(dataset, row, position, decimals, zone):
    """The Checked of one outcome row."""
    old = row["fields"]
    fields = dict(old)
    if row["outcome"] in TAGGED and row["verdict_tags"] is not None:
        corrected = corrected_fields(fields, row_tags(dataset.preset, fields), row["verdict_tags"])
        if dataset.format == "geojson":
            corrected = {name: _typed(old.get(name), value) for name, value in corrected.items()}
        fields.update(corrected)
    moved = _moved(row)
    if moved and dataset.format == "csv":
        fields.update(_position_cells(dataset, fields, *position, decimals,
                                      row["verdict_lon"], row["verdict_lat"]))
    changes = [(name, old.get(name), fields[name]) for name in _ordered(dataset, fields)
               if old.get(name) != fields[name]]
    if moved and dataset.format == "geojson":  # the geometry, read as lat, lon in WGS84
        changes.append(("geometry", f"{_number(row['lat'], 7)}, {_number(row['lon'], 7)}",
                        f"{_number(row['verdict_lat'], 7)}, {_number(row['verdict_lon'], 7)}"))
    return Checked(row["source_id"], row["row_number"], row["outcome"], _day(row, zone), fields,
                   changes, position if dataset.format == "geojson" else None)


def _ordered(dataset, fields):
    """A row's field names in the file's order, then any the columns do not list."""
    return [name for name in dataset.columns if name in fields] + [
        name for name in fields if name not in dataset.columns]


def plan(event, dataset=None):
    """Every row of the dataset as it goes back to the town, in file order (Checked)."""
    dataset = dataset or dataset_of(event)
    rows = checks.outcomes(event)
    positions = _positions(dataset, rows, every=dataset.format == "geojson")
    decimals = _decimals(dataset.crs)
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    return [_checked(dataset, row, positions.get(row["id"]), decimals, zone) for row in rows]


def _cell(value):
    """A CSV cell: as read, a spreadsheet formula neutralised; a lone "-" (the towns' and the
    schemas' "no value") is no formula and stays as it is."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return value if value == "-" else safe_cell(value)


def _header(name, columns):
    """A column's name in the header: a repeated column's again, without read's rank."""
    ranked = RANKED.fullmatch(name)
    return ranked.group(1) if ranked and ranked.group(1) in columns else name


def write_csv(handle, dataset, checked):
    """The corrected dataset as CSV text into `handle`, in the file's layout."""
    added = [name for name in ADDED if name not in dataset.columns]
    writer = csv.writer(handle, delimiter=dataset.delimiter or ",")
    writer.writerow([_cell(_header(name, dataset.columns)) for name in dataset.columns] + added)
    for row in checked:
        values = {**row.fields, ADDED[0]: WORDS[row.outcome], ADDED[1]: row.day}
        writer.writerow([_cell(values.get(name)) for name in dataset.columns + added])


def _feature_id(row):
    """A feature's id when no property holds the row's identifier (it came from the feature's
    own id, or its rank): a number when it reads back as the same number."""
    if any(str(value) == row.source_id for value in row.fields.values()):
        return {}
    return {"id": int(row.source_id) if row.source_id.isdigit() and str(int(row.source_id))
            == row.source_id else row.source_id}


def write_geojson(handle, dataset, checked):
    """The corrected dataset as a GeoJSON FeatureCollection into `handle`, in the file's CRS."""
    decimals = _decimals(dataset.crs)
    features = [{"type": "Feature", **_feature_id(row),
                 "geometry": {"type": "Point",
                              "coordinates": [round(row.point[0], decimals), round(row.point[1], decimals)]},
                 "properties": {**{name: row.fields[name] for name in _ordered(dataset, row.fields)},
                                ADDED[0]: WORDS[row.outcome], ADDED[1]: row.day}}
                for row in checked]
    json.dump({"type": "FeatureCollection", "features": features}, handle, ensure_ascii=False)


def write_dataset(handle, dataset, checked):
    """The corrected dataset into a text `handle`, in the file's own format."""
    (write_geojson if dataset.format == "geojson" else write_csv)(handle, dataset, checked)


def change_rows(checked):
    """The change report's rows (CHANGE_COLUMNS) of planned rows: one per changed field, one
    with no field for a checked row nothing changed (confirmed, missing); none unchecked."""
    rows = []
    for row in checked:
        if row.outcome == "not_checked":
            continue
        base = {"source_id": row.source_id, "row_number": row.row_number,
                "verification": WORDS[row.outcome]}
        changed = [{**base, "field": name, "old": "" if old is None else old,
                    "new": "" if new is None else new} for name, old, new in row.changes]
        rows += changed or [{**base, "field": "", "old": "", "new": ""}]
    return rows


def changes(event):
    """The change report's rows of the event's dataset (one outcomes() query)."""
    return change_rows(plan(event))


def write_changes(handle, rows):
    """The change report as CSV text into `handle`."""
    writer = csv.writer(handle)
    writer.writerow(CHANGE_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in CHANGE_COLUMNS])


def _writing(write, *args):
    """A replace_whole `produce` writing UTF-8 text with write(handle, *args)."""
    def produce(partial):
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            write(handle, *args)
    return produce


def export(event, path, report=None):
    """Write the corrected dataset to `path` (and the change report to `report`), each file
    replaced whole or not at all; return {outcome: how many rows}."""
    dataset = dataset_of(event)
    checked = plan(event, dataset)
    replace_whole(path, _writing(write_dataset, dataset, checked), dataset.format)
    if report is not None:
        replace_whole(report, _writing(write_changes, change_rows(checked)), "csv")
    return Counter(row.outcome for row in checked)


def _schema_descriptor(schema):
    """A Table Schema as a dict, from a dict or a JSON file's path; Invalid when unreadable."""
    if isinstance(schema, dict):
        return schema
    try:
        descriptor = json.loads(Path(schema).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Invalid("reference_schema", field="schema", reason=str(error)[:200]) from None
    if not isinstance(descriptor, dict):
        raise Invalid("reference_schema", field="schema", reason="not a JSON object")
    return descriptor


def schema_title(schema):
    """What a Table Schema calls itself: its title, else its name, else its file's name."""
    descriptor = _schema_descriptor(schema)
    return descriptor.get("title") or descriptor.get("name") or Path(str(schema)).name


def validate(path, schema, delimiter=None):
    """The errors of a CSV file against a Table Schema (a dict or a JSON file) extended with
    the two columns the export appends (optional strings), as frictionless finds them, each
    {"row": its number (the header is 1; None for the header), "field", "type", "message"}.
    Columns are matched by name, not place, unless the schema says otherwise (fieldsMatch)."""
    from frictionless import Dialect, FrictionlessException, Resource, Schema, fields
    from frictionless.formats import CsvControl

    try:
        descriptor = _schema_descriptor(schema)
        # By name: extra columns pass, a required one missing does not.
        table = Schema.from_descriptor({"fieldsMatch": "partial", **descriptor})
    except FrictionlessException as error:
        raise Invalid("reference_schema", field="schema", reason=str(error)[:200]) from None
    for name in ADDED:
        if not table.has_field(name):
            table.add_field(fields.StringField(name=name))
    path = Path(path).resolve()
    # Without a delimiter, frictionless sniffs it.
    dialect = {"dialect": Dialect(controls=[CsvControl(delimiter=delimiter)])} if delimiter else {}
    # frictionless reads only paths under its base path: the file's own folder.
    resource = Resource(path=path.name, basepath=str(path.parent), format="csv", encoding="utf-8",
                        schema=table, **dialect)
    report = resource.validate(limit_errors=100_000)
    return [{"row": row, "field": name, "type": kind, "message": message} for row, name, kind, message
            in report.flatten(["rowNumber", "fieldName", "type", "message"])]


def _download(text, name, mimetype):
    response = send_file(io.BytesIO(text.encode("utf-8")), mimetype=mimetype, as_attachment=True,
                         download_name=name, etag=False, max_age=0)
    response.cache_control.private = True
    return response


@bp.get("/<slug>/reference/export")
@event_organiser_required
def download_dataset(event, organiser):
    """The town's dataset back, corrected, in its own format."""
    dataset = dataset_of(event)
    handle = io.StringIO(newline="")
    write_dataset(handle, dataset, plan(event, dataset))
    return _download(handle.getvalue(), file_name(dataset), MEDIA_TYPES[dataset.format])


@bp.get("/<slug>/reference/changes.csv")
@event_organiser_required
def download_changes(event, organiser):
    """The change report: each checked row, each field the checks changed."""
    dataset = dataset_of(event)
    handle = io.StringIO(newline="")
    write_changes(handle, change_rows(plan(event, dataset)))
    return _download(handle.getvalue(), changes_name(dataset), "text/csv")
