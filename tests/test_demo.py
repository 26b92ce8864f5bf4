"""The demo event checked against OpenStreetMap as a new user would: from an extract, and from
an Overpass server (a local one, answering in Overpass's JSON), then each point's outcome."""

import json
from pathlib import Path
from urllib.parse import parse_qs

import osmium
import pytest
from conftest import overpass_answer
from osmium.osm.mutable import Node

from cartoparty.cli import cli
from cartoparty.demo import ORGANISER_EMAIL, demo_password, load_demo

SHARED_EXTRACT = Path(__file__).parents[1] / "../shared/data/osm_api/map_chambery.osm"

# The features of the neighbourhood that four demo points stand beside (OSM, 2020), and a
# second tree 12 m from the first.
FEATURES = [
    (3002202144, 1, 45.5663286, 5.9315816, {"natural": "tree"}),
    (3002202156, 1, 45.5663342, 5.9314260, {"natural": "tree"}),
    (3415730562, 1, 45.5666518, 5.9327031, {"amenity": "bench"}),
    (1191146770, 5, 45.5661777, 5.9313098, {"amenity": "pharmacy", "healthcare": "pharmacy",
                                            "dispensing": "yes", "name": "Pharmacie du Faubourg"}),
    (6602445880, 1, 45.5655610, 5.9316588, {"amenity": "recycling", "recycling_type": "container",
                                            "operator": "Compost Action", "recycling:green_waste": "yes"}),
]
# What the check must say of those four points, by preset: outcome, OSM node, tag diff.
EXPECTED = {
    "tree": ("update", 3002202144,
             {"added": {"species": "Platanus × hispanica", "leaf_type": "broadleaved"}, "changed": {}}),
    "bench": ("update", 3415730562, {"added": {"backrest": "yes", "material": "wood"}, "changed": {}}),
    "pharmacy": ("existing", 1191146770, {"added": {}, "changed": {}}),
    "recycling": ("update", 6602445880,
                  {"added": {}, "changed": {"operator": ["Compost Action", "Grand Chambéry"]}}),
}


@pytest.fixture
def demo(app):
    load_demo()
    return (ORGANISER_EMAIL, demo_password())


def write_extract(path):
    with osmium.SimpleWriter(str(path)) as writer:
        for osm_id, version, lat, lon, tags in FEATURES:
            writer.add_node(Node(id=osm_id, location=(lon, lat), version=version,
                                 timestamp="2020-10-28T20:04:05Z", tags=tags))
    return path


def outcomes(client, demo):
    """{preset: [(outcome, osm_id, tag_diff), ...]} of the demo's points, as organisers get them."""
    response = client.get("/api/events/demo/submissions.geojson", auth=demo)
    assert response.status_code == 200
    found = {}
    for feature in response.json["features"]:
        match = feature["properties"]["osm_match"]
        if match is None:  # rejected points are not checked
            assert feature["properties"]["status"] == "rejected"
            continue
        found.setdefault(feature["properties"]["preset"], []).append(
            (match["outcome"], match["osm_id"], match["tag_diff"]))
    return found


def assert_checked(found):
    for preset, (outcome, osm_id, diff) in EXPECTED.items():
        assert (outcome, osm_id, diff) in found[preset], preset
    elsewhere = [outcome for preset, matches in found.items() for outcome, osm_id, _ in matches
                 if preset not in EXPECTED or osm_id is None]
    assert set(elsewhere) == {"new"}  # the points standing where OSM has nothing
    assert len(elsewhere) == sum(len(matches) for matches in found.values()) - len(EXPECTED)


def test_the_demo_checked_against_an_extract(runner, client, demo, tmp_path):
    extract = write_extract(tmp_path / "chambery.osm.pbf")
    result = runner.invoke(cli, ["osm", "import", str(extract), "--event", "demo"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["conflate", "--event", "demo"])
    assert result.exit_code == 0, result.output
    assert_checked(outcomes(client, demo))


def overpass_element(osm_id, version, lat, lon, tags):
    return {"type": "node", "id": osm_id, "lat": lat, "lon": lon, "timestamp": "2020-10-28T20:04:05Z",
            "version": version, "changeset": 93198684, "user": "Jérôme", "uid": 9392668, "tags": tags}


def test_the_demo_checked_against_an_overpass_server(runner, client, demo, fake_overpass):
    answers, queries = fake_overpass
    answers.append(overpass_answer(*(overpass_element(*feature) for feature in FEATURES)))
    result = runner.invoke(cli, ["osm", "fetch", "--event", "demo", "--force"])
    assert result.exit_code == 0, result.output
    [query] = [parse_qs(body)["data"][0] for body in queries]
    assert query.startswith("[out:json]") and 'nwr["natural"="tree"]' in query
    result = runner.invoke(cli, ["conflate", "--event", "demo"])
    assert result.exit_code == 0, result.output
    assert_checked(outcomes(client, demo))


@pytest.mark.skipif(not SHARED_EXTRACT.exists(), reason="../shared/data is not beside the project")
def test_the_demo_checked_against_the_real_osm_data_of_its_neighbourhood(runner, client, demo):
    # A real /api/0.6/map answer for part of the demo zone: 23 trees, the pharmacy, the bench...
    result = runner.invoke(cli, ["osm", "import", str(SHARED_EXTRACT.resolve()), "--event", "demo"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["conflate", "--event", "demo"]).exit_code == 0
    assert_checked(outcomes(client, demo))
    assert json.dumps(outcomes(client, demo)).count('"new"') >= 5
