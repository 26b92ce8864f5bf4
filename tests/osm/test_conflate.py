import math
import random
import uuid

import pytest
from conftest import make_event
from sqlalchemy import text

from cartoparty.errors import Conflict, Invalid, NotFound
from cartoparty.extensions import db
from cartoparty.models import Match, OsmElement, Participant, Submission
from cartoparty.osm import conflate
from cartoparty.osm.conflate import clear_override, mark_new, match, override

LAT, LON = 45.565, 5.92


def shifted(east_m=0.0, north_m=0.0, lat=LAT, lon=LON):
    """(lat, lon) about some metres east and north of a spot (the test spot by default)."""
    return (lat + north_m / 111_320,
            lon + east_m / (111_320 * math.cos(math.radians(lat))))


@pytest.fixture
def party():
    event = make_event("osm", presets=("tree", "pharmacy", "bench"))
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    return event, walker


def record(party, preset="tree", tags=None, east_m=0.0, north_m=0.0, status="pending", at=(LAT, LON),
           accuracy=None):
    event, walker = party
    lat, lon = shifted(east_m, north_m, *at)
    submission = Submission(event_id=event.id, participant_id=walker.id, client_id=uuid.uuid4(),
                            preset=preset, geom=f"SRID=4326;POINT({lon} {lat})", accuracy=accuracy,
                            tags={"natural": "tree", **(tags or {})} if preset == "tree" else tags or {},
                            note="", observed_at=db.func.now(), body_sha256="x", status=status)
    db.session.add(submission)
    db.session.flush()
    return submission.id


def in_osm(party, osm_id, tags, east_m=0.0, north_m=0.0, osm_type="node", at=(LAT, LON)):
    lat, lon = shifted(east_m, north_m, *at)
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
    far = record(party, tags={"species": "Quercus robur"}, east_m=-3)  # another tree: new
    in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    assert result(near).outcome in ("existing", "update")
    assert result(near).osm_id == 7
    assert (result(far).outcome, result(far).osm_id, result(far).duplicate_of_id) == ("new", None, None)


def test_two_trees_side_by_side_each_beside_its_own_osm_tree_are_two_matches(party):
    west = record(party, east_m=0)
    east = record(party, east_m=4)
    in_osm(party, 1, {"natural": "tree"}, east_m=0.6)
    in_osm(party, 2, {"natural": "tree"}, east_m=4.4)
    match(party[0])
    assert [(result(p).outcome, result(p).osm_id) for p in (west, east)] == [("existing", 1), ("existing", 2)]


def test_a_point_that_loses_a_feature_takes_its_own_next_best(party):
    # f1 is nearer to `second`, but `first` has only f1 and `second` has f2 too: both matched.
    first = record(party, east_m=0)
    second = record(party, east_m=3)
    in_osm(party, 1, {"natural": "tree"}, east_m=1.8)
    in_osm(party, 2, {"natural": "tree"}, east_m=6.5)
    match(party[0])
    assert (result(first).outcome, result(first).osm_id) == ("existing", 1)
    assert (result(second).outcome, result(second).osm_id) == ("existing", 2)


def test_a_chain_of_candidates_is_solved_as_one(party):
    # A–f1–B–f2–C: each point could have its neighbour's feature; the whole row is matched.
    points = [record(party, east_m=4 * i) for i in range(3)]
    for osm_id, east in ((1, 2.2), (2, 6.2), (3, 9.5)):
        in_osm(party, osm_id, {"natural": "tree"}, east_m=east)
    match(party[0])
    assert [result(p).osm_id for p in points] == [1, 2, 3]
    assert {result(p).outcome for p in points} == {"existing"}


@pytest.mark.parametrize(("accuracy", "outcome"), [(3, "new"), (15, "existing"), (None, "existing")])
def test_how_far_a_point_may_be_from_its_feature_depends_on_its_gps_accuracy(party, accuracy, outcome):
    point = record(party, "bench", {"amenity": "bench"}, accuracy=accuracy)
    in_osm(party, 7, {"amenity": "bench"}, east_m=8)  # within a bench's 10 m; 2.7 σ at ±3 m
    match(party[0])
    assert result(point).outcome == outcome


