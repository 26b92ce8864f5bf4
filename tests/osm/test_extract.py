"""cartoparty.osm.extract on OSM files written here with pyosmium and on the shared real extracts;
no database."""

import logging
import random
from collections import Counter
from datetime import UTC, datetime

import osmium
import pytest
from conftest import SHARED_DATA
from osmium.osm.mutable import Node, Relation, Way

from cartoparty.errors import CartopartyError
from cartoparty.osm.extract import OsmFileError, read_extract

BBOX = (43.72, 7.40, 43.75, 7.45)  # south, west, north, east: a part of Monaco
WORLD = (-90, -180, 90, 180)
TREE = {"natural": "tree"}
DEFIBRILLATOR = {"emergency": "defibrillator"}
PHARMACY = {"amenity": "pharmacy", "healthcare": "pharmacy"}
TAG_SETS = [TREE, DEFIBRILLATOR, PHARMACY]
SURVEYED = datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
EDITED = datetime(2023, 11, 2, 8, 0, tzinfo=UTC)
FORMATS = ["osm", "osm.pbf", "osm.gz", "osm.bz2"]


def node(osm_id, lat, lon, version=1, timestamp=SURVEYED, **tags):
    """A pyosmium node at (lat, lon) in WGS84 degrees."""
    return Node(id=osm_id, location=(lon, lat), version=version, timestamp=timestamp, tags=tags)


def square(first_id, south, west, north, east):
    """Four untagged corner nodes, ids first_id to first_id + 3."""
    corners = [(south, west), (south, east), (north, east), (north, west)]
    return [node(first_id + index, lat, lon) for index, (lat, lon) in enumerate(corners)]


def write_osm(path, nodes=(), ways=(), relations=()):
    """Write the objects to path with pyosmium (the format comes from the file name); return path."""
    with osmium.SimpleWriter(str(path)) as writer:
        for obj in nodes:
            writer.add_node(obj)
        for obj in ways:
            writer.add_way(obj)
        for obj in relations:
            writer.add_relation(obj)
    return path


def a_party_area(path):
    """A small area: a tree, a defibrillator and things that must not be read, a pharmacy building, a
    pharmacy multipolygon; a tree outside BBOX."""
    nodes = [
        node(1, 43.731, 7.421, version=3, **TREE, species="Platanus x hispanica"),
        node(2, 43.735, 7.425, version=2, **DEFIBRILLATOR, indoor="yes"),
        node(3, 43.736, 7.426, amenity="bench"),
        node(4, 43.737, 7.427, amenity="pharmacy"),  # healthcare=pharmacy missing: not the whole set
        node(5, 43.800, 7.500, **TREE),
        *square(11, 43.740, 7.430, 43.742, 7.432),
        *square(21, 43.744, 7.440, 43.746, 7.444),
    ]
    ways = [
        Way(id=100, nodes=[11, 12, 13, 14, 11], version=7, timestamp=EDITED,
            tags={"building": "yes", **PHARMACY, "name": "Pharmacie du Port"}),
        Way(id=101, nodes=[21, 22, 23, 24, 21], version=1, timestamp=EDITED, tags={}),
    ]
    relations = [
        Relation(id=200, members=[("w", 101, "outer")], version=2, timestamp=EDITED,
                 tags={"type": "multipolygon", "building": "yes", **PHARMACY}),
    ]
    return write_osm(path, nodes, ways, relations)


def by_key(elements):
    return {element.key: element for element in elements}


@pytest.fixture
def _rolled_back():
    """These tests use no database: the suite's transaction fixture is not needed here."""
    yield


@pytest.fixture(params=FORMATS)
def party_file(request, tmp_path):
    """The party area written in each format pyosmium writes."""
    return a_party_area(tmp_path / f"party.{request.param}")


