"""The project's own writers of OSM files for a plan of changes: the changesets (`split`), the
osmChange upload (`write_osc`), the JOSM file (`write_josm`) and the GeoJSON preview
(`write_preview`).

Written by hand rather than with osmium's writer, which decides create or modify from
`version == 1` (a modify of a version-1 element would land in `<create>`, which the API refuses)
and writes no JOSM `action=` attribute. A change is any object with `action`, `osm_type`,
`osm_id`, `base_version`, `lat`, `lon` (WGS84 degrees), `tags_after`, `element`, `diff`,
`submission_ids` and `key`, such as `cartoparty.models.OsmChange`.

The XML writers check every value while building the document in memory and raise ValueError
before the first byte is written to `out`; the caller still writes to a temporary file and
renames it, for I/O errors.
"""

import json
import re

LICENCE_COMMENT = (
    "<!-- Data © OpenStreetMap contributors, ODbL 1.0 (https://opendatacommons.org/licenses/odbl/1-0/);"
    " new points by the event's participants -->\n"
)
ODBL_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
# What the API itself puts on <osm> (openstreetmap-website's api/map responses).
API_COPYRIGHT = (
    'copyright="OpenStreetMap and contributors" attribution="http://www.openstreetmap.org/copyright"'
    ' license="http://opendatacommons.org/licenses/odbl/1-0/"'
)
MAX_LENGTH = 255  # keys, values and roles, in Unicode characters (the API refuses longer ones)
OSM_TYPES = ("node", "way", "relation")

# Characters XML 1.0 cannot carry even as character references.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Tab, newline and CR as references: a parser would turn them into spaces in an attribute value.
_ATTR_ESCAPES = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;",
})
_CHUNK = 4096  # document parts joined per write


class _Escaped(dict):
    """Strings escaped for a double-quoted XML attribute, computed once each (keys and many
    values repeat thousands of times): `escaped[text]`; raises ValueError for what OSM or XML refuse."""

    def __missing__(self, text):
        if type(text) is not str:
            raise ValueError(f"not a string: {text!r}")
        if len(text) > MAX_LENGTH:
            raise ValueError(f"longer than {MAX_LENGTH} characters")
        bad = NOT_XML.search(text)
        if bad:
            raise ValueError(f"character U+{ord(bad.group()):04X} cannot be written in XML")
        done = self[text] = text.translate(_ATTR_ESCAPES)
        return done


def _tags_xml(tags, escaped, indent):
    """The <tag> lines of a tag dict."""
    try:
        return [f'{indent}<tag k="{escaped[key]}" v="{escaped[value]}"/>\n' for key, value in tags.items()]
    except (ValueError, TypeError):
        for key, value in tags.items():  # again, slowly, to name the key
            try:
                escaped[key], escaped[value]
            except (ValueError, TypeError) as err:
                raise ValueError(f"tag {key!r}: {err}") from None
        raise


def _element_xml(osm_type, attrs, lat, lon, element, tags, escaped, indent):
    """One node, way or relation as XML lines; attrs are its formatted id/version/… attributes."""
    inner = indent + "  "
    lines = []
    if osm_type == "node":
        # Range checks also refuse NaN (every comparison with it is false).
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"coordinates out of range: {lat!r}, {lon!r}")
        attrs += f' lat="{lat:.7f}" lon="{lon:.7f}"'
    elif osm_type == "way":
        lines = [f'{inner}<nd ref="{ref:d}"/>\n' for ref in element["nodes"]]
    elif osm_type == "relation":
        for member in element["members"]:
            kind, ref = member["type"], member["ref"]
            if kind not in OSM_TYPES:
                raise ValueError(f"member type {kind!r}")
            try:
                role = escaped[member.get("role") or ""]
            except ValueError as err:
                raise ValueError(f"member role: {err}") from None
            lines.append(f'{inner}<member type="{kind}" ref="{ref:d}" role="{role}"/>\n')
    else:
        raise ValueError(f"unknown osm_type {osm_type!r}")
    lines += _tags_xml(tags, escaped, inner)
    if not lines:
        return [f"{indent}<{osm_type} {attrs}/>\n"]
    return [f"{indent}<{osm_type} {attrs}>\n", *lines, f"{indent}</{osm_type}>\n"]


def _describe(change, placeholder=None):
    """How an error names a change: its element (or placeholder) and its plan key."""
    osm_type = getattr(change, "osm_type", None) or "element"
    osm_id = placeholder if placeholder is not None else getattr(change, "osm_id", None)
    return f"{osm_type} {osm_id} (key {getattr(change, 'key', None)!r})"


