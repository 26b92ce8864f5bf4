"""cartoparty.osm.osmchange: every file written is read back by osmium-tool (and pyosmium, for
reading only) and, independently, by defusedxml; the split is checked on random points. No
database is used, but tests/conftest.py's autouse fixtures start PostgreSQL anyway."""

import io
import json
import math
import random
import subprocess
from types import SimpleNamespace

import defusedxml.ElementTree as DefusedET
import osmium
import pytest

from cartoparty.osm.osmchange import split, write_josm, write_osc, write_preview

# A small extract near Chambéry: a tree at version 1 (the osmium trap), a bench at version 5,
# a footway of three untagged nodes and a route relation over the footway and the bench.
BASE_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="101" version="1" lat="45.5650000" lon="5.9200000"><tag k="natural" v="tree"/></node>
  <node id="102" version="5" lat="45.5660000" lon="5.9210000">
    <tag k="amenity" v="bench"/><tag k="backrest" v="yes"/>
  </node>
  <node id="201" version="2" lat="45.5670000" lon="5.9220000"/>
  <node id="202" version="1" lat="45.5672000" lon="5.9225000"/>
  <node id="203" version="4" lat="45.5674000" lon="5.9230000"/>
  <way id="301" version="3">
    <nd ref="201"/><nd ref="202"/><nd ref="203"/><tag k="highway" v="footway"/>
  </way>
  <relation id="401" version="7">
    <member type="way" ref="301" role=""/><member type="node" ref="102" role="stop"/>
    <tag k="type" v="route"/><tag k="route" v="foot"/>
  </relation>
