"""A town's dataset file read into rows: its text, its table (CSV or GeoJSON), each row's own
identifier, all its fields as read, and its position in WGS84 (reprojected with pyproj).

- Text: UTF-16 by its BOM, else UTF-8 (with or without a BOM) and, line by line, Windows-1252
  where a line is not UTF-8. U+FFFD already in the file (accents lost before it reached us) is
  kept and counted. A NUL byte, or a line neither UTF-8 nor Windows-1252, refuses the file.
- CSV: `,`, `;` or tab between cells, taken from the header line; blank lines skipped. GeoJSON
  (a text starting with `{`): a FeatureCollection, or one Feature, of Points.
- Position, by kind (column names compared without case, spaces or leading `#`):
  dae, schema-dae 1.0.7 and 1.0.8: lat_coor1 / long_coor1 (c_lat_coor1 / c_long_coor1 in the
  Géo'DAE register's exports); trees, schema-arbre 0.2 and 0.3: latitude / longitude; then, for
  every kind, latitude|lat|y|coord_y and longitude|lon|lng|long|x|coord_x, else one "lat, lon"
  text column (geo_point, geo_point_2d: Opendatasoft exports such as Toulouse's). `lat` and
  `lon` name other columns; the same column for both is a "lat, lon" text. With a projected
  CRS, `lat` is the northing (y) and `lon` the easting (x).
- Identifier: schema-arbre's `id` (its primary key); for schema-dae, which has none, `gid` or
  `c_gid` (the register's); `id_name` names another column (a GeoJSON property); else a
  GeoJSON feature's own `id`; else the row number: its line in the file (the header is line 1,
  as a spreadsheet numbers it) or a feature's rank from 1.

A blank cell or "-" is no value when read as a coordinate or an identifier; the fields keep
what the file says. Each row's problem is named (store.py refuses it with that reason): no
position, a zero coordinate, a coordinate that is not a number, no identifier, more cells than
columns, an identifier an earlier row holds, a position that cannot be reprojected.
"""

import codecs
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field

from ..errors import Invalid

KINDS = ("dae", "trees", "geojson", "csv")
WGS84 = "EPSG:4326"
CRS_FORMAT = re.compile(r"EPSG:\d{4,6}")

LAT_NAMES = {"dae": ("lat_coor1", "c_lat_coor1"), "trees": ("latitude",)}
LON_NAMES = {"dae": ("long_coor1", "c_long_coor1"), "trees": ("longitude",)}
ANY_LAT = ("latitude", "lat", "y", "coord_y")
ANY_LON = ("longitude", "lon", "lng", "long", "x", "coord_x")
PAIR_NAMES = ("geo_point", "geo_point_2d", "geopoint")
ID_NAMES = {"dae": ("gid", "c_gid"), "trees": ("id",)}
# A column only one version of the schema has: 1.0.8 replaced disp_j and disp_h with
# dispo_horaires; schema-arbre 0.3 dropped the "_arbre" of genre_arbre and its kin.
SCHEMAS = {"dae": (("dispo_horaires", "schema-dae 1.0.8"), ("c_dispo_horaires", "schema-dae 1.0.8"),
                   ("disp_j", "schema-dae 1.0.7"), ("c_disp_j", "schema-dae 1.0.7")),
           "trees": (("genre", "schema-arbre 0.3"), ("genre_arbre", "schema-arbre 0.2"))}
BLANKS = ("", "-")
# A decimal number, its separator a point or a comma; no "nan", "inf" nor "1_000".
NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")
LOST = "\ufffd"


@dataclass
class Row:
    """One row of the file: where it is in the file, its identifier, its fields as read, its
    coordinates as the file gives them (x: longitude or easting, y: latitude or northing) and
    its position in WGS84 degrees, straight and with x and y swapped."""

    number: int
    source_id: str | None
    fields: dict
    x: float | None = None
    y: float | None = None
    lon: float | None = None
    lat: float | None = None
    swapped: tuple | None = None  # (lon, lat) if x and y were the other way round
    problem: Invalid | None = None


