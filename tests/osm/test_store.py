import json
from dataclasses import astuple
from datetime import UTC, datetime

import pytest
from conftest import a_submission, overpass_answer

from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.models import OsmElement, OsmSnapshot
from cartoparty.osm import store
from cartoparty.osm.overpass import Element, OverpassError

TREE_NEARBY = {"type": "node", "id": 101, "lat": 45.565, "lon": 5.92002, "version": 4,
               "timestamp": "2024-05-01T10:00:00Z", "tags": {"natural": "tree", "genus": "Tilia"}}
FAR_AWAY = {"type": "node", "id": 102, "lat": 45.58, "lon": 5.95, "version": 1,
            "timestamp": "2024-05-01T10:00:00Z", "tags": {"natural": "tree"}}
BUILDING = {"type": "way", "id": 201, "center": {"lat": 45.566, "lon": 5.921}, "version": 2,
            "timestamp": "2023-01-01T00:00:00Z", "nodes": [1, 2, 3, 1],
            "tags": {"amenity": "bench"}}


def stored(event):
    return db.session.scalars(db.select(OsmElement.osm_id).where(OsmElement.event_id == event.id)
                              .order_by(OsmElement.osm_id)).all()


def test_refresh_stores_what_is_inside_the_zone(event, fake_overpass):
    answers, queries = fake_overpass
    answers.append(overpass_answer(TREE_NEARBY, FAR_AWAY, BUILDING))
    assert store.refresh_from_overpass(event) == 2
    assert stored(event) == [101, 201]
    assert len(queries) == 1 and "natural" in queries[0] and "emergency" in queries[0]
    snapshot = db.session.get(OsmSnapshot, event.id)
    assert snapshot.source.startswith("overpass http://127.0.0.1")
    assert snapshot.fetched_at is not None and snapshot.element_count == 2


def test_refresh_waits_a_few_minutes_unless_forced(event, fake_overpass):
    answers, _ = fake_overpass
    answers.extend([overpass_answer(TREE_NEARBY), overpass_answer(TREE_NEARBY, BUILDING)])
    store.refresh_from_overpass(event)
    with pytest.raises(store.TooSoon):
        store.refresh_from_overpass(event)
    assert store.refresh_from_overpass(event, force=True) == 2


@pytest.mark.parametrize("failure", [
    (500, b"<html>Internal error</html>"),
    overpass_answer(remark="runtime error: Query timed out in \"query\" at line 3 after 61 seconds."),
    (200, b'{"version": 0.6, "elements": [{"type": "node", "id": 1'),
])
def test_a_failed_refresh_keeps_the_previous_data_and_says_why(event, fake_overpass, failure):
    answers, _ = fake_overpass
    answers.append(overpass_answer(TREE_NEARBY))
    store.refresh_from_overpass(event)
    answers.extend([failure] * 3)
    with pytest.raises(OverpassError):
        store.refresh_from_overpass(event, force=True)
    assert stored(event) == [101]
    snapshot = db.session.get(OsmSnapshot, event.id)
    assert snapshot.element_count == 1
    assert snapshot.last_error and snapshot.last_error_at


def test_cli_fetch_reports_failure_in_one_line(runner, event, fake_overpass):
    answers, _ = fake_overpass
    answers.extend([(429, b"Too many requests")] * 3)
    result = runner.invoke(cli, ["osm", "fetch", "--event", "party", "--force"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Overpass failed")
    assert len(result.output.strip().splitlines()) == 1


def test_cli_fetch_then_conflate_gives_each_point_its_match(runner, client, walker, organiser,
                                                            fake_overpass):
    answers, _ = fake_overpass
    answers.append(overpass_answer(TREE_NEARBY))
    body = a_submission(tags={"species": "Tilia cordata"})
    client.post("/api/events/party/submissions", json=body, headers=walker)
    assert runner.invoke(cli, ["conflate", "--event", "party"]).exit_code == 1  # no OSM data yet
    fetched = runner.invoke(cli, ["osm", "fetch", "--event", "party"])
    assert fetched.exit_code == 0, fetched.output
    result = runner.invoke(cli, ["conflate", "--event", "party"])
    assert result.exit_code == 0, result.output
    assert "1 update" in result.output
    features = client.get("/api/events/party/submissions.geojson").json["features"]
    match = features[0]["properties"]["osm_match"]
    assert match["outcome"] == "update"
    assert (match["osm_type"], match["osm_id"], match["osm_version"]) == ("node", 101, 4)
    assert match["tag_diff"] == {"added": {"species": "Tilia cordata"}, "changed": {}}
    assert match["distance_m"] == pytest.approx(1.56, abs=0.05)
    assert match["duplicate_of"] is None


def test_store_keeps_each_feature_as_given(event):
    when = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    tags = {"name": "Fontaine « Sainte-Claire »", "amenity": "drinking_water", "note": "a\tb\nc\\d"}
    kept = [Element("node", 2**40, 7, when, tags, 45.5650001, 5.9200001),
            Element("way", 3, None, None, {}, 45.566, 5.921),
            Element("relation", 4, 1, when, {"amenity": "bench"}, 45.56, 5.915)]  # on the zone's edge
    outside = Element("node", 5, 1, when, {"natural": "tree"}, 45.58, 5.95)
    assert store.store(event, [*kept, outside], "test") == 3
    rows = db.session.execute(db.select(
        OsmElement.osm_type, OsmElement.osm_id, OsmElement.version, OsmElement.timestamp, OsmElement.tags,
        db.func.ST_Y(OsmElement.geom), db.func.ST_X(OsmElement.geom), db.func.ST_SRID(OsmElement.geom))
        .where(OsmElement.event_id == event.id).order_by(OsmElement.osm_id)).all()
    assert [tuple(row) for row in rows] == [(*astuple(element), 4326) for element in
                                            sorted(kept, key=lambda element: element.osm_id)]
    assert db.session.get(OsmSnapshot, event.id).element_count == 3


def test_store_replaces_the_previous_snapshot(event):
    store.store(event, [Element("node", 1, 1, None, {"natural": "tree"}, 45.565, 5.92)], "test")
    store.store(event, [Element("node", 2, 1, None, {"natural": "tree"}, 45.566, 5.921)], "test")
    assert stored(event) == [2]
    assert store.store(event, [], "test") == 0
    assert stored(event) == []
    assert db.session.get(OsmSnapshot, event.id).element_count == 0


def write_extract(path, nodes):
    """An .osm.pbf extract with these (id, lat, lon, tags) nodes, written with pyosmium."""
    import osmium

    with osmium.SimpleWriter(str(path)) as writer:
        for node_id, lat, lon, tags in nodes:
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), tags=tags,
                                                    version=2, timestamp="2024-01-01T00:00:00Z"))