</osm>
"""
WAY_NODES = [201, 202, 203]
MEMBERS = [{"type": "way", "ref": 301, "role": ""}, {"type": "node", "ref": 102, "role": "stop"}]
HOSTILE = [
    'say "hi" & <bye>',
    "it's a 'quote'",
    "emoji 🌳🦉 and é",
    "line one\nline two\r\nend\tafter a tab",
    "  spaces kept  ",
    "]]> --> <!-- &amp;",
    "x" * 255,
    "é" * 255,
]


def change(action, osm_type="node", osm_id=None, base_version=None, lat=45.565, lon=5.92, tags=None,
           element=None, key=None):
    """A plan item as the writers see it (the ORM's OsmChange has the same attributes)."""
    return SimpleNamespace(
        action=action, osm_type=osm_type, osm_id=osm_id, base_version=base_version, lat=lat, lon=lon,
        tags_after=tags or {}, element=element, key=key or f"{action}-{osm_type}-{osm_id}-{lat}-{lon}",
        diff=[{"key": k, "before": None, "after": v} for k, v in (tags or {}).items()], submission_ids=[7, 8],
    )


def create(lat, lon, key=None, **tags):
    """A new node at (lat, lon) in WGS84 degrees."""
    return change("create", lat=lat, lon=lon, tags=tags, key=key)


@pytest.fixture
def base(tmp_path):
    """The base extract as an OSM XML file."""
    path = tmp_path / "base.osm"
    path.write_text(BASE_OSM, encoding="utf-8")
    return path


@pytest.fixture
def plan():
    """Two new nodes, then modifies of both base nodes, the way and the relation (complete tag sets,
    OSM's own coordinates, node list and members)."""
    return [
        create(45.5680, 5.9240, key="new-basket", amenity="waste_basket"),
        create(45.5681, 5.9241, key="new-tree", natural="tree", leaf_type="broadleaved"),
        change("modify", "node", 101, 1, 45.565, 5.92, {"natural": "tree", "species": "Tilia cordata"}),
        change("modify", "node", 102, 5, 45.566, 5.921,
               {"amenity": "bench", "backrest": "yes", "material": "wood"}),
        change("modify", "way", 301, 3, 45.5672, 5.9225, {"highway": "footway", "surface": "gravel"},
               {"nodes": WAY_NODES}),
        change("modify", "relation", 401, 7, 45.567, 5.922,
               {"type": "route", "route": "foot", "name": "Tour"}, {"members": MEMBERS}),
    ]


@pytest.fixture
def extra_nodes():
    """The way's untagged nodes as they are in the base extract."""
    return [SimpleNamespace(osm_id=201, version=2, lat=45.567, lon=5.922, tags={}),
            SimpleNamespace(osm_id=202, version=1, lat=45.5672, lon=5.9225, tags={}),
            SimpleNamespace(osm_id=203, version=4, lat=45.5674, lon=5.923, tags={})]


def write_file(path, writer, changes, **kwargs):
    """Run a writer on the changes into a file; return (path, what the writer returned)."""
    with open(path, "wb") as out:
        result = writer(changes, out, **kwargs)
    return path, result


def osmium_counts(path):
    """What `osmium fileinfo -e` counts in the file (fails the test if osmium cannot read it).

    One `-g` query per count: `-j` fails on a file with no node (it has no bounding box)."""
    counts = {}
    for kind in ("changesets", "nodes", "ways", "relations"):
        done = subprocess.run(["osmium", "fileinfo", "-e", "-g", f"data.count.{kind}", str(path)],
                              capture_output=True, text=True, check=True)
        counts[kind] = int(done.stdout)
    return counts


def read_objects(path):
    """Every object of an OSM file read with pyosmium, as {(type, id): plain data}."""
    objects = {}
    for obj in osmium.FileProcessor(str(path)):
        if isinstance(obj, osmium.osm.Changeset):
            continue  # the JOSM file's upload tags, checked apart
        data = {"version": obj.version, "tags": dict(obj.tags)}
        if obj.is_node():
            data["location"] = (obj.location.lat, obj.location.lon)
        elif obj.is_way():
            data["nodes"] = [node.ref for node in obj.nodes]
        elif obj.is_relation():
            data["members"] = [(member.type, member.ref, member.role) for member in obj.members]
        objects[(obj.type_str(), obj.id)] = data
    return objects


def parse(data):
    """The root element of an XML document, parsed with defusedxml (not osmium)."""
    return DefusedET.fromstring(data)


# --- write_osc ---------------------------------------------------------------------------------

@pytest.mark.parametrize("changeset_id", [None, 4242])
def test_osc_is_read_by_osmium_with_every_change(tmp_path, plan, changeset_id):
    path, _ = write_file(tmp_path / "ours.osc", write_osc, plan, changeset_id=changeset_id)
    counts = osmium_counts(path)
    assert (counts["nodes"], counts["ways"], counts["relations"]) == (4, 1, 1)


def test_applying_the_osc_to_the_base_gives_exactly_the_expected_objects(tmp_path, base, plan):
    osc, _ = write_file(tmp_path / "ours.osc", write_osc, plan, changeset_id=1)
    result = tmp_path / "result.osm"
    subprocess.run(["osmium", "apply-changes", str(base), str(osc), "-o", str(result)], check=True)

    untouched = {("n", 201): {"version": 2, "tags": {}, "location": (45.567, 5.922)},
                 ("n", 202): {"version": 1, "tags": {}, "location": (45.5672, 5.9225)},
                 ("n", 203): {"version": 4, "tags": {}, "location": (45.5674, 5.923)}}
    assert read_objects(result) == {
        ("n", -1): {"version": 0, "tags": {"amenity": "waste_basket"}, "location": (45.568, 5.924)},
        ("n", -2): {"version": 0, "tags": {"natural": "tree", "leaf_type": "broadleaved"},
                    "location": (45.5681, 5.9241)},
        ("n", 101): {"version": 1, "tags": {"natural": "tree", "species": "Tilia cordata"},
                     "location": (45.565, 5.92)},
        ("n", 102): {"version": 5, "tags": {"amenity": "bench", "backrest": "yes", "material": "wood"},
                     "location": (45.566, 5.921)},
        **untouched,
        ("w", 301): {"version": 3, "tags": {"highway": "footway", "surface": "gravel"}, "nodes": WAY_NODES},
        ("r", 401): {"version": 7, "tags": {"type": "route", "route": "foot", "name": "Tour"},
                     "members": [("w", 301, ""), ("n", 102, "stop")]},
    }


def test_create_holds_new_ids_without_version_and_modify_the_base_versions(plan):
    out = io.BytesIO()
    write_osc(plan, out, changeset_id=9)
    root = parse(out.getvalue())

    assert root.tag == "osmChange" and root.get("version") == "0.6" and root.get("generator") == "cartoparty"
    assert [block.tag for block in root] == ["create", "modify"]
    create_block, modify_block = root
    assert [(e.tag, e.get("id"), e.get("version")) for e in create_block] == [
        ("node", "-1", None), ("node", "-2", None)]
    # The tree at version 1 stays a modify with version="1": osmium's writer would put it in <create>.
    assert [(e.tag, e.get("id"), e.get("version")) for e in modify_block] == [
        ("node", "101", "1"), ("node", "102", "5"), ("way", "301", "3"), ("relation", "401", "7")]
    assert root.find("delete") is None


def test_modify_carries_every_tag_and_the_current_geometry(plan):
    out = io.BytesIO()
    write_osc(plan, out)
    root = parse(out.getvalue())
    bench = root.find("modify/node[@id='102']")
    assert {t.get("k"): t.get("v") for t in bench.iter("tag")} == {
        "amenity": "bench", "backrest": "yes", "material": "wood"}
    assert (bench.get("lat"), bench.get("lon")) == ("45.5660000", "5.9210000")
    assert [nd.get("ref") for nd in root.find("modify/way").iter("nd")] == ["201", "202", "203"]
    members = root.find("modify/relation").iter("member")
    assert [(m.get("type"), m.get("ref"), m.get("role")) for m in members] == [
        ("way", "301", ""), ("node", "102", "stop")]


@pytest.mark.parametrize("changeset_id, expected", [(4242, "4242"), (None, None)])
def test_changeset_attribute_is_on_every_element_only_when_given(plan, changeset_id, expected):
    out = io.BytesIO()
    write_osc(plan, out, changeset_id=changeset_id)
    elements = [e for block in parse(out.getvalue()) for e in block]
    assert len(elements) == 6
    assert {e.get("changeset") for e in elements} == {expected}


def test_write_osc_returns_the_placeholders_of_the_creates_in_order(plan):
    placeholders = write_osc(plan, io.BytesIO())
    assert placeholders == [(-1, plan[0]), (-2, plan[1])]


def test_licence_comment_follows_the_xml_declaration(plan):
    out = io.BytesIO()
    write_osc(plan, out)
    first, second = out.getvalue().decode("utf-8").splitlines()[:2]
    assert first == '<?xml version="1.0" encoding="UTF-8"?>'
    assert second == ("<!-- Data © OpenStreetMap contributors, ODbL 1.0 (https://opendatacommons.org/licenses/"
                      "odbl/1-0/); new points by the event's participants -->")


def test_coordinates_are_written_with_seven_decimals_and_no_exponent():
    out = io.BytesIO()
    write_osc([create(1e-9, -2.5e-8), create(-89.123456789, 179.99999996)], out)
    nodes = list(parse(out.getvalue()).find("create"))
    assert [(n.get("lat"), n.get("lon")) for n in nodes] == [
        ("0.0000000", "-0.0000000"), ("-89.1234568", "180.0000000")]


def test_only_modifies_means_no_create_block():
    out = io.BytesIO()
    assert write_osc([change("modify", "node", 101, 1, 45.565, 5.92, {"natural": "tree"})], out) == []
    assert [block.tag for block in parse(out.getvalue())] == ["modify"]


def test_no_changes_is_an_empty_osmchange(tmp_path):
    path, placeholders = write_file(tmp_path / "empty.osc", write_osc, [])
    assert placeholders == []
    assert list(parse(path.read_bytes())) == []
    assert osmium_counts(path)["nodes"] == 0


# --- hostile values ----------------------------------------------------------------------------

def test_hostile_values_round_trip_exactly_through_osmium(tmp_path, base):
    tags = {f"note:{i}": value for i, value in enumerate(HOSTILE)}
    tags['k"&<>é'] = "key with quotes"
    tags["k" * 255] = "longest key"
    plan = [create(45.5690, 5.9250, **tags),
            change("modify", "node", 101, 1, 45.565, 5.92, {"natural": "tree", **tags})]
    osc, _ = write_file(tmp_path / "hostile.osc", write_osc, plan, changeset_id=3)
    josm, _ = write_file(tmp_path / "hostile.osm", write_josm, plan, changeset_tags=tags)

    from_osc = read_objects(osc)
    assert from_osc[("n", -1)]["tags"] == tags
    assert from_osc[("n", 101)]["tags"] == {"natural": "tree", **tags}
    assert read_objects(josm)[("n", -1)]["tags"] == tags
    # The changeset's tags as an independent parser sees them.
    changeset = parse(josm.read_bytes()).find("changeset")
    assert {t.get("k"): t.get("v") for t in changeset} == tags


@pytest.mark.parametrize("tags, named", [
    ({"note": "x" * 256}, "'note'"),
    ({"k" * 256: "v"}, "'" + "k" * 256 + "'"),
    ({"note": "bell \x01"}, "'note'"),
    ({"note": "null \x00"}, "'note'"),
    ({"note": "not a character \ufffe"}, "'note'"),
    ({"note": "lone surrogate \ud800"}, "'note'"),
    ({"level": 2}, "'level'"),
])
def test_values_osm_or_xml_refuse_raise_before_anything_is_written(tags, named):
    plan = [create(45.5690, 5.9250, amenity="bench"),
            change("modify", "node", 102, 5, 45.566, 5.921, {"amenity": "bench", **tags}, key="bench-102")]
    for writer, kwargs in [(write_osc, {}), (write_josm, {"changeset_tags": {}})]:
        out = io.BytesIO()
        with pytest.raises(ValueError) as raised:
            writer(plan, out, **kwargs)
        message = str(raised.value)
        assert "node 102" in message and "bench-102" in message and named in message
        assert out.getvalue() == b""


def test_a_bad_role_changeset_tag_or_extra_node_is_refused():
    relation = change("modify", "relation", 401, 7, tags={"type": "route"},
                      element={"members": [{"type": "node", "ref": 102, "role": "stop\x02"}]})
    with pytest.raises(ValueError, match="relation 401.*role"):
        write_osc([relation], io.BytesIO())
    out = io.BytesIO()
    with pytest.raises(ValueError, match="changeset: tag 'comment'"):
        write_josm([create(45.569, 5.925, amenity="bench")], out, {"comment": "c" * 256})
    bad_node = SimpleNamespace(osm_id=201, version=2, lat=45.567, lon=5.922, tags={"note": "\x1b"})
    with pytest.raises(ValueError, match="extra node 201: tag 'note'"):
        write_josm([create(45.569, 5.925, amenity="bench")], out, {}, extra_nodes=[bad_node])
    assert out.getvalue() == b""


@pytest.mark.parametrize("bad", [
    change("delete", "node", 101, 1),
    change("held", "node", None, None),
    change("create", "way", element={"nodes": [1, 2]}),
    change("modify", "node", None, 3),
    change("modify", "node", 101, None),
    change("modify", "node", -5, 1),
    change("modify", "area", 101, 1),
    change("modify", "node", 101, 1, lat=float("nan")),
    change("create", lat=91.0),
    change("modify", "way", 301, 3, element={"nodes": ["201"]}),
    change("modify", "relation", 401, 7, element={"members": [{"type": "area", "ref": 1, "role": ""}]}),
], ids=["delete", "held", "new way", "no id", "no version", "negative id", "bad type", "nan", "lat 91",
        "string nd", "bad member"])
def test_changes_the_writers_must_never_write_raise_value_error(bad):
    for writer, kwargs in [(write_osc, {}), (write_josm, {"changeset_tags": {}})]:
        out = io.BytesIO()
        with pytest.raises(ValueError):
            writer([create(45.569, 5.925, amenity="bench"), bad], out, **kwargs)
        assert out.getvalue() == b""


# --- write_josm --------------------------------------------------------------------------------

CHANGESET_TAGS = {"comment": "Mapping party in Chambéry", "created_by": "cartoparty 0.1",
                  "hashtags": "#cartoparty", "source": "survey"}


def test_josm_file_is_read_by_osmium_with_no_missing_references(tmp_path, plan, extra_nodes):
    path, _ = write_file(tmp_path / "ours.osm", write_josm, plan, changeset_tags=CHANGESET_TAGS,
                         extra_nodes=extra_nodes)
    counts = osmium_counts(path)
    assert (counts["nodes"], counts["ways"], counts["relations"], counts["changesets"]) == (7, 1, 1, 1)
    subprocess.run(["osmium", "check-refs", "-r", str(path)], check=True, capture_output=True)


def test_josm_file_without_the_extra_nodes_has_missing_references(tmp_path, plan):
    """The check of the test above does catch an incomplete way."""
    path, _ = write_file(tmp_path / "ours.osm", write_josm, plan, changeset_tags=CHANGESET_TAGS)
    done = subprocess.run(["osmium", "check-refs", "-r", str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and "Nodes     in ways      missing: 3" in done.stdout + done.stderr


def test_josm_file_has_the_upload_changeset_and_the_api_attribution(plan):
    out = io.BytesIO()
    write_josm(plan, out, CHANGESET_TAGS)
    root = parse(out.getvalue())
    assert root.tag == "osm"
    assert root.attrib == {
        "version": "0.6", "generator": "cartoparty", "upload": "true",
        "copyright": "OpenStreetMap and contributors", "attribution": "http://www.openstreetmap.org/copyright",
        "license": "http://opendatacommons.org/licenses/odbl/1-0/"}
    changeset = root[0]
    assert changeset.tag == "changeset" and "id" not in changeset.attrib
    assert {t.get("k"): t.get("v") for t in changeset} == CHANGESET_TAGS


def test_josm_file_marks_new_and_modified_elements_and_keeps_versions(plan, extra_nodes):
    out = io.BytesIO()
    write_josm(plan, out, CHANGESET_TAGS, extra_nodes=extra_nodes)
    elements = list(parse(out.getvalue()))[1:]
    # Nodes, then ways, then relations; the way's nodes plain, as JOSM downloaded them.
    assert [(e.tag, e.get("id"), e.get("action"), e.get("version")) for e in elements] == [
        ("node", "-1", "modify", None), ("node", "-2", "modify", None),
        ("node", "101", "modify", "1"), ("node", "102", "modify", "5"),
        ("node", "201", None, "2"), ("node", "202", None, "1"), ("node", "203", None, "4"),
        ("way", "301", "modify", "3"), ("relation", "401", "modify", "7")]
    assert all(e.get("changeset") is None for e in elements)


def test_an_extra_node_that_is_also_modified_is_written_once(plan, extra_nodes):
    bench_as_in_osm = SimpleNamespace(osm_id=102, version=5, lat=45.566, lon=5.921, tags={"amenity": "bench"})
    out = io.BytesIO()
    write_josm(plan, out, {}, extra_nodes=[*extra_nodes, bench_as_in_osm, extra_nodes[0]])
    benches = parse(out.getvalue()).findall("node[@id='102']")
    assert len(benches) == 1 and benches[0].get("action") == "modify"
    assert len(parse(out.getvalue()).findall("node[@id='201']")) == 1


# --- write_preview -----------------------------------------------------------------------------

def test_preview_is_geojson_with_one_feature_per_change_and_the_licence(plan):
    out = io.BytesIO()
    write_preview(plan, out)
    document = json.loads(out.getvalue().decode("utf-8"))
    assert document["type"] == "FeatureCollection"
    assert document["licence"] == {"name": "ODbL-1.0", "url": "https://opendatacommons.org/licenses/odbl/1-0/",
                                   "attribution": "© OpenStreetMap contributors"}
    assert len(document["features"]) == len(plan)
    bench = document["features"][3]
    assert bench["geometry"] == {"type": "Point", "coordinates": [5.921, 45.566]}
    assert bench["properties"] == {
        "action": "modify", "osm_type": "node", "osm_id": 102, "base_version": 5, "diff": plan[3].diff,
        "submissions": [7, 8], "key": plan[3].key}
    assert document["features"][0]["properties"]["osm_id"] is None


def test_preview_rounds_to_seven_decimals_and_refuses_held_items():
    out = io.BytesIO()
    write_preview([create(45.123456789, 5.987654321, amenity="bench")], out)
    assert json.loads(out.getvalue())["features"][0]["geometry"]["coordinates"] == [5.9876543, 45.1234568]
    with pytest.raises(ValueError, match="held"):
        write_preview([change("held", "node")], io.BytesIO())


# --- split -------------------------------------------------------------------------------------

TOWNS = {"Chambéry": (45.566, 5.920), "Lyon": (45.760, 4.835), "Grenoble": (45.188, 5.724),
         "Annecy": (45.899, 6.129)}


def scatter(count, centre, spread, seed, prefix=""):
    """`count` new nodes at random within ±spread degrees of centre (lat, lon)."""
    rnd = random.Random(seed)
    lat, lon = centre
    return [create(lat + rnd.uniform(-spread, spread), lon + rnd.uniform(-spread, spread),
                   key=f"{prefix}{i:05d}", amenity="bench") for i in range(count)]


def box_size(run):
    """Width + height of a run's bounding box, in degrees."""
    lats, lons = [c.lat for c in run], [c.lon for c in run]
    return (max(lats) - min(lats)) + (max(lons) - min(lons))


def assert_is_a_split(runs, changes, max_changes, max_size):
    """Every change exactly once, every run within both limits."""
    assert sorted(c.key for run in runs for c in run) == sorted(c.key for c in changes)
    assert all(1 <= len(run) <= max_changes for run in runs)
    assert all(box_size(run) <= max_size for run in runs)


def test_split_over_a_town_respects_both_limits_with_few_changesets():
    changes = scatter(5000, TOWNS["Chambéry"], 0.02, seed=1)
    runs = split(changes, max_changes=1000, max_size=0.05)
    assert_is_a_split(runs, changes, 1000, 0.05)
    # The town (0.04 + 0.04 degrees) needs at least 5 changesets; Hilbert runs stay close to that.
    assert 5 <= len(runs) <= 10


def test_split_keeps_towns_far_apart_in_separate_compact_changesets():
    changes = [c for seed, (name, centre) in enumerate(TOWNS.items())
               for c in scatter(700, centre, 0.01, seed, prefix=name)]
    runs = split(changes, max_changes=500, max_size=0.05)
    assert_is_a_split(runs, changes, 500, 0.05)
    assert all(len({c.key[:-5] for c in run}) == 1 for run in runs)
    assert len(runs) == 2 * len(TOWNS)


def test_split_box_limit_cuts_a_sparse_area():
    changes = scatter(2000, TOWNS["Chambéry"], 0.5, seed=2)
    runs = split(changes, max_changes=10_000, max_size=0.05)
    assert_is_a_split(runs, changes, 10_000, 0.05)
    # 2000 points over a square degree at most 0.05 wide + high: many small changesets,
    # but far fewer than one per point.
    assert len(runs) < 1000


def test_split_is_the_same_whatever_the_input_order():
    changes = scatter(3000, TOWNS["Grenoble"], 0.03, seed=3)
    expected = [[c.key for c in run] for run in split(changes, max_changes=400)]
    for seed in range(3):
        shuffled = changes[:]
        random.Random(seed).shuffle(shuffled)
        assert [[c.key for c in run] for run in split(shuffled, max_changes=400)] == expected


def test_split_breaks_ties_on_one_spot_by_key():
    same_spot = [create(45.566, 5.92, key=key, amenity="bench") for key in ["c", "a", "d", "b"]]
    assert [[c.key for c in run] for run in split(same_spot, max_changes=3)] == [["a", "b", "c"], ["d"]]


def test_split_with_max_changes_one_gives_one_change_per_changeset():
    changes = scatter(10, TOWNS["Annecy"], 0.01, seed=4)
    runs = split(changes, max_changes=1)
    assert_is_a_split(runs, changes, 1, 0.05)
    assert len(runs) == 10


def test_split_of_one_change_and_of_none():
    only = create(45.566, 5.92, amenity="bench")
    assert split([only]) == [[only]]
    assert split([]) == []


def test_split_refuses_changes_without_coordinates():
    with pytest.raises(ValueError, match="finite"):
        split([create(math.nan, 5.92), create(45.566, 5.92)])


def test_josm_file_keeps_the_order_osm_files_have_whatever_the_order_of_the_plan(tmp_path):
    # The plan is in key order ("node/30" before "node/4"); osmium, like OSM files, wants new
    # nodes first then ascending ids.
    changes = [change("modify", osm_id=30, base_version=2, tags={"amenity": "bench"}),
               change("modify", osm_id=4, base_version=1, tags={"natural": "tree"}),
               create(45.566, 5.921, natural="tree"), create(45.567, 5.922, natural="tree")]
    path, _ = write_file(tmp_path / "plan.osm", write_josm, changes, changeset_tags={"comment": "x"})
    ids = [int(node.get("id")) for node in parse(path.read_bytes()).iter("node")]
    assert ids == [-1, -2, 4, 30]
    subprocess.run(["osmium", "check-refs", str(path)], check=True, capture_output=True)