@dataclass
class Table:
    """A file read whole: its rows and how it was read."""

    format: str  # "csv" or "geojson"
    encoding: str
    rows: list = field(default_factory=list)
    schema: str | None = None
    cp1252_lines: int = 0
    lost_characters: int = 0  # rows holding U+FFFD
    # What writing the file back in its own layout needs: the fields' names in order, the CSV
    # delimiter, and the fields of the position (the same one for a "lat, lon" text).
    columns: list = field(default_factory=list)
    delimiter: str = ","
    lat_column: str | None = None
    lon_column: str | None = None


def decode(data):
    """(text, encoding, lines read as Windows-1252) of a file's bytes, or Invalid when they
    are not text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise Invalid("reference_not_text") from None
        if "\x00" in text:
            raise Invalid("reference_not_text")
        return text, "utf-16", 0
    if b"\x00" in data:  # PostgreSQL cannot store it, and no text file holds one
        raise Invalid("reference_not_text")
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8"), encoding, 0
    except UnicodeDecodeError:
        pass
    # Line by line: a file saved by two programs can be UTF-8 here and Windows-1252 there.
    lines, fallback = [], 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            lines.append(line.decode("cp1252"))
        except UnicodeDecodeError:  # one of the five bytes Windows-1252 leaves undefined
            raise Invalid("reference_encoding", line=number) from None
        fallback += 1
    return "\n".join(lines), "cp1252", fallback


def column_key(name):
    """A column name as compared: no case, no leading '#', spaces and hyphens as '_'."""
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("#").strip().lower())


def _first(keys, names):
    return next((keys.index(name) for name in names if name in keys), None)


def _named(header, name, option):
    """The index of the column the organiser named: that name, else the same once compared."""
    if name in header:
        return header.index(name)
    keys = [column_key(column) for column in header]
    if column_key(name) in keys:
        return keys.index(column_key(name))
    raise Invalid("reference_no_column", field=option, name=name[:100])


def position_columns(header, kind, lat=None, lon=None):
    """(lat index, lon index) of the columns of a row's position, the same index twice for a
    "lat, lon" text column; Invalid when the header has none."""
    if lat or lon:
        if not (lat and lon):
            raise Invalid("reference_lat_and_lon", field="lat" if not lat else "lon")
        return _named(header, lat, "lat"), _named(header, lon, "lon")
    keys = [column_key(name) for name in header]
    for lats, lons in ((LAT_NAMES.get(kind, ()), LON_NAMES.get(kind, ())), (ANY_LAT, ANY_LON)):
        y, x = _first(keys, lats), _first(keys, lons)
        if y is not None and x is not None:
            return y, x
    pair = _first(keys, PAIR_NAMES)
    if pair is not None:
        return pair, pair
    raise Invalid("reference_no_coordinates", field="lat", columns=", ".join(header)[:300])


def _schema(header, kind):
    keys = {column_key(name) for name in header}
    return next((schema for name, schema in SCHEMAS.get(kind, ()) if name in keys), None)


def _identifier(value, name, number):
    """A row's own identifier, as text; its row number when the file has none."""
    if name is None:
        return str(number)
    if isinstance(value, dict | list) or value is None or str(value).strip() in BLANKS:
        raise Invalid("reference_no_id", field="id", name=name[:100])
    return str(value).strip()


def _number(text, name):
    """A coordinate from a cell (a decimal comma is a point), None when blank."""
    text = text.strip()
    if text in BLANKS:
        return None
    if not NUMBER.fullmatch(text):
        raise Invalid("reference_not_number", field=name[:100], name=name[:100])
    return float(text.replace(",", "."))


def _checked(x, y):
    """(x, y), or Invalid: a coordinate missing, or zero (a placeholder, not a place)."""
    if x is None or y is None:
        raise Invalid("reference_no_position")
    if x == 0 or y == 0:
        raise Invalid("reference_zero_position")
    return x, y


def _cells_position(cells, header, lat_index, lon_index):
    """(x, y) of a CSV row from its cells."""
    def cell(index):
        return cells[index] if index < len(cells) else ""

    if lat_index != lon_index:
        return _checked(_number(cell(lon_index), header[lon_index]),
                        _number(cell(lat_index), header[lat_index]))
    text = cell(lat_index).strip()
    if text in BLANKS:
        raise Invalid("reference_no_position")
    parts = [part.strip() for part in text.split(",")]  # "43.5850789334, 1.43591944506"
    if len(parts) != 2 or not all(NUMBER.fullmatch(part) for part in parts):
        raise Invalid("reference_not_pair", field=header[lat_index][:100], name=header[lat_index][:100])
    return _checked(float(parts[1]), float(parts[0]))