def test_cli_imports_an_extract_for_a_party_with_no_network(runner, event, tmp_path):
    extract = tmp_path / "chambery.osm.pbf"
    write_extract(extract, [(1, 45.565, 5.92, {"natural": "tree"}),
                            (2, 45.566, 5.921, {"amenity": "bench"}),
                            (3, 45.58, 5.95, {"natural": "tree"}),       # outside the zone
                            (4, 45.565, 5.921, {"shop": "bakery"})])     # not in the event's presets
    result = runner.invoke(cli, ["osm", "import", str(extract), "--event", "party"])
    assert result.exit_code == 0, result.output
    assert stored(event) == [1, 2]
    assert db.session.get(OsmSnapshot, event.id).source == "file chambery.osm.pbf"


def test_cli_import_of_a_broken_file_says_so_in_one_line(runner, event, tmp_path):
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"\x00\x01 not an extract")
    result = runner.invoke(cli, ["osm", "import", str(broken), "--event", "party"])
    assert result.exit_code == 1
    assert "broken.osm.pbf" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert stored(event) == []


@pytest.fixture
def fetched(runner, client, walker, organiser, fake_overpass):
    """The event with one tree recorded 1.56 m from OSM node 101, and its OSM data fetched."""
    answers, _ = fake_overpass
    answers.append(overpass_answer(TREE_NEARBY))
    client.post("/api/events/party/submissions", json=a_submission(tags={"species": "Tilia cordata"}),
                headers=walker)
    assert runner.invoke(cli, ["osm", "fetch", "--event", "party"]).exit_code == 0


def test_cli_conflate_writes_each_match_and_why_as_csv(runner, fetched, tmp_path):
    import csv

    path = tmp_path / "matches.csv"
    result = runner.invoke(cli, ["conflate", "--event", "party", "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 points written" in result.output
    [row] = list(csv.DictReader(path.open(encoding="utf-8")))
    assert (row["preset"], row["outcome"], row["osm_type"], row["osm_id"]) == (
        "tree", "update", "node", "101")
    assert float(row["distance_m"]) == pytest.approx(1.56, abs=0.05)
    assert (float(row["accuracy_m"]), float(row["sigma_m"])) == (6, 6)
    assert (row["agree"], row["runner_up"]) == ("0", "new")
    assert float(row["gap"]) == pytest.approx(float(row["new_cost"]) - float(row["cost"]), abs=0.002)
    assert [p.name for p in tmp_path.iterdir()] == ["matches.csv"]  # no temporary file left


def test_cli_conflate_writes_geojson_points(runner, fetched, tmp_path):
    path = tmp_path / "matches.geojson"
    result = runner.invoke(cli, ["conflate", "--event", "party", "--output", str(path)])
    assert result.exit_code == 0, result.output
    [feature] = json.loads(path.read_text(encoding="utf-8"))["features"]
    assert feature["geometry"]["type"] == "Point"
    assert feature["geometry"]["coordinates"] == pytest.approx([5.92, 45.565], abs=1e-3)
    properties = feature["properties"]
    assert (properties["outcome"], properties["osm_id"], properties["runner_up"]) == ("update", 101, "new")
    assert properties["cost"] < properties["new_cost"]


def test_cli_conflate_refuses_an_unknown_output_format_in_one_line(runner, fetched, tmp_path):
    path = tmp_path / "matches.xlsx"
    result = runner.invoke(cli, ["conflate", "--event", "party", "--output", str(path)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert ".csv or .geojson" in result.output
    assert not path.exists()
    assert db.session.scalar(db.text("SELECT count(*) FROM match")) == 0  # nothing matched either


def test_cli_conflate_sets_the_events_radius_for_a_preset(runner, fetched, event):
    # The tree is 1.56 m from node 101: within 4 m it is the same, within 1 m it is new.
    result = runner.invoke(cli, ["conflate", "--event", "party", "--radius", "tree=1"])
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output
    assert db.session.get(type(event), event.id).match_radii == {"tree": 1.0}
    result = runner.invoke(cli, ["conflate", "--event", "party", "--radius", "tree="])
    assert "1 update" in result.output
    assert db.session.get(type(event), event.id).match_radii == {}


@pytest.mark.parametrize("option", ["tree", "tree=0", "volcano=3", "tree=far"])
def test_cli_conflate_refuses_a_radius_that_is_not_one_in_one_line(runner, fetched, event, option):
    result = runner.invoke(cli, ["conflate", "--event", "party", "--radius", option])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "--radius" in result.output
    assert db.session.get(type(event), event.id).match_radii == {}