def test_a_tree_recorded_twice_beside_its_osm_tree_is_one_match_and_one_duplicate(party):
    first = record(party, tags={"species": "Tilia cordata"}, accuracy=5)
    second = record(party, tags={"species": "Tilia cordata"}, east_m=2, accuracy=5)
    in_osm(party, 7, {"natural": "tree", "species": "Tilia cordata"}, east_m=1.5)
    match(party[0])
    assert (result(second).outcome, result(second).osm_id) == ("existing", 7)  # the nearer one
    assert (result(first).outcome, result(first).duplicate_of_id) == ("duplicate", second)


def test_a_new_tree_beside_an_existing_one_is_new(party):
    existing = record(party, tags={"species": "Tilia cordata"}, accuracy=4)
    planted = record(party, tags={"species": "Prunus avium"}, east_m=3, accuracy=4)
    in_osm(party, 7, {"natural": "tree", "species": "Tilia cordata"}, east_m=0.5)
    match(party[0])
    assert (result(existing).outcome, result(existing).osm_id) == ("existing", 7)
    assert (result(planted).outcome, result(planted).duplicate_of_id) == ("new", None)


def test_the_same_points_give_the_same_matches_whatever_their_order(party):
    spots = [(random.Random(k).uniform(-8, 8), random.Random(-k).uniform(-8, 8)) for k in range(12)]
    for osm_id, (east, north) in enumerate(spots[:8], start=1):
        in_osm(party, osm_id, {"natural": "tree"}, east_m=east + 0.7, north_m=north)
    answers = []
    for order in (spots, spots[::-1]):
        ids = {spot: record(party, east_m=spot[0], north_m=spot[1], accuracy=5) for spot in order}
        match(party[0])
        answers.append({spot: (result(i).outcome, result(i).osm_id) for spot, i in ids.items()})
        db.session.execute(text("DELETE FROM submission WHERE id = ANY(:ids)"), {"ids": list(ids.values())})
    assert answers[0] == answers[1]


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


def metres_between(submission_id, other_geom_sql, **params):
    """The distance the database measures (metres on the spheroid) from a submission to a geometry."""
    return db.session.scalar(text(f"""SELECT ST_Distance(s.geom::geography, ({other_geom_sql})::geography)
        FROM submission s WHERE s.id = :id"""), {"id": submission_id, **params})


@pytest.fixture
def tree_radius(monkeypatch):
    """Set the tree preset's match radius (metres) for the next matching."""
    def set_radius(metres):
        presets = dict(conflate.all_presets())
        presets["tree"] = {**presets["tree"], "match_radius": metres}
        monkeypatch.setattr(conflate, "all_presets", lambda: presets)
    return set_radius


@pytest.mark.parametrize(("beyond_m", "outcome"), [(0.0, "existing"), (1e-6, "new")])
def test_a_feature_exactly_at_the_radius_is_near(party, tree_radius, beyond_m, outcome):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=3, north_m=2)
    distance = metres_between(point, "SELECT geom FROM osm_element WHERE osm_id = 7")
    tree_radius(distance - beyond_m)
    match(party[0])
    assert result(point).outcome == outcome
    assert result(point).distance_m == (distance if outcome == "existing" else None)


@pytest.mark.parametrize(("beyond_m", "outcome"), [(0.0, "duplicate"), (1e-6, "new")])
def test_a_point_exactly_at_the_radius_of_an_earlier_one_is_a_duplicate(party, tree_radius, beyond_m,
                                                                         outcome):
    first = record(party)
    second = record(party, east_m=-2, north_m=3)
    distance = metres_between(second, "SELECT geom FROM submission WHERE id = :first", first=first)
    tree_radius(distance - beyond_m)
    match(party[0])
    assert result(second).outcome == outcome


def test_a_feature_due_north_near_the_equator_just_inside_the_radius_is_found(party):
    # A degree of latitude is shortest at the equator (110.6 km): the search box must allow for it.
    point = record(party, at=(0.001, 10.0))
    in_osm(party, 7, {"natural": "tree"}, at=(0.001 + 4.98 / 110_574, 10.0))
    match(party[0])
    assert result(point).outcome == "existing"
    assert result(point).distance_m == pytest.approx(4.98, abs=0.01)


