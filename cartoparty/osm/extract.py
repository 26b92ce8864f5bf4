"""The only module that reads OSM files (extracts): objects of the wanted kinds, as overpass.fetch gives them.

pyosmium reads whatever libosmium reads: .osm, .osm.pbf, .osm.gz, .osm.bz2 (the format comes from the
file name). A file is read in two passes:

1. relations only, keeping those whose tags match; this tells which ways are their members;
2. nodes and ways, with node locations kept in memory by libosmium's "flex_mem" index: a sparse
   table for an extract (about 16 bytes per node), a dense array only for very large files.

libosmium drops objects before they reach Python unless they carry the first tag of some tag set;
ways escape that filter only when a matching relation needs its (untagged) member ways.

Positions follow Overpass's `out center`: a way or relation is placed at the centre of the bounding box
of its nodes; a relation's box covers its member nodes and the nodes of its member ways (members that
are relations are not followed). An element is kept when that position is inside the bbox, edges
included. Members missing from the file (a relation cut by the extract's edge) are left out of the
box; an object with no located node at all is skipped, and the skipped ones are logged. The location
index keeps positive node ids only, so ways of unsaved JOSM edits (negative ids) are skipped too.
"""

import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import osmium

from ..errors import CartopartyError
from .overpass import Element, _checked_bbox

log = logging.getLogger(__name__)

LOCATION_INDEX = "flex_mem"
_NO_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)  # what pyosmium gives when the file has none


class OsmFileError(CartopartyError):
    """The OSM file is missing, unreadable, corrupt or in a format pyosmium does not know."""

    status = 422


class _Extent:
    """The bounding box of the locations added so far (lat, lon in WGS84 degrees); empty at first."""

    __slots__ = ("south", "west", "north", "east")

    def __init__(self):
        self.south = self.west = math.inf
        self.north = self.east = -math.inf

    def add(self, lat, lon):
        """Widen the box to take in (lat, lon)."""
        self.south, self.north = min(self.south, lat), max(self.north, lat)
        self.west, self.east = min(self.west, lon), max(self.east, lon)

    def extend(self, other):
        """Widen the box to take in another box."""
        if other:
            self.add(other.south, other.west)
            self.add(other.north, other.east)

    def __bool__(self):
        return self.south <= self.north

    def centre(self):
        """(lat, lon) of the middle of the box, rounded to OSM's 1e-7 degrees."""
        return round((self.south + self.north) / 2, 7), round((self.west + self.east) / 2, 7)


class _Relation:
    """What the first pass keeps of a matching relation until its members have been read."""

    __slots__ = ("element", "ways", "nodes")

    def __init__(self, element, ways, nodes):
        self.element, self.ways, self.nodes = element, ways, nodes


def read_extract(path, bbox, tag_sets):
    """Elements in bbox (south, west, north, east, WGS84 degrees) matching any tag set, from an OSM file."""
    # tag_sets: a list of dicts; an object matches a set when it carries all of its key=value pairs.
    south, west, north, east = _checked_bbox(bbox)
    tag_sets = _checked_tag_sets(tag_sets)
    path = Path(path)
    if not path.is_file():
        raise OsmFileError("osm_file_missing", name=path.name)
    started = time.monotonic()
    try:
        relations = _read_relations(path, tag_sets)
        found, way_extents, locations = _read_nodes_and_ways(path, tag_sets, relations)
        found += _place_relations(relations, way_extents, locations, path.name)
    except (RuntimeError, UnicodeDecodeError) as error:  # libosmium's errors arrive as RuntimeError
        raise OsmFileError("osm_file_unreadable", detail=_reason(path, error)) from None
    elements, skipped = [], []
    for element_fields, extent in found:
        if not extent:
            skipped.append(f"{element_fields['osm_type']} {element_fields['osm_id']}")
            continue
        lat, lon = extent.centre()
        if south <= lat <= north and west <= lon <= east:
            elements.append(Element(**element_fields, lat=lat, lon=lon))
    if skipped:
        log.warning("%s: %d matching objects without a located node skipped (%s)",
                    path.name, len(skipped), ", ".join(skipped[:10]) + (", …" if len(skipped) > 10 else ""))
    log.info("%s: %d elements read in %.2f s", path.name, len(elements), time.monotonic() - started)
    return elements