def _check_change(change):
    """Refuse what the writers must never write: a delete, a new way, a modify without id/version."""
    if change.action == "create":
        if change.osm_type != "node":
            raise ValueError(f"only nodes are created, not a {change.osm_type!r}")
    elif change.action == "modify":
        if change.osm_type not in OSM_TYPES:
            raise ValueError(f"unknown osm_type {change.osm_type!r}")
        if not (isinstance(change.osm_id, int) and change.osm_id > 0):
            raise ValueError(f"a modify needs a positive osm_id, not {change.osm_id!r}")
        if not (isinstance(change.base_version, int) and change.base_version > 0):
            raise ValueError(f"a modify needs its base version, not {change.base_version!r}")
    else:
        raise ValueError(f"action {change.action!r}: only create and modify are written")


def _change_xml(change, attrs, escaped, indent, placeholder=None):
    """A checked change as XML lines; any problem becomes a ValueError naming the element."""
    try:
        _check_change(change)
        return _element_xml(change.osm_type, attrs, change.lat, change.lon, change.element,
                            change.tags_after, escaped, indent)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"{_describe(change, placeholder)}: {err}") from None


def _write(out, parts):
    """Write text parts to a binary file object as UTF-8, a few thousand parts at a time."""
    for start in range(0, len(parts), _CHUNK):
        out.write("".join(parts[start:start + _CHUNK]).encode("utf-8"))


def _split_actions(changes):
    """(creates, modifies) of the changes, refusing any other action."""
    creates, modifies = [], []
    for change in changes:
        if change.action == "create":
            creates.append(change)
        elif change.action == "modify":
            modifies.append(change)
        else:
            raise ValueError(f"{_describe(change)}: action {change.action!r}: only create and modify")
    return creates, modifies


def write_osc(changes, out, changeset_id=None, generator="cartoparty"):
    """Write an osmChange 0.6 document (creates with ids -1, -2, … then modifies at their base
    versions) to the binary file `out`; return [(placeholder_id, change)] for the creates.

    With `changeset_id` every element carries changeset="N", as the API requires of an upload.
    Raises ValueError before anything is written."""
    escaped = _Escaped()
    creates, modifies = _split_actions(changes)
    extra = f' changeset="{int(changeset_id)}"' if changeset_id is not None else ""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', LICENCE_COMMENT,
             f'<osmChange version="0.6" generator="{escaped[generator]}">\n']
    placeholders = []
    if creates:
        parts.append("  <create>\n")
        for number, change in enumerate(creates, start=1):
            # No version on a create: the API ignores it, and a placeholder has none.
            parts += _change_xml(change, f'id="-{number}"{extra}', escaped, "    ", -number)
            placeholders.append((-number, change))
        parts.append("  </create>\n")
    if modifies:
        parts.append("  <modify>\n")
        for change in modifies:
            attrs = f'id="{change.osm_id}" version="{change.base_version}"{extra}'
            parts += _change_xml(change, attrs, escaped, "    ")
        parts.append("  </modify>\n")
    parts.append("</osmChange>\n")
    _write(out, parts)
    return placeholders


def write_josm(changes, out, changeset_tags, generator="cartoparty", extra_nodes=()):
    """Write a JOSM .osm file of the changes to the binary file `out`: the changeset tags JOSM
    pre-fills its upload dialog with, new nodes with ids -1, -2, …, modified elements at their
    base versions, and `extra_nodes` (unmodified nodes a modified way needs) as plain nodes.

    Raises ValueError before anything is written."""
    # JOSM's reader (JOSM/josm src/org/openstreetmap/josm/io/AbstractReader.java):
    # parseVersion(PrimitiveData, String) only demands a version of a primitive that is not new
    # (id > 0), so new nodes carry none; parseAction() sets the modified flag from action="modify".
    # A new primitive is uploaded whatever its action (data/APIDataSet.java init(): isNewOrUndeleted()
    # goes to toAdd), but JOSM's own OsmWriter.addCommon() writes action="modify" on every modified
    # primitive, new ones included, so new nodes get it too, as in a file JOSM saved itself.
    escaped = _Escaped()
    creates, modifies = _split_actions(changes)
    # (id, lines) by type, written in the order OSM files keep (osmium check-refs needs it):
    # new ones first, -1, -2, …, then ascending ids.
    by_type = {osm_type: [] for osm_type in OSM_TYPES}
    for number, change in enumerate(creates, start=1):
        by_type["node"].append((-number, _change_xml(change, f'id="-{number}" action="modify"',
                                                     escaped, "  ", -number)))
    for change in modifies:
        attrs = f'id="{change.osm_id}" action="modify" version="{change.base_version}"'
        lines = _change_xml(change, attrs, escaped, "  ")  # checks osm_type before it is used below
        by_type[change.osm_type].append((change.osm_id, lines))
    modified = {change.osm_id for change in modifies if change.osm_type == "node"}
    by_type["node"] += _plain_nodes_xml(extra_nodes, modified, escaped)
    elements = [line for osm_type in OSM_TYPES
                for _, lines in sorted(by_type[osm_type], key=lambda pair: (pair[0] > 0, abs(pair[0])))
                for line in lines]
    try:
        changeset = _tags_xml(changeset_tags, escaped, "    ")
    except ValueError as err:
        raise ValueError(f"changeset: {err}") from None
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', LICENCE_COMMENT,
             f'<osm version="0.6" generator="{escaped[generator]}" upload="true" {API_COPYRIGHT}>\n',
             "  <changeset>\n", *changeset, "  </changeset>\n", *elements, "</osm>\n"]
    _write(out, parts)