@pytest.mark.parametrize("lat", [45.565, 0.0004, -33.9, 69.65])
def test_matching_finds_exactly_the_pairs_within_the_radius_wherever_they_lie(party, lat):
    """Features and second points around 200 points, at random distances up to twice the
    radius and in random directions (so across grid cells), each pair far from the others:
    near means at most the radius, as the database measures it."""
    draw = random.Random(lat)
    features, seconds = {}, {}
    for n in range(200):
        at = (lat + n // 10 * 0.005, 10.0 + n % 10 * 0.005)  # 190 m apart or more
        preset, radius, tags = draw.choice([("tree", 5, {}), ("bench", 10, {"amenity": "bench"}),
                                            ("pharmacy", 50, {"amenity": "pharmacy",
                                                              "healthcare": "pharmacy"})])
        metres, angle = 2 * radius * draw.random(), 2 * math.pi * draw.random()
        east, north = metres * math.cos(angle), metres * math.sin(angle)
        point = record(party, preset, tags, at=at)
        if n % 2:
            in_osm(party, n, {"natural": "tree"} if preset == "tree" else tags, east, north, at=at)
            features[point] = (n, radius)
        else:
            seconds[record(party, preset, tags, east, north, at=at)] = (point, radius)
    match(party[0])
    for point, (osm_id, radius) in features.items():
        distance = metres_between(point, "SELECT geom FROM osm_element WHERE osm_id = :n", n=osm_id)
        assert result(point).outcome == ("existing" if distance <= radius else "new")
    for second, (first, radius) in seconds.items():
        distance = metres_between(second, "SELECT geom FROM submission WHERE id = :first", first=first)
        assert result(second).outcome == ("duplicate" if distance <= radius else "new")
        assert result(second).duplicate_of_id == (first if distance <= radius else None)


def test_organiser_says_which_feature_a_point_is(party):
    point = record(party, tags={"species": "Tilia cordata", "leaf_type": "broadleaved"})
    in_osm(party, 7, {"natural": "tree", "species": "Tilia"}, east_m=1)
    in_osm(party, 8, {"natural": "tree", "species": "Tilia", "denotation": "urban"}, east_m=12)
    match(party[0])
    assert result(point).osm_id == 7
    found = override(party[0], point, "node", 8, "alice@example.org")
    assert found == {"outcome": "update", "osm_type": "node", "osm_id": 8, "osm_version": 3,
                     "distance_m": pytest.approx(12, abs=0.05), "duplicate_of": None,
                     "overridden_by": "alice@example.org", "explanation": None,
                     "tag_diff": {"added": {"leaf_type": "broadleaved"},
                                  "changed": {"species": ["Tilia", "Tilia cordata"]}}}
    stored = result(point)
    assert (stored.outcome, stored.osm_id, stored.overridden_by) == ("update", 8, "alice@example.org")
    match(party[0])
    assert (result(point).osm_id, result(point).overridden_by) == (8, "alice@example.org")


def test_an_override_to_a_feature_with_the_same_tags_is_existing_and_clears_a_duplicate(party):
    first = record(party, tags={"species": "Acer campestre"})
    second = record(party, tags={"species": "Acer campestre"}, east_m=1)
    in_osm(party, 7, {"natural": "tree", "species": "Acer campestre", "height": "8"}, east_m=30)
    match(party[0])
    assert result(second).duplicate_of_id == first
    found = override(party[0], second, "node", 7, "alice@example.org")
    assert (found["outcome"], found["tag_diff"]) == ("existing", {"added": {}, "changed": {}})
    assert result(second).duplicate_of_id is None


def test_a_feature_held_by_conflation_goes_to_the_organisers_choice(party):
    near = record(party, tags={"species": "Tilia cordata"}, east_m=1)
    chosen = record(party, tags={"species": "Tilia cordata"}, east_m=40)
    in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    assert (result(near).outcome, result(near).osm_id) == ("update", 7)
    override(party[0], chosen, "node", 7, "alice@example.org")
    before = result(near)
    assert (before.outcome, before.osm_type, before.osm_id, before.osm_version, before.tag_diff) == (
        "ambiguous", None, None, None, None)
    match(party[0])  # and conflation does not give it back
    assert (result(near).outcome, result(near).tag_diff) == ("ambiguous", None)
    assert (result(chosen).osm_id, result(chosen).overridden_by) == (7, "alice@example.org")


def test_a_feature_held_by_an_organiser_cannot_be_given_to_another_point(party):
    first = record(party, east_m=1)
    second = record(party, east_m=-1)
    in_osm(party, 7, {"natural": "tree"})
    override(party[0], first, "node", 7, "alice@example.org")
    with pytest.raises(Conflict) as refused:
        override(party[0], second, "node", 7, "bob@example.org")
    assert refused.value.field == "osm_id"
    assert (result(first).osm_id, result(first).overridden_by) == (7, "alice@example.org")
    assert result(second) is None
    assert override(party[0], first, "node", 7, "bob@example.org")["overridden_by"] == "bob@example.org"


@pytest.mark.parametrize("which", ["unknown", "other event"])
def test_overrides_of_a_point_not_in_the_event_are_not_found(party, which):
    in_osm(party, 7, {"natural": "tree"})
    if which == "unknown":
        point = 10**9
    else:
        other = make_event("other", presets=("tree",))
        point = record((other, party[1]))
    for correct in (lambda: override(party[0], point, "node", 7, "alice@example.org"),
                    lambda: mark_new(party[0], point, "alice@example.org"),
                    lambda: clear_override(party[0], point)):
        with pytest.raises(NotFound) as refused:
            correct()
        assert refused.value.field == "submission_id"
    assert db.session.scalar(db.select(db.func.count()).select_from(Match)) == 0


@pytest.mark.parametrize(("osm_type", "osm_id", "elsewhere"), [
    ("node", 8, False), ("way", 7, False), ("node", 7, True), ("node", 2**63, False)])
def test_an_override_to_a_feature_not_in_the_event_data_is_not_found(party, osm_type, osm_id, elsewhere):
    point = record(party)
    if elsewhere:
        other = make_event("other", presets=("tree",))
        in_osm((other, party[1]), 7, {"natural": "tree"})
    else:
        in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    with pytest.raises(NotFound) as refused:
        override(party[0], point, osm_type, osm_id, "alice@example.org")
    assert refused.value.field == "osm_id"
    assert result(point).overridden_by is None


def test_organiser_marks_a_point_as_a_different_feature(party):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=1)
    match(party[0])
    assert mark_new(party[0], point, "alice@example.org") == {
        "outcome": "new", "osm_type": None, "osm_id": None, "osm_version": None, "distance_m": None,
        "tag_diff": None, "duplicate_of": None, "overridden_by": "alice@example.org",
        "explanation": None}
    match(party[0])
    assert (result(point).outcome, result(point).overridden_by) == ("new", "alice@example.org")