def _checked_tag_sets(tag_sets):
    """tag_sets as a list of non-empty {key: value} dicts of strings, or ValueError."""
    if not tag_sets or not all(tag_sets):
        raise ValueError("give at least one tag set, each with at least one tag")
    return [{str(key): str(value) for key, value in tags.items()} for tags in tag_sets]


def _reason(path, error):
    """A one-line message naming the file (not its folders) and what libosmium found wrong."""
    reason = " ".join(str(error).replace(str(path), path.name).split()) or "unknown error"
    return f"cannot read the OSM file {path.name}: {reason}"


def _matches(tags, tag_sets):
    """Whether tags (a pyosmium TagList or a dict) carry every key=value pair of some tag set."""
    return any(all(tags.get(key) == value for key, value in wanted.items()) for wanted in tag_sets)


def _prefilter(tag_sets):
    """A libosmium filter passing objects that carry the first tag of some set: no match is lost."""
    return osmium.filter.TagFilter(*{next(iter(wanted.items())) for wanted in tag_sets})


def _fields(osm_type, obj):
    """The Element fields of a pyosmium object but its position (the object is only valid while read)."""
    timestamp = obj.timestamp
    return {"osm_type": osm_type, "osm_id": obj.id, "version": obj.version or None,
            "timestamp": None if timestamp == _NO_TIMESTAMP else timestamp.astimezone(UTC),
            "tags": dict(obj.tags)}


def _read_relations(path, tag_sets):
    """First pass: the matching relations, with the ids of their member ways and nodes."""
    processor = osmium.FileProcessor(str(path), osmium.osm.RELATION).with_filter(_prefilter(tag_sets))
    relations = []
    for relation in processor:
        if relation.visible and _matches(relation.tags, tag_sets):
            members = [(member.type, member.ref) for member in relation.members]
            relations.append(_Relation(
                _fields("relation", relation),
                ways={ref for kind, ref in members if kind == "w"},
                nodes={ref for kind, ref in members if kind == "n"}))
    return relations


def _read_nodes_and_ways(path, tag_sets, relations):
    """Second pass: matching nodes and ways with their extents, the extents of member ways, the locations."""
    member_ways = set().union(*(relation.ways for relation in relations))
    # Untagged member ways must reach Python, so then only nodes are filtered by libosmium.
    filtered = osmium.osm.NODE if member_ways else osmium.osm.NODE | osmium.osm.WAY
    processor = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
                 .with_locations(LOCATION_INDEX)
                 .with_filter(_prefilter(tag_sets).enable_for(filtered)))
    found, way_extents = [], {}
    for obj in processor:
        if not obj.visible:
            continue
        if obj.is_node():
            if _matches(obj.tags, tag_sets):
                extent = _Extent()
                if obj.location.valid():
                    extent.add(obj.location.lat, obj.location.lon)
                found.append((_fields("node", obj), extent))
            continue
        extent = _way_extent(obj)
        if obj.id in member_ways:
            way_extents[obj.id] = extent
        if _matches(obj.tags, tag_sets):
            found.append((_fields("way", obj), extent))
    return found, way_extents, processor.node_location_storage


def _way_extent(way):
    """The box of a way's located nodes (nodes missing from the file have no location)."""
    extent = _Extent()
    for node in way.nodes:
        if node.location.valid():
            extent.add(node.location.lat, node.location.lon)
    return extent


def _place_relations(relations, way_extents, locations, name):
    """(fields, extent) of each matching relation, from the members found in the file."""
    placed, incomplete = [], 0
    for relation in relations:
        extent = _Extent()
        missing = 0
        for way_id in relation.ways:
            if way_id in way_extents:
                extent.extend(way_extents[way_id])
            else:
                missing += 1
        for node_id in relation.nodes:
            location = _location(locations, node_id)
            if location is None:
                missing += 1
            else:
                extent.add(location.lat, location.lon)
        incomplete += bool(missing and extent)
        placed.append((relation.element, extent))
    if incomplete:
        log.info("%s: %d relations placed from the part of their members found in the file", name, incomplete)
    return placed


def _location(locations, node_id):
    """The location of a node read in the second pass, or None."""
    try:
        location = locations.get(node_id)
    except (KeyError, TypeError):  # not in the file; TypeError for the negative ids of unsaved edits
        return None
    return location if location.valid() else None
