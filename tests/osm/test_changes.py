"""The plan of OSM changes: approved, matched points → creates and modifies, with the three-way
merge against OSM read again (a local stand-in of the OSM API)."""

import math
import uuid
from datetime import UTC, datetime

import pytest
from conftest import make_event
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from cartoparty.errors import Conflict, Invalid, NotFound
from cartoparty.extensions import db
from cartoparty.models import OsmChange, OsmElement, Participant, Submission
from cartoparty.osm import changes
from cartoparty.osm.conflate import match

LAT, LON = 45.565, 5.92
SURVEYED = datetime(2026, 6, 13, 9, 30, tzinfo=UTC)


def shifted(east_m=0.0, north_m=0.0):
    return LAT + north_m / 111_320, LON + east_m / (111_320 * math.cos(math.radians(LAT)))


@pytest.fixture(name="party")
def party_fixture():
    """An event with trees, benches and defibrillators, and one walker: (event, walker)."""
    event = make_event("osm-changes", presets=("tree", "bench", "defibrillator"))
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    return event, walker


def surveyed(party, tags, preset="tree", east_m=0.0, north_m=0.0, status="approved"):
    """A point the walker recorded (the preset's own tags added, as the API does)."""
    event, walker = party
    lat, lon = shifted(east_m, north_m)
    identifying = {"tree": {"natural": "tree"}, "bench": {"amenity": "bench"},
                   "defibrillator": {"emergency": "defibrillator"}}[preset]
    submission = Submission(event_id=event.id, participant_id=walker.id, client_id=uuid.uuid4(),
                            preset=preset, geom=f"SRID=4326;POINT({lon} {lat})", accuracy=4,
                            tags={**tags, **identifying}, note="", observed_at=SURVEYED,
                            body_sha256="x", status=status)
    db.session.add(submission)
    db.session.flush()
    return submission.id


def mapped(party, osm_api, osm_id, tags, east_m=0.0, north_m=0.0, version=3):
    """A node in OSM: in the event's stored OSM data and in the OSM API alike."""
    lat, lon = shifted(east_m, north_m)
    db.session.add(OsmElement(event_id=party[0].id, osm_type="node", osm_id=osm_id,
                              version=version, tags=tags, geom=f"SRID=4326;POINT({lon} {lat})"))
    db.session.flush()
    osm_api.add_node(osm_id, lat, lon, tags, version=version)


def plan(party, **settings):
    event = party[0]
    if settings:
        current = changes.plan_of(event)
        changes.update_settings(current, {"comment": current.comment, "hashtags": current.hashtags,
                                          **settings})
    match(event)
    changes.build(event, "alice@example.org")
    return {c.key: c for c in changes.items(event)}


def item(items, submission_id):
    return next(c for c in items.values() if submission_id in c.submission_ids)


def test_a_new_point_is_a_node_to_create_where_the_walker_stood(party, osm_api):
    point = surveyed(party, {"species": "Tilia cordata"})
    create = item(plan(party), point)
    assert create.action == "create" and create.osm_type == "node"
    assert create.osm_id is None and create.base_version is None
    assert create.tags_after == {"natural": "tree", "species": "Tilia cordata"}
    assert (round(create.lat, 7), round(create.lon, 7)) == (round(LAT, 7), round(LON, 7))
    assert {"key": "species", "before": None, "after": "Tilia cordata"} in create.diff


def test_an_update_keeps_every_tag_and_the_position_osm_has_now(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "leaf_type": "broadleaved"}, east_m=1.5)
    point = surveyed(party, {"species": "Tilia cordata"})
    # Since the OSM data was fetched, another mapper added a height: version 4 now.
    osm_api.edit("node", 101, tags={"natural": "tree", "leaf_type": "broadleaved", "height": "12"})
    modify = item(plan(party), point)
    assert modify.action == "modify" and (modify.osm_type, modify.osm_id) == ("node", 101)
    assert modify.base_version == 4
    assert modify.tags_after == {"natural": "tree", "leaf_type": "broadleaved", "height": "12",
                                 "species": "Tilia cordata"}
    assert modify.diff == [{"key": "species", "before": None, "after": "Tilia cordata"}]
    lat, lon = shifted(east_m=1.5)
    assert (modify.lat, modify.lon) == pytest.approx((lat, lon), abs=1e-7)   # never moved
    assert modify.conflicts == {}