def shared(*parts):
    """A file of the shared real data, or a skip when the data is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_matching_nodes_ways_and_relations_inside_the_bbox_are_read(party_file):
    elements = by_key(read_extract(party_file, BBOX, TAG_SETS))
    assert set(elements) == {("node", 1), ("node", 2), ("way", 100), ("relation", 200)}
    assert elements["node", 1].tags == {"natural": "tree", "species": "Platanus x hispanica"}
    assert elements["way", 100].tags["name"] == "Pharmacie du Port"


def test_nodes_keep_their_position(party_file):
    tree = by_key(read_extract(party_file, BBOX, TAG_SETS))["node", 1]
    assert (tree.lat, tree.lon) == pytest.approx((43.731, 7.421), abs=1e-7)


def test_way_is_placed_at_the_centre_of_its_nodes(party_file):
    pharmacy = by_key(read_extract(party_file, BBOX, [PHARMACY]))["way", 100]
    assert (pharmacy.lat, pharmacy.lon) == pytest.approx((43.741, 7.431), abs=1e-7)


def test_multipolygon_is_placed_at_the_centre_of_its_member_ways(party_file):
    pharmacy = by_key(read_extract(party_file, BBOX, [PHARMACY]))["relation", 200]
    assert (pharmacy.lat, pharmacy.lon) == pytest.approx((43.745, 7.442), abs=1e-7)
    assert pharmacy.tags["type"] == "multipolygon"


def test_versions_and_timestamps_are_kept_in_utc(party_file):
    elements = by_key(read_extract(party_file, BBOX, TAG_SETS))
    assert {key: element.version for key, element in elements.items()} == {
        ("node", 1): 3, ("node", 2): 2, ("way", 100): 7, ("relation", 200): 2}
    assert elements["node", 1].timestamp == SURVEYED
    assert elements["way", 100].timestamp == EDITED
    assert all(element.timestamp.utcoffset().total_seconds() == 0 for element in elements.values())


def test_missing_version_and_timestamp_are_none(tmp_path):
    path = write_osm(tmp_path / "bare.osm", [Node(id=1, location=(7.421, 43.731), tags=TREE)])
    [tree] = read_extract(path, BBOX, [TREE])
    assert (tree.version, tree.timestamp) == (None, None)


def test_objects_outside_the_bbox_are_left_out(party_file):
    inside = by_key(read_extract(party_file, BBOX, [TREE]))
    assert set(inside) == {("node", 1)}
    around_the_far_tree = (43.79, 7.49, 43.81, 7.51)
    assert set(by_key(read_extract(party_file, around_the_far_tree, TAG_SETS))) == {("node", 5)}


def test_a_way_is_kept_or_left_out_by_its_centre(party_file):
    # The building spans 43.740–43.742; a bbox reaching 43.7415 holds its centre (43.741), one to 43.7405 not.
    assert ("way", 100) in by_key(read_extract(party_file, (43.72, 7.40, 43.7415, 7.45), [PHARMACY]))
    assert ("way", 100) not in by_key(read_extract(party_file, (43.72, 7.40, 43.7405, 7.45), [PHARMACY]))


def test_an_element_on_the_bbox_edge_is_kept(party_file):
    [tree] = read_extract(party_file, (43.731, 7.421, 43.74, 7.43), [TREE])
    assert tree.key == ("node", 1)


@pytest.mark.parametrize(("tag_sets", "expected"), [
    ([TREE], {("node", 1)}),
    ([DEFIBRILLATOR], {("node", 2)}),
    ([PHARMACY], {("way", 100), ("relation", 200)}),
    ([{"amenity": "pharmacy"}], {("node", 4), ("way", 100), ("relation", 200)}),
    ([{"amenity": "bench"}, TREE], {("node", 1), ("node", 3)}),
    ([{"natural": "tree", "species": "Platanus x hispanica"}], {("node", 1)}),
    ([{"natural": "tree", "species": "Tilia cordata"}], set()),
])
def test_objects_must_carry_every_tag_of_some_set(party_file, tag_sets, expected):
    assert set(by_key(read_extract(party_file, BBOX, tag_sets))) == expected


def test_objects_without_a_located_node_are_skipped_and_logged(tmp_path, caplog):
    # An extract cut at its edge: the way's nodes and the relation's members are not in the file.
    path = write_osm(
        tmp_path / "cut.osm.pbf", [node(1, 43.731, 7.421, **TREE), *square(21, 43.744, 7.440, 43.746, 7.444)],
        [Way(id=100, nodes=[11, 12, 13, 11], tags=PHARMACY), Way(id=101, nodes=[21, 22, 23, 24, 21])],
        [Relation(id=200, members=[("w", 102, "outer")], tags={"type": "multipolygon", **PHARMACY}),
         Relation(id=201, members=[("w", 101, "outer"), ("w", 103, "inner")],
                  tags={"type": "multipolygon", **PHARMACY})])
    with caplog.at_level(logging.INFO, logger="cartoparty.osm.extract"):
        elements = by_key(read_extract(path, BBOX, TAG_SETS))
    assert set(elements) == {("node", 1), ("relation", 201)}
    assert (elements["relation", 201].lat, elements["relation", 201].lon) == pytest.approx((43.745, 7.442))
    assert "2 matching objects without a located node skipped (way 100, relation 200)" in caplog.text
    assert "1 relations placed from the part of their members" in caplog.text


def test_a_relation_with_member_nodes_is_placed_at_their_centre(tmp_path):
    path = write_osm(tmp_path / "site.osm", [node(1, 43.730, 7.420), node(2, 43.734, 7.424)], (),
                     [Relation(id=300, members=[("n", 1, "entrance"), ("n", 2, "entrance")],
                               tags={"type": "site", **PHARMACY})])
    [site] = read_extract(path, BBOX, [PHARMACY])
    assert (site.key, site.lat, site.lon) == (("relation", 300), pytest.approx(43.732), pytest.approx(7.422))


def test_corrupt_file_raises_osm_file_error(tmp_path):
    path = tmp_path / "monaco.osm.pbf"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(OsmFileError) as raised:
        read_extract(path, BBOX, TAG_SETS)
    assert isinstance(raised.value, CartopartyError)
    assert raised.value.status == 422
    message = raised.value.message
    assert message.startswith("cannot read the OSM file monaco.osm.pbf: ")
    assert "\n" not in message and str(tmp_path) not in message


@pytest.mark.parametrize("suffix", ["osm.pbf", "osm", "osm.gz"])
def test_truncated_file_raises_osm_file_error(tmp_path, suffix):
    whole = a_party_area(tmp_path / f"whole.{suffix}").read_bytes()
    path = tmp_path / f"truncated.{suffix}"
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(OsmFileError, match=rf"^cannot read the OSM file truncated\.{suffix}: "):
        read_extract(path, BBOX, TAG_SETS)


def test_missing_file_raises_osm_file_error(tmp_path):
    with pytest.raises(OsmFileError, match=r"^Cannot read the OSM file absent\.osm\.pbf: no such file\.$"):
        read_extract(tmp_path / "absent.osm.pbf", BBOX, TAG_SETS)


@pytest.mark.parametrize("name", ["trees.csv", "trees"])
def test_unknown_format_raises_osm_file_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("lat,lon\n43.73,7.42\n")
    with pytest.raises(OsmFileError, match=rf"^cannot read the OSM file {name}: .*file format") as raised:
        read_extract(path, BBOX, TAG_SETS)
    assert str(tmp_path) not in raised.value.message


@pytest.mark.parametrize(("bbox", "tag_sets"), [
    ((43.75, 7.40, 43.72, 7.45), TAG_SETS),
    ((43.72, 7.40, 43.75), TAG_SETS),
    (BBOX, []),
    (BBOX, [TREE, {}]),
])
def test_a_wrong_bbox_or_tag_set_is_a_programming_error(tmp_path, bbox, tag_sets):
    path = a_party_area(tmp_path / "party.osm.pbf")
    with pytest.raises(ValueError):
        read_extract(path, bbox, tag_sets)


MONACO = (43.72, 7.40, 43.76, 7.45)


@pytest.mark.parametrize(("name", "defibrillators", "trees"), [
    ("monaco-latest_2019-09-30.osm.pbf", 10, 463),
    ("monaco-latest_2021-12-03.osm.pbf", 10, 516),
])
def test_monaco_extract_gives_the_known_counts(name, defibrillators, trees):
    path = shared("osm_extracts", "monaco", name)
    counts = Counter(
        "tree" if element.tags.get("natural") == "tree" else "defibrillator"
        for element in read_extract(path, MONACO, [TREE, DEFIBRILLATOR]))
    assert counts == {"defibrillator": defibrillators, "tree": trees}


def test_monaco_extract_has_versions_timestamps_and_multipolygons():
    path = shared("osm_extracts", "monaco", "monaco-latest_2019-09-30.osm.pbf")
    elements = read_extract(path, MONACO, [TREE, {"type": "multipolygon", "building": "castle"}])
    assert all(element.version and element.timestamp.tzinfo for element in elements)
    assert max(element.timestamp for element in elements) < datetime(2019, 10, 1, tzinfo=UTC)
    [palace] = [element for element in elements if element.osm_type == "relation"]
    assert palace.tags["name"] == "Palais Princier de Monaco"
    assert (palace.lat, palace.lon) == pytest.approx((43.7313, 7.4201), abs=5e-4)


def test_chambery_map_answer_gives_its_23_trees():
    path = shared("osm_api", "map_chambery.osm")
    its_bounds = (45.56533, 5.93019, 45.56666, 5.93355)
    trees = read_extract(path, its_bounds, [TREE])
    assert len(trees) == 23
    assert all(tree.osm_type == "node" and tree.version for tree in trees)


def test_the_three_encodings_of_an_extract_give_the_same_elements():
    tag_sets = [{"natural": "beach"}, {"natural": "water"}, {"amenity": "bar"},
                {"leisure": "nature_reserve"}]
    results = [sorted(read_extract(shared("osm_extracts", "osmose-backend", f"saint_barthelemy.{suffix}"),
                                   WORLD, tag_sets), key=lambda element: element.key)
               for suffix in ("osm.pbf", "osm.gz", "osm.bz2")]
    assert results[0] == results[1] == results[2]
    assert Counter(element.osm_type for element in results[0]) == {"node": 3, "way": 20, "relation": 1}


def test_gibraltar_extract_gives_its_90_trees():
    path = shared("osm_extracts", "osmose-backend", "gibraltar.osm.pbf")
    assert len(read_extract(path, WORLD, [TREE])) == 90