def _plain_nodes_xml(nodes, modified, escaped):
    """Unmodified nodes (osm_id, version, lat, lon, tags) as JOSM downloads them, each once and
    none of the `modified` ids (those are written with their new tags): [(id, lines)]."""
    written, seen = [], set(modified)
    for node in nodes:
        if node.osm_id in seen:
            continue
        seen.add(node.osm_id)
        try:
            attrs = f'id="{int(node.osm_id)}" version="{int(node.version)}"'
            written.append((int(node.osm_id), _element_xml("node", attrs, node.lat, node.lon, None,
                                                           node.tags, escaped, "  ")))
        except (ValueError, TypeError) as err:
            raise ValueError(f"extra node {node.osm_id}: {err}") from None
    return written


def write_preview(changes, out, licence_url=ODBL_URL):
    """Write the changes as a GeoJSON FeatureCollection (RFC 7946, [lon, lat] in WGS84 degrees,
    7 decimals) with a top-level licence member to the binary file `out`."""
    features = []
    for change in changes:
        if change.action not in ("create", "modify"):
            raise ValueError(f"{_describe(change)}: action {change.action!r}: only create and modify")
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(change.lon, 7), round(change.lat, 7)]},
            "properties": {
                "action": change.action, "osm_type": change.osm_type, "osm_id": change.osm_id,
                "base_version": change.base_version, "diff": change.diff,
                "submissions": list(change.submission_ids), "key": change.key,
            },
        })
    document = {
        "type": "FeatureCollection",
        "licence": {"name": "ODbL-1.0", "url": licence_url, "attribution": "© OpenStreetMap contributors"},
        "features": features,
    }
    # allow_nan=False: NaN is not JSON, and a broken preview is worse than an error.
    out.write(json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8"))


def _hilbert(x, y, order):
    """Hilbert-curve index of integer cells (numpy arrays in [0, 2**order)), vectorised."""
    import numpy as np

    x, y = x.copy(), y.copy()
    index = np.zeros(x.shape, dtype=np.int64)
    last = (1 << order) - 1
    side = 1 << (order - 1)
    while side:
        rx = (x & side) > 0
        ry = (y & side) > 0
        index += np.int64(side) * np.int64(side) * ((3 * rx) ^ ry)
        # Rotate the quadrant so the curve's lower levels join up.
        flip = ~ry & rx
        x = np.where(flip, last - x, x)
        y = np.where(flip, last - y, y)
        swap = ~ry
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        side >>= 1
    return index


def split(changes, max_changes=1000, max_size=0.05):
    """Cut the changes into changesets of at most `max_changes` whose bounding box (of their lat,
    lon in WGS84 degrees) has width + height at most `max_size` degrees, following a Hilbert curve
    (ties broken by key, unique in a plan) so each is compact and the result is deterministic."""
    import numpy as np

    if max_changes < 1 or not max_size >= 0:
        raise ValueError("max_changes must be at least 1 and max_size not negative")
    changes = list(changes)
    if not changes:
        return []
    lats = np.array([change.lat for change in changes], dtype=float)
    lons = np.array([change.lon for change in changes], dtype=float)
    if not (np.isfinite(lats).all() and np.isfinite(lons).all()):
        raise ValueError("every change needs finite lat and lon")
    # A fixed world grid with square cells of about 2 m, so the order does not depend on the
    # other changes; latitude uses the lower half of the square.
    order = 24
    cells = 1 << order
    x = np.clip(((lons + 180.0) / 360.0 * cells).astype(np.int64), 0, cells - 1)
    y = np.clip(((lats + 90.0) / 360.0 * cells).astype(np.int64), 0, cells - 1)
    curve = _hilbert(x, y, order)
    keys = [str(change.key) for change in changes]
    by_key = np.array(sorted(range(len(changes)), key=keys.__getitem__), dtype=np.int64)
    sequence = by_key[np.argsort(curve[by_key], kind="stable")].tolist()
    return _cut(changes, sequence, lats.tolist(), lons.tolist(), max_changes, max_size)


def _cut(changes, sequence, lats, lons, max_changes, max_size):
    """Cut the changes, taken in `sequence`, into runs within the count and box limits."""
    runs, run = [], []
    south = north = west = east = 0.0
    for i in sequence:
        lat, lon = lats[i], lons[i]
        if run:
            s = lat if lat < south else south
            n = lat if lat > north else north
            w = lon if lon < west else west
            e = lon if lon > east else east
            if len(run) < max_changes and (n - s) + (e - w) <= max_size:
                run.append(changes[i])
                south, north, west, east = s, n, w, e
                continue
            runs.append(run)
        run = [changes[i]]
        south = north = lat
        west = east = lon
    runs.append(run)
    return runs
