import math
import uuid

import pytest
from conftest import make_event

from cartoparty.conflate import match
from cartoparty.extensions import db
from cartoparty.models import Match, OsmElement, Participant, Submission

LAT, LON = 45.565, 5.92


def shifted(east_m=0.0, north_m=0.0):
    """(lat, lon) some metres east and north of the test spot."""
    return (LAT + north_m / 111_320,
            LON + east_m / (111_320 * math.cos(math.radians(LAT))))


@pytest.fixture
def party():
    event = make_event("osm", presets=("tree", "pharmacy", "bench"))
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    return event, walker


def record(party, preset="tree", tags=None, east_m=0.0, north_m=0.0, status="pending"):
    event, walker = party
    lat, lon = shifted(east_m, north_m)
    submission = Submission(event_id=event.id, participant_id=walker.id, client_id=uuid.uuid4(),
                            preset=preset, geom=f"SRID=4326;POINT({lon} {lat})",
                            tags={"natural": "tree", **(tags or {})} if preset == "tree" else tags or {},
                            note="", observed_at=db.func.now(), body_sha256="x", status=status)
    db.session.add(submission)
    db.session.flush()
    return submission.id


def in_osm(party, osm_id, tags, east_m=0.0, north_m=0.0, osm_type="node"):
    lat, lon = shifted(east_m, north_m)
    db.session.add(OsmElement(event_id=party[0].id, osm_type=osm_type, osm_id=osm_id, version=3,
                              tags=tags, geom=f"SRID=4326;POINT({lon} {lat})"))
    db.session.flush()


def result(submission_id):
    return db.session.get(Match, submission_id)


def test_nothing_around_is_new(party):
    point = record(party, tags={"species": "Tilia cordata"})
    in_osm(party, 1, {"natural": "tree"}, east_m=8)          # beyond a tree's 5 m
    in_osm(party, 2, {"amenity": "bench"}, east_m=1)          # not the same kind
    assert match(party[0])["new"] == 1
    assert result(point).outcome == "new"
    assert result(point).osm_id is None


def test_same_feature_with_agreeing_tags_exists(party):
    point = record(party, tags={"species": "Tilia cordata"})
    in_osm(party, 7, {"natural": "tree", "species": "Tilia cordata", "height": "12"}, east_m=2)
    match(party[0])
    found = result(point)
    assert (found.outcome, found.osm_type, found.osm_id, found.osm_version) == ("existing", "node", 7, 3)
    assert found.distance_m == pytest.approx(2, abs=0.05)
    assert found.tag_diff == {"added": {}, "changed": {}}


def test_new_and_changed_tags_make_an_update_and_nothing_is_removed(party):
    point = record(party, tags={"species": "Tilia cordata", "leaf_type": "broadleaved"})
    in_osm(party, 7, {"natural": "tree", "species": "Tilia", "denotation": "urban"}, north_m=1)
    match(party[0])
    assert result(point).outcome == "update"
    assert result(point).tag_diff == {"added": {"leaf_type": "broadleaved"},
                                      "changed": {"species": ["Tilia", "Tilia cordata"]}}


@pytest.mark.parametrize(("metres", "outcome"), [(4.9, "existing"), (5.1, "new")])
def test_the_preset_radius_is_the_limit(party, metres, outcome):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=metres)
    match(party[0])
    assert result(point).outcome == outcome


def test_two_plausible_candidates_are_ambiguous(party):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=2)
    in_osm(party, 8, {"natural": "tree"}, east_m=-2.5)
    match(party[0])
    assert result(point).outcome == "ambiguous"
    assert result(point).tag_diff is None


def test_a_pharmacy_mapped_as_a_building_matches_its_centre(party):
    point = record(party, "pharmacy", {"amenity": "pharmacy", "healthcare": "pharmacy",
                                       "name": "Pharmacie du Centre"})
    in_osm(party, 99, {"amenity": "pharmacy", "healthcare": "pharmacy", "building": "yes",
                       "name": "Pharmacie du Centre"}, east_m=30, osm_type="way")
    match(party[0])
    found = result(point)
    assert (found.outcome, found.osm_type, found.osm_id) == ("existing", "way", 99)


def test_a_tree_recorded_twice_is_a_duplicate_of_the_first(party):
    first = record(party, tags={"species": "Acer campestre"})
    second = record(party, tags={"species": "Acer campestre"}, east_m=1.5)
    neighbour = record(party, tags={"species": "Tilia cordata"}, east_m=3)  # another tree
    counts = match(party[0])
    assert result(second).outcome == "duplicate"
    assert result(second).duplicate_of_id == first
    assert result(neighbour).outcome == "new"
    assert counts == {"new": 2, "existing": 0, "update": 0, "ambiguous": 0, "duplicate": 1}


def test_one_osm_feature_goes_to_one_submission(party):
    near = record(party, tags={"species": "Tilia cordata"}, east_m=1)
    far = record(party, tags={"species": "Quercus robur"}, east_m=-3)
    in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    assert result(near).outcome in ("existing", "update")
    assert result(near).osm_id == 7
    assert result(far).outcome == "ambiguous"


def test_rejected_points_are_left_out_and_overrides_kept(party):
    rejected = record(party, status="rejected")
    kept = record(party, east_m=20)
    in_osm(party, 7, {"natural": "tree"}, east_m=20)
    db.session.add(Match(submission_id=kept, outcome="new", overridden_by="alice@example.org"))
    db.session.flush()
    match(party[0])
    assert result(rejected) is None
    assert (result(kept).outcome, result(kept).overridden_by) == ("new", "alice@example.org")


def test_matching_again_replaces_the_previous_results(party):
    point = record(party)
    match(party[0])
    in_osm(party, 7, {"natural": "tree"}, east_m=1)
    match(party[0])
    assert result(point).outcome == "existing"
    assert db.session.scalar(db.select(db.func.count()).select_from(Match)) == 1