def field_names(header):
    """The header's names as the keys of a row's fields; a repeated name gets its rank."""
    names, seen = [], {}
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def _csv_row(number, cells, names, columns):
    lat_index, lon_index, id_index = columns
    row = Row(number, None, dict(zip(names, cells, strict=False)))
    try:
        if any(cell.strip() for cell in cells[len(names):]):
            raise Invalid("reference_extra_cells", columns=len(names))
        row.source_id = _identifier(cells[id_index] if id_index is not None and id_index < len(cells)
                                    else None, None if id_index is None else names[id_index], number)
        row.x, row.y = _cells_position(cells, names, lat_index, lon_index)
    except Invalid as problem:
        row.problem = problem
    return row


# The csv module's own default limit on a cell, held here whatever the process sets it to
# (frictionless raises it for the whole process when it is imported).
MAX_CELL = 131_072


def _bounded(reader):
    """The reader's rows, a csv.Error for a cell longer than MAX_CELL."""
    for cells in reader:
        if any(len(cell) > MAX_CELL for cell in cells):
            raise csv.Error(f"a cell longer than {MAX_CELL} characters")
        yield cells


def read_csv(text, kind, lat=None, lon=None, id_name=None):
    """The Table of a CSV text, one row per non-blank line after the header."""
    # The delimiter is the header's: decimal commas in the rows cannot mislead it.
    delimiter = max(",;\t", key=text.lstrip("\r\n").split("\n", 1)[0].count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line, rows = 1, []
    try:
        header = next((cells for cells in _bounded(reader) if any(cell.strip() for cell in cells)), None)
        if header is None:
            raise Invalid("reference_empty")
        header = [name.strip() for name in header]
        lat_index, lon_index = position_columns(header, kind, lat, lon)
        id_index = _named(header, id_name, "id") if id_name else _first(
            [column_key(name) for name in header], ID_NAMES.get(kind, ()))
        names = field_names(header)
        line = reader.line_num + 1
        for cells in _bounded(reader):
            if any(cell.strip() for cell in cells):
                rows.append(_csv_row(line, cells, names, (lat_index, lon_index, id_index)))
            line = reader.line_num + 1
    except csv.Error:
        raise Invalid("reference_csv", line=line) from None
    table = Table("csv", "", rows, _schema(header, kind), columns=names, delimiter=delimiter,
                  lat_column=names[lat_index], lon_column=names[lon_index])
    table.lost_characters = sum(any(LOST in str(value) for value in row.fields.values()) for row in rows)
    return table


def _has_nul(value):
    """Whether a JSON value holds U+0000 somewhere (jsonb cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _geometry_position(geometry):
    """(x, y) of a GeoJSON Point geometry."""
    if not isinstance(geometry, dict) or geometry.get("coordinates") in (None, []):
        raise Invalid("reference_no_position")
    if geometry.get("type") != "Point":
        raise Invalid("reference_not_point", field="geometry", type=str(geometry.get("type"))[:40])
    coordinates = geometry["coordinates"]
    if not isinstance(coordinates, list) or len(coordinates) < 2 or not all(
            isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n)
            for n in coordinates[:2]):
        raise Invalid("reference_not_number", field="coordinates", name="coordinates")
    return _checked(float(coordinates[0]), float(coordinates[1]))


def _feature_row(number, feature, kind, id_name):
    feature = feature if isinstance(feature, dict) else {}
    properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
    row = Row(number, None, properties)
    try:
        default = _first(list(properties), ID_NAMES.get(kind, ()))
        if id_name:
            row.source_id = _identifier(properties.get(id_name), id_name, number)
        elif feature.get("id") is not None:
            row.source_id = _identifier(feature["id"], "id", number)
        else:
            name = None if default is None else list(properties)[default]
            row.source_id = _identifier(properties.get(name), name, number)
        row.x, row.y = _geometry_position(feature.get("geometry"))
    except Invalid as problem:
        row.problem = problem
    return row


def read_geojson(text, kind, id_name=None):
    """The Table of a GeoJSON text: one row per feature, its properties as its fields."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise Invalid("reference_json", line=error.lineno, column=error.colno) from None
    kind_of = document.get("type") if isinstance(document, dict) else None
    if kind_of == "Feature":
        features = [document]
    elif kind_of == "FeatureCollection" and isinstance(document.get("features"), list):
        features = document["features"]
    else:
        raise Invalid("reference_not_features")
    if _has_nul(features):
        raise Invalid("reference_not_text")
    if id_name and not any(isinstance(f, dict) and isinstance(f.get("properties"), dict)
                           and id_name in f["properties"] for f in features):
        raise Invalid("reference_no_column", field="id", name=id_name[:100])
    rows = [_feature_row(number, feature, kind, id_name) for number, feature in enumerate(features, 1)]
    columns = list(dict.fromkeys(name for row in rows for name in row.fields))
    table = Table("geojson", "", rows, columns=columns)
    table.lost_characters = sum(LOST in json.dumps(row.fields, ensure_ascii=False) for row in rows)
    return table


def transformer(crs):
    """A pyproj Transformer from `crs` ("EPSG:3945") to WGS84 taking (x, y) and giving
    (lon, lat), None for WGS84 itself; Invalid when it is no EPSG code pyproj knows."""
    crs = (crs or WGS84).strip().upper()
    if not CRS_FORMAT.fullmatch(crs):
        raise Invalid("reference_crs", field="crs", crs=crs[:40])
    if crs == WGS84:
        return None
    from pyproj import CRS, Transformer  # PROJ's database is opened only when reprojecting
    from pyproj.exceptions import CRSError, ProjError

    try:
        source = CRS.from_user_input(crs)
        if not (source.is_geographic or source.is_projected):
            raise CRSError(crs)  # a vertical or engineering CRS: no position on Earth
        return Transformer.from_crs(source, WGS84, always_xy=True)
    except (CRSError, ProjError):
        raise Invalid("reference_crs", field="crs", crs=crs) from None


def _finite(lon, lat):
    return (lon, lat) if math.isfinite(lon) and math.isfinite(lat) else None


def place(rows, transform):
    """Each row's WGS84 position (lon, lat), and the one its x and y swapped give, from a
    `transformer` (None: x and y are already longitude and latitude)."""
    placed = [row for row in rows if row.problem is None]
    xs, ys = [row.x for row in placed], [row.y for row in placed]
    if not placed:
        return
    if transform is None:
        straight, swapped = (xs, ys), (ys, xs)
    else:  # one call per direction for the whole file: PROJ is fast on arrays, slow per point
        straight, swapped = transform.transform(xs, ys), transform.transform(ys, xs)
    for row, lon, lat, swapped_lon, swapped_lat in zip(placed, *straight, *swapped, strict=True):
        position, other = _finite(lon, lat), _finite(swapped_lon, swapped_lat)
        if position is None and other is None:
            row.problem = Invalid("reference_reprojection")
            continue
        row.lon, row.lat = position or (None, None)
        row.swapped = other


def refuse_duplicates(rows):
    """Refuse each row whose identifier an earlier row with a position holds already."""
    first = {}
    for row in rows:
        if row.problem is not None:
            continue
        if row.source_id in first:
            row.problem = Invalid("reference_duplicate_id", field="id", id=row.source_id[:60],
                                  row=first[row.source_id])
        else:
            first[row.source_id] = row.number


def read_file(data, kind, crs=None, lat=None, lon=None, id_name=None):
    """The Table of a file's bytes, every row placed in WGS84 or given its problem; Invalid
    (the whole file refused) when the kind or CRS is unknown or the file cannot be read whole."""
    if kind not in KINDS:
        raise Invalid("reference_kind", field="kind", kind=str(kind)[:20])
    transform = transformer(crs)
    text, encoding, cp1252_lines = decode(data)
    if text.lstrip()[:1] == "{":
        table = read_geojson(text, kind, id_name)
    else:
        table = read_csv(text, kind, lat, lon, id_name)
    table.encoding, table.cp1252_lines = encoding, cp1252_lines
    place(table.rows, transform)
    refuse_duplicates(table.rows)
    return table