def test_an_element_at_version_1_is_modified_at_version_1(party, osm_api):
    mapped(party, osm_api, 7, {"emergency": "defibrillator"}, version=1)
    point = surveyed(party, {"indoor": "yes"}, preset="defibrillator")
    modify = item(plan(party), point)
    assert (modify.action, modify.base_version) == ("modify", 1)


def test_what_osm_already_says_needs_no_change(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia cordata"})
    items = plan(party)
    assert not [c for c in items.values() if point in c.submission_ids]


def test_osm_changing_the_same_tag_is_a_conflict_with_the_three_values(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia platyphyllos"})
    modify = item(plan(party), point)
    assert modify.conflicts == {"species": {"matched": "Tilia", "osm": "Tilia platyphyllos",
                                            "walker": "Tilia cordata", "choice": None}}
    assert modify.tags_after["species"] == "Tilia platyphyllos"    # nothing silently overwritten
    event = party[0]
    assert [c.key for c in changes.ready_changes(event)] == []      # left out of the files
    changes.settle(event, modify.id, "species", "walker", "alice@example.org")
    assert modify.tags_after["species"] == "Tilia cordata"
    assert modify.diff == [{"key": "species", "before": "Tilia platyphyllos", "after": "Tilia cordata"}]
    assert [c.key for c in changes.ready_changes(event)] == ["node/101"]
    changes.settle(event, modify.id, "species", "osm", "alice@example.org")
    assert modify.tags_after["species"] == "Tilia platyphyllos" and modify.diff == []


def test_osm_removing_a_tag_the_walker_changed_is_a_conflict(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree"})
    conflict = item(plan(party), point).conflicts["species"]
    assert (conflict["matched"], conflict["osm"], conflict["walker"]) == ("Tilia", None, "Tilia cordata")


def test_osm_changing_another_tag_merges_without_conflict(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia", "circumference": "1.2"})
    modify = item(plan(party), point)
    assert modify.conflicts == {}
    assert modify.tags_after == {"natural": "tree", "species": "Tilia cordata", "circumference": "1.2"}


def test_a_feature_no_longer_a_tree_in_osm_is_a_conflict_on_its_main_tag(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree_stump", "species": "Tilia"})
    conflicts = item(plan(party), point).conflicts
    assert conflicts["natural"]["osm"] == "tree_stump" and conflicts["natural"]["walker"] == "tree"


def test_a_feature_deleted_in_osm_since_the_match_is_held_back(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.delete("node", 101)
    held = item(plan(party), point)
    assert held.action == "held" and held.reason["code"] == "osm_deleted"


def test_a_feature_moved_far_in_osm_is_a_conflict_and_never_moved_back(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"}, east_m=1)
    point = surveyed(party, {"species": "Tilia cordata"})
    match(party[0])
    far_lat, far_lon = shifted(east_m=30)
    osm_api.edit("node", 101, lat=far_lat, lon=far_lon)
    changes.build(party[0], "alice@example.org")
    modify = item({c.key: c for c in changes.items(party[0])}, point)
    assert changes.POSITION in modify.conflicts and modify.conflicts[changes.POSITION]["choice"] is None
    assert (modify.lat, modify.lon) == pytest.approx((far_lat, far_lon), abs=1e-7)
    with pytest.raises(Invalid):       # only OSM's position can be kept: nothing is moved
        changes.settle(party[0], modify.id, changes.POSITION, "walker", "alice@example.org")
    changes.settle(party[0], modify.id, changes.POSITION, "osm", "alice@example.org")
    assert changes.ready(modify)


def test_a_feature_moved_a_little_keeps_its_new_position_without_conflict(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"}, east_m=1)
    point = surveyed(party, {"species": "Tilia cordata"})
    match(party[0])
    lat, lon = shifted(east_m=2)
    osm_api.edit("node", 101, lat=lat, lon=lon)
    changes.build(party[0], "alice@example.org")
    modify = item({c.key: c for c in changes.items(party[0])}, point)
    assert modify.conflicts == {} and (modify.lat, modify.lon) == pytest.approx((lat, lon), abs=1e-7)


def test_a_settled_conflict_stays_settled_while_osm_stays_the_same(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"})
    point = surveyed(party, {"species": "Tilia cordata"})
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia x"})
    event = party[0]
    changes.settle(event, item(plan(party), point).id, "species", "walker", "alice@example.org")
    changes.build(event, "alice@example.org")
    again = item({c.key: c for c in changes.items(event)}, point)
    assert again.conflicts["species"]["choice"] == "walker"
    assert again.tags_after["species"] == "Tilia cordata"
    # Someone changes it once more: the earlier choice was about other values.
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia y"})
    changes.build(event, "alice@example.org")
    third = item({c.key: c for c in changes.items(event)}, point)
    assert third.conflicts["species"]["choice"] is None and third.tags_after["species"] == "Tilia y"


def test_existing_features_are_left_alone_unless_marked_as_checked(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia cordata"})
    mapped(party, osm_api, 102, {"amenity": "bench", "check_date": "2027-01-01"}, east_m=40)
    tree = surveyed(party, {"species": "Tilia cordata"})
    bench = surveyed(party, {}, preset="bench", east_m=40)
    assert not [c for c in plan(party).values() if {tree, bench} & set(c.submission_ids)]
    items = plan(party, mark_checked="on")
    checked = item(items, tree)
    assert checked.action == "modify" and checked.diff == [
        {"key": "check_date", "before": None, "after": "2026-06-13"}]
    # A later check by someone else stands.
    assert not [c for c in items.values() if bench in c.submission_ids]


def test_what_is_not_ready_is_held_back_with_its_reason(party, osm_api):
    pending = surveyed(party, {"species": "Tilia"}, status="pending")
    rejected = surveyed(party, {"species": "Acer"}, status="rejected", east_m=50)
    first = surveyed(party, {"species": "Quercus"}, east_m=100)
    twice = surveyed(party, {"species": "Quercus"}, east_m=100.5)
    items = plan(party)
    assert item(items, pending).reason["code"] == "not_reviewed"
    assert not [c for c in items.values() if rejected in c.submission_ids]
    assert item(items, first).action == "create"
    assert item(items, twice).reason == {"code": "duplicate", "of": first}


def test_points_never_matched_are_held_until_the_check_runs(party, osm_api):
    point = surveyed(party, {"species": "Tilia"})
    changes.build(party[0], "alice@example.org")
    assert item({c.key: c for c in changes.items(party[0])}, point).reason["code"] == "not_matched"


def test_a_tag_osm_cannot_take_holds_the_point_back(party, osm_api):
    point = surveyed(party, {"species": "Tilia"})
    # Written straight into the database, past the API's checks, as an old import might have.
    db.session.execute(text("UPDATE submission SET tags = tags || :bad WHERE id = :id")
                       .bindparams(bindparam("bad", type_=JSONB)),
                       {"id": point, "bad": {"name": "bad\x01"}})
    held = item(plan(party), point)
    assert held.action == "held" and held.reason["code"] == "tags_unwritable"


def test_without_the_osm_api_the_plan_rests_on_the_stored_data_and_says_so(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"})
    point = surveyed(party, {"species": "Tilia cordata"})
    new = surveyed(party, {"species": "Acer"}, east_m=60)
    osm_api.down()
    items = plan(party)
    built = changes.plan_of(party[0])
    assert built.base == "stored" and built.base_error_detail["code"] == "osm_api_unreachable"
    modify = item(items, point)
    assert (modify.action, modify.base_version) == ("modify", 3)
    assert item(items, new).action == "create"
    with pytest.raises(Conflict) as refused:
        changes.write_file(party[0], built, "osc", changes.ready_changes(party[0]), None, "fr")
    assert refused.value.code == "osc_needs_fresh_base"


def test_an_organiser_holds_a_change_back_and_puts_it_back(party, osm_api):
    point = surveyed(party, {"species": "Tilia"})
    create = item(plan(party), point)
    event = party[0]
    changes.hold(event, create.id, True, "alice@example.org")
    assert changes.ready_changes(event) == [] and changes.summary(event) == {"held_by_organiser": 1}
    changes.build(event, "alice@example.org")                  # the hold lasts
    again = item({c.key: c for c in changes.items(event)}, point)
    assert again.held_by == "alice@example.org"
    changes.hold(event, again.id, False, "alice@example.org")
    assert [c.key for c in changes.ready_changes(event)] == [f"create/{point}"]


def test_a_hold_on_a_modify_survives_a_rebuild(party, osm_api):
    mapped(party, osm_api, 101, {"natural": "tree"})
    point = surveyed(party, {"species": "Tilia cordata"})
    event = party[0]
    changes.hold(event, item(plan(party), point).id, True, "alice@example.org")
    changes.build(event, "alice@example.org")
    assert item({c.key: c for c in changes.items(event)}, point).held_by == "alice@example.org"


def test_changes_of_another_event_are_not_found(party, osm_api):
    point = surveyed(party, {"species": "Tilia"})
    create = item(plan(party), point)
    other = make_event("other")
    with pytest.raises(NotFound):
        changes.hold(other, create.id, True, "mallory")
    with pytest.raises(NotFound):
        changes.settle(party[0], create.id, "species", "walker", "alice")   # no such conflict
    with pytest.raises(NotFound):
        changes.hold(party[0], 2**70, True, "alice")


def test_changeset_tags_say_what_mappers_reading_the_history_expect(party, osm_api, app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://carto.example.org")
    surveyed(party, {"species": "Tilia"})
    event = party[0]
    plan(party, comment="Arbres du quartier", hashtags="#cartoparty #chambery",
         wiki_page="https://wiki.openstreetmap.org/wiki/Organised_Editing/Activities/Chambéry 2026")
    current = changes.plan_of(event)
    (changeset,) = changes.changesets(event)
    tags = changes.changeset_tags(event, current, changeset, "fr")
    assert tags == {
        "comment": "Arbres du quartier #cartoparty #chambery",
        "created_by": f"cartoparty {changes.version()}", "source": "survey",
        "survey:date": "2026-06-13", "hashtags": "#cartoparty;#chambery", "locale": "fr",
        "host": "https://carto.example.org",
        "organised_editing:wiki": "https://wiki.openstreetmap.org/wiki/Organised_Editing/Activities/Chambéry_2026"}


def test_the_default_comment_is_the_event_name_cut_to_fit_255_characters(party, osm_api):
    event = party[0]
    event.name = "É" * 200
    surveyed(party, {"species": "Tilia"})
    plan(party, hashtags="#cartoparty #" + "a" * 60)
    (changeset,) = changes.changesets(event)
    comment = changes.changeset_tags(event, changes.plan_of(event), changeset, "en")["comment"]
    assert len(comment) == 255 and comment.startswith("ÉÉÉ")
    assert comment.endswith("… #cartoparty #" + "a" * 60)


@pytest.mark.parametrize("settings, code", [
    ({"hashtags": "cartoparty"}, "hashtags_invalid"),
    ({"hashtags": "#ok #<script>"}, "hashtags_invalid"),
    ({"comment": "x" * 250}, "comment_too_long"),
    ({"comment": "bad\x00"}, "changeset_text_invalid"),
    ({"wiki_page": "https://example.org/page"}, "wiki_page_invalid"),
    ({"max_changes": "10001"}, "max_changes_invalid"),
    ({"max_changes": "many"}, "max_changes_invalid"),
    ({"max_size": "0"}, "max_size_invalid"),
])
def test_bad_changeset_settings_are_refused_by_name(party, settings, code):
    with pytest.raises(Invalid) as refused:
        changes.update_settings(changes.plan_of(party[0]), {"hashtags": "#cartoparty", **settings})
    assert refused.value.code == code


def test_the_plan_is_stored_and_replaced_whole(party, osm_api):
    first = surveyed(party, {"species": "Tilia"})
    plan(party)
    second = surveyed(party, {"species": "Acer"}, east_m=60)
    items = plan(party)
    assert {tuple(c.submission_ids) for c in items.values()} == {(first,), (second,)}
    assert db.session.scalar(text("SELECT count(*) FROM osm_change WHERE event_id = :id"),
                             {"id": party[0].id}) == 2
    assert isinstance(next(iter(items.values())), OsmChange)