def test_clearing_an_override_leaves_the_point_unmatched_until_the_next_conflation(party):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=1)
    mark_new(party[0], point, "alice@example.org")
    assert clear_override(party[0], point) is True
    assert result(point) is None
    assert clear_override(party[0], point) is False
    match(party[0])
    assert (result(point).outcome, result(point).overridden_by) == ("existing", None)
    assert clear_override(party[0], point) is False  # conflation's own match stays
    assert result(point).outcome == "existing"


def test_a_point_marked_new_frees_the_feature_it_was_given(party):
    first = record(party, east_m=1)
    second = record(party, east_m=-1)
    in_osm(party, 7, {"natural": "tree"})
    override(party[0], first, "node", 7, "alice@example.org")
    mark_new(party[0], first, "alice@example.org")
    assert override(party[0], second, "node", 7, "bob@example.org")["osm_id"] == 7
    assert (result(first).outcome, result(first).osm_id) == ("new", None)


def test_a_point_within_a_metre_of_a_feature_another_point_took_is_ambiguous_not_a_duplicate(party):
    taker = record(party, accuracy=3, east_m=0.2)
    beside = record(party, accuracy=3, east_m=-0.8)
    in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    assert (result(taker).outcome, result(taker).osm_id) == ("existing", 7)
    assert (result(beside).outcome, result(beside).osm_id, result(beside).duplicate_of_id) == (
        "ambiguous", 7, None)


@pytest.mark.parametrize(("radii", "outcome"), [({}, "new"), ({"tree": 8}, "existing")])
def test_an_event_may_set_its_own_radius_for_a_preset(party, radii, outcome):
    party[0].match_radii = radii
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=7)  # beyond a tree's usual 5 m
    match(party[0])
    assert result(point).outcome == outcome


@pytest.mark.parametrize("values", [{"volcano": "4"}, {"tree": "-1"}, {"tree": "600"}, {"tree": "x"}])
def test_a_radius_that_is_not_one_is_refused(app, values):
    from cartoparty.osm.conflate import read_match_radii
    from cartoparty.presets import all_presets
    with pytest.raises(Invalid):
        read_match_radii(values, all_presets())


def explained(submission_id):
    return result(submission_id).explanation


def test_a_match_keeps_what_decided_it(party):
    from cartoparty.osm.assignment import NEW

    point = record(party, tags={"species": "Tilia cordata"}, accuracy=4)
    in_osm(party, 7, {"natural": "tree", "species": "Tilia cordata"}, east_m=2)
    match(party[0])
    why = explained(point)
    assert result(point).outcome == "existing"
    assert (why["accuracy_m"], why["sigma_m"], why["agree"], why["contradict"]) == (4, 4, 1, 0)
    assert why["distance_m"] == pytest.approx(2, abs=0.05)
    assert (why["runner_up"], why["runner_up_cost"], why["new_cost"]) == ("new", NEW, NEW)
    assert why["gap"] == pytest.approx(NEW - why["cost"], abs=0.002)
    assert (why["shared"], why["duplicate_of"]) == (False, None)


def test_an_ambiguous_match_names_its_runner_up_and_the_small_gap(party):
    from cartoparty.osm.assignment import MARGIN

    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=2)
    in_osm(party, 8, {"natural": "tree"}, east_m=-2.1)
    match(party[0])
    why = explained(point)
    assert (result(point).outcome, result(point).osm_id) == ("ambiguous", 7)
    assert why["runner_up"] == {"osm_type": "node", "osm_id": 8}
    assert why["accuracy_m"] is None and why["sigma_m"] == 5  # unknown: the tree's radius
    assert 0 <= why["gap"] < MARGIN
    assert why["runner_up_cost"] == pytest.approx(why["cost"] + why["gap"], abs=0.002)


@pytest.mark.parametrize(("feature_east_m", "runner_up"), [
    (None, None), (4.5, {"osm_type": "node", "osm_id": 7})])
def test_a_new_point_says_which_feature_if_any_was_less_likely_than_new(party, feature_east_m, runner_up):
    from cartoparty.osm.assignment import NEW

    point = record(party, accuracy=2)  # 4.5 m is 2.25 σ
    if feature_east_m is not None:
        in_osm(party, 7, {"natural": "tree"}, east_m=feature_east_m)
    match(party[0])
    why = explained(point)
    assert result(point).outcome == "new"
    assert (why["distance_m"], why["agree"], why["contradict"], why["cost"]) == (None, None, None, NEW)
    assert why["runner_up"] == runner_up
    if runner_up:
        assert why["runner_up_cost"] > NEW and why["gap"] > 0
    else:
        assert (why["runner_up_cost"], why["gap"]) == (None, None)


def test_a_duplicate_names_the_point_it_repeats_and_how_far(party):
    first = record(party, tags={"species": "Acer campestre"})
    second = record(party, tags={"species": "Acer campestre"}, east_m=1.5)
    match(party[0])
    why = explained(second)
    assert result(second).outcome == "duplicate"
    assert why["duplicate_of"] == str(db.session.get(Submission, first).client_id)
    assert why["distance_m"] == pytest.approx(1.5, abs=0.05)
    assert explained(first)["duplicate_of"] is None


def test_a_point_beside_a_feature_another_took_is_explained_as_shared(party):
    taker = record(party, accuracy=3, east_m=0.2)
    beside = record(party, accuracy=3, east_m=-0.8)
    in_osm(party, 7, {"natural": "tree"})
    match(party[0])
    assert (result(taker).outcome, explained(taker)["shared"]) == ("existing", False)
    assert (result(beside).outcome, explained(beside)["shared"]) == ("ambiguous", True)
    assert explained(beside)["distance_m"] == pytest.approx(0.8, abs=0.05)
    assert explained(beside)["runner_up"] == "new"


def test_a_correction_by_hand_drops_the_explanation(party):
    point = record(party)
    in_osm(party, 7, {"natural": "tree"}, east_m=1)
    match(party[0])
    assert explained(point) is not None
    override(party[0], point, "node", 7, "alice@example.org")
    assert explained(point) is None


def test_a_point_beside_a_free_feature_it_contradicts_is_new(party):
    point = record(party, tags={"species": "Quercus robur", "leaf_type": "broadleaved",
                                "leaf_cycle": "deciduous"})
    in_osm(party, 7, {"natural": "tree", "species": "Pinus nigra", "leaf_type": "needleleaved",
                      "leaf_cycle": "evergreen"}, east_m=0.5)  # three contradictions: not this tree
    match(party[0])
    assert (result(point).outcome, result(point).osm_id) == ("new", None)
