"""The OSM side of the review map: features and match lines in view, candidates around a point,
and organisers correcting a match (and undoing it), audited; refusals name the field."""

import math

import pytest
from conftest import a_submission, join, make_event, make_organiser
from sqlalchemy import text
from test_api import assert_conforms, csrf

from cartoparty.extensions import db
from cartoparty.models import AuditEntry, Match, OsmElement
from cartoparty.osm.conflate import match

ORGANISE = "/api/organise/party"
FEATURES = "/api/organise/{slug}/osm/features"
CANDIDATES = "/api/organise/{slug}/submissions/{submission_id}/candidates"
MATCH = "/api/organise/{slug}/submissions/{submission_id}/match"
DETAIL = "/api/organise/{slug}/submissions/{submission_id}"
LAT, LON = 45.565, 5.92
VIEW = "5.919,45.564,5.921,45.566"
HOSTILE = '<img src=x onerror="alert(1)">'


def shifted(east_m=0.0, north_m=0.0):
    """(lat, lon) some metres east and north of the test spot."""
    return LAT + north_m / 111_320, LON + east_m / (111_320 * math.cos(math.radians(LAT)))


def in_osm(event, osm_id, tags, east_m=0.0, north_m=0.0, osm_type="node"):
    """An OSM feature in the event's data, as a fetch or an import stores it."""
    lat, lon = shifted(east_m, north_m)
    db.session.add(OsmElement(event_id=event.id, osm_type=osm_type, osm_id=osm_id, version=3,
                              tags=tags, geom=f"SRID=4326;POINT({lon} {lat})"))
    db.session.flush()


def recorded(client, walker, east_m=0.0, north_m=0.0, slug="party", **values):
    """The id of a point the walker sent through the API."""
    lat, lon = shifted(east_m, north_m)
    response = client.post(f"/api/events/{slug}/submissions", headers=walker,
                           json=a_submission(lat=lat, lon=lon, **values))
    assert response.status_code == 201, response.json
    return response.json["id"]


@pytest.fixture
def matched(client, event, organiser, walker):
    """A tree matched to OSM node 7 with a tag to change and one to add (an `update`), a bench
    with nothing around (`new`), and an OSM tree 3 m east of the first tree."""
    tree = recorded(client, walker, tags={"species": "Tilia cordata", "leaf_type": "broadleaved"})
    bench = recorded(client, walker, east_m=60, preset="bench", tags={})
    in_osm(event, 7, {"natural": "tree", "species": "Tilia"}, north_m=1)
    in_osm(event, 8, {"natural": "tree", "species": HOSTILE}, east_m=3)
    in_osm(event, 9, {"natural": "tree"}, east_m=900)  # far outside the view
    match(event)
    db.session.commit()
    return {"tree": tree, "bench": bench}


def test_features_in_view_list_osm_elements_and_match_lines(client, matched):
    response = client.get(f"{ORGANISE}/osm/features", query_string={"bbox": VIEW})
    assert response.status_code == 200
    assert_conforms(response, FEATURES, "get")
    assert response.json["truncated"] is False
    elements = {e["osm_id"]: e for e in response.json["elements"]}
    assert set(elements) == {7, 8}
    assert elements[7]["tags"] == {"natural": "tree", "species": "Tilia"}
    assert elements[8]["tags"]["species"] == HOSTILE  # data, as OSM has it: the page escapes it
    assert response.mimetype == "application/json"
    [line] = response.json["lines"]
    assert (line["id"], line["outcome"], line["osm_type"], line["osm_id"], line["overridden"]) == (
        matched["tree"], "update", "node", 7, False)
    assert (line["osm_lat"], line["osm_lon"]) == pytest.approx(shifted(north_m=1))
    assert (line["lat"], line["lon"]) == pytest.approx(shifted())


def test_features_of_another_event_are_not_shown(client, event, organiser):
    other = make_event("other")
    in_osm(other, 70, {"natural": "tree"})
    response = client.get(f"{ORGANISE}/osm/features", query_string={"bbox": VIEW})
    assert response.json == {"elements": [], "lines": [], "truncated": False}


def test_features_beyond_two_thousand_are_truncated(client, event, organiser):
    db.session.execute(text("""
        INSERT INTO osm_element (event_id, osm_type, osm_id, version, tags, geom)
        SELECT :event_id, 'node', i, 1, '{"natural": "tree"}',
               ST_SetSRID(ST_MakePoint(5.9195 + (i % 50) * 0.00002, 45.5645 + (i / 50) * 0.00002), 4326)
        FROM generate_series(1, 2001) AS i"""), {"event_id": event.id})
    response = client.get(f"{ORGANISE}/osm/features", query_string={"bbox": VIEW})
    assert response.status_code == 200
    assert (len(response.json["elements"]), response.json["truncated"]) == (2000, True)
    assert_conforms(response, FEATURES, "get")


@pytest.mark.parametrize("bbox", [None, "", "5.9,45.5,5.95", "a,b,c,d", "5.95,45.5,5.9,45.6",
                                  "5.9,45.6,5.95,45.5", "5.9,-91,5.95,45.6", "200,45,201,46"])
def test_bad_bbox_is_refused_naming_it(client, organiser, bbox):
    response = client.get(f"{ORGANISE}/osm/features",
                          query_string={} if bbox is None else {"bbox": bbox})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "bbox"
    assert_conforms(response, FEATURES, "get")


def test_candidates_are_the_features_around_nearest_first(client, event, organiser, walker):
    tree = recorded(client, walker)
    in_osm(event, 1, {"natural": "tree"}, east_m=12)
    in_osm(event, 2, {"natural": "tree", "name": HOSTILE}, north_m=3)
    in_osm(event, 3, {"amenity": "bench"}, east_m=1)
    in_osm(event, 4, {"natural": "tree"}, east_m=25)  # beyond 4 x a tree's 5 m
    response = client.get(f"{ORGANISE}/submissions/{tree}/candidates")
    assert response.status_code == 200
    assert_conforms(response, CANDIDATES, "get")
    assert response.json["radius_m"] == 20
    found = response.json["candidates"]
    assert [(c["osm_id"], c["same_kind"], c["matched"]) for c in found] == [
        (3, False, False), (2, True, False), (1, True, False)]
    assert [round(c["distance_m"]) for c in found] == [1, 3, 12]
    assert found[1]["tags"]["name"] == HOSTILE


def test_candidates_say_which_is_the_current_match(client, event, organiser, walker):
    tree = recorded(client, walker)
    in_osm(event, 1, {"natural": "tree"}, east_m=2)
    in_osm(event, 2, {"natural": "tree"}, east_m=9)
    match(event)
    found = client.get(f"{ORGANISE}/submissions/{tree}/candidates").json["candidates"]
    assert [(c["osm_id"], c["matched"]) for c in found] == [(1, True), (2, False)]


@pytest.mark.parametrize("submission_id", ["999999", "9223372036854775808"])
def test_candidates_of_an_unknown_submission_are_a_404(client, organiser, submission_id):
    response = client.get(f"{ORGANISE}/submissions/{submission_id}/candidates")
    assert response.status_code == 404
    assert response.json["error"]["field"] == "submission_id"
    assert_conforms(response, CANDIDATES, "get")


def test_submission_of_another_event_is_not_found(client, app, organiser):
    make_event("other")
    other_client = app.test_client()
    point = recorded(other_client, join(other_client, "other"), slug="other")
    assert client.get(f"{ORGANISE}/submissions/{point}/candidates").status_code == 404
    refused = client.post(f"{ORGANISE}/submissions/{point}/match", json={"outcome": "new"},
                          headers=csrf(client))
    assert (refused.status_code, refused.json["error"]["field"]) == (404, "submission_id")
    assert db.session.get(Match, point) is None


def history(submission_id):
    return db.session.scalars(db.select(AuditEntry).filter_by(submission_id=submission_id)
                              .order_by(AuditEntry.id)).all()


def test_organiser_says_which_osm_feature_a_point_is(client, event, organiser, matched):
    tree = matched["tree"]
    response = client.post(f"{ORGANISE}/submissions/{tree}/match", headers=csrf(client),
                           json={"osm_type": "node", "osm_id": 8})
    assert response.status_code == 200, response.json
    assert_conforms(response, MATCH, "post")
    found = response.json["osm_match"]
    assert (found["outcome"], found["osm_type"], found["osm_id"]) == ("update", "node", 8)
    assert found["overridden_by"] == "alice@example.org"
    assert found["tag_diff"]["changed"]["species"] == [HOSTILE, "Tilia cordata"]
    [entry] = response.json["history"]
    assert (entry["action"], entry["actor"]) == ("match_osm", "alice@example.org")
    assert entry["before"]["osm_match"]["osm_id"] == 7
    assert entry["after"]["osm_match"]["osm_id"] == 8
    assert response.json["version"] == 1  # the point itself did not change
    match(event)
    assert db.session.get(Match, tree).osm_id == 8  # conflation leaves the correction alone


def test_organiser_marks_a_point_as_a_different_feature_then_undoes_it(client, event, organiser,
                                                                        matched):
    tree = matched["tree"]
    checked = client.get(f"{ORGANISE}/submissions/{tree}").json["osm_match"]
    marked = client.post(f"{ORGANISE}/submissions/{tree}/match", headers=csrf(client),
                         json={"outcome": "new"})
    assert marked.status_code == 200, marked.json
    assert_conforms(marked, MATCH, "post")
    assert marked.json["osm_match"]["outcome"] == "new"
    assert marked.json["osm_match"]["osm_id"] is None
    assert marked.json["osm_match"]["overridden_by"] == "alice@example.org"
    undone = client.delete(f"{ORGANISE}/submissions/{tree}/match", headers=csrf(client))
    assert undone.status_code == 200, undone.json
    assert_conforms(undone, MATCH, "delete")
    # The match the check had found, back as it was: not "unmatched until the next check".
    assert undone.json["osm_match"] == checked
    assert checked["outcome"] == "update" and checked["overridden_by"] is None
    assert [entry.action for entry in history(tree)] == ["match_new", "match_undo"]
    assert history(tree)[1].before["osm_match"]["outcome"] == "new"
    assert history(tree)[1].after["osm_match"] == checked
    match(event)
    assert client.get(f"{ORGANISE}/submissions/{tree}").json["osm_match"]["osm_id"] == 7


def correct(client, submission_id, body=None):
    """Correct a point's match (`body`), or undo the correction (no body); the API's answer."""
    url = f"{ORGANISE}/submissions/{submission_id}/match"
    response = (client.post(url, headers=csrf(client), json=body) if body is not None
                else client.delete(url, headers=csrf(client)))
    assert response.status_code == 200, response.json
    return response.json


def test_undo_after_several_corrections_gives_back_the_match_found_before_them(client, organiser,
                                                                               matched):
    tree = matched["tree"]
    checked = client.get(f"{ORGANISE}/submissions/{tree}").json["osm_match"]
    correct(client, tree, {"osm_type": "node", "osm_id": 8})
    correct(client, tree, {"outcome": "new"})
    assert correct(client, tree)["osm_match"] == checked
    row = db.session.get(Match, tree)
    assert (row.outcome, row.osm_id, row.overridden_by) == ("update", 7, None)
    # Corrected again later, undone again: the same match comes back, once more.
    correct(client, tree, {"outcome": "new"})
    assert correct(client, tree)["osm_match"] == checked


def test_the_api_history_does_not_carry_the_kept_match_rows(client, organiser, matched):
    detail = correct(client, matched["tree"], {"outcome": "new"})
    [entry] = detail["history"]
    assert "match" not in entry["before"] and "match" not in entry["after"]
    assert history(matched["tree"])[0].before["match"]["osm_id"] == 7  # kept in the audit


def test_undo_of_a_point_never_checked_leaves_it_unmatched(client, organiser, walker, matched):
    fresh = recorded(client, walker, north_m=300)
    correct(client, fresh, {"outcome": "new"})
    assert correct(client, fresh)["osm_match"] is None
    assert db.session.get(Match, fresh) is None


@pytest.mark.parametrize("change", ["new version", "gone"])
def test_undo_leaves_the_point_unmatched_when_its_osm_feature_changed(client, event, organiser,
                                                                      matched, change):
    tree = matched["tree"]
    correct(client, tree, {"outcome": "new"})
    feature = db.session.get(OsmElement, (event.id, "node", 7))
    if change == "gone":
        db.session.delete(feature)
    else:
        feature.version = 4  # its tags may differ from the diff kept: wait for the next check
    db.session.commit()
    assert correct(client, tree)["osm_match"] is None
    assert db.session.get(Match, tree) is None


def test_undo_leaves_the_point_unmatched_when_another_point_took_its_feature(client, organiser,
                                                                             walker, matched):
    tree = matched["tree"]
    other = recorded(client, walker, east_m=2, tags={"species": "Tilia"})
    correct(client, tree, {"outcome": "new"})
    correct(client, other, {"osm_type": "node", "osm_id": 7})
    assert correct(client, tree)["osm_match"] is None
    assert db.session.get(Match, other).osm_id == 7


def test_undoing_when_nothing_was_corrected_is_a_conflict(client, organiser, matched):
    response = client.delete(f"{ORGANISE}/submissions/{matched['tree']}/match", headers=csrf(client))
    assert response.status_code == 409
    assert response.json["error"]["field"] == "submission_id"
    assert_conforms(response, MATCH, "delete")
    assert history(matched["tree"]) == []
    assert db.session.get(Match, matched["tree"]).osm_id == 7


def test_a_feature_given_by_hand_to_another_point_is_refused(client, organiser, walker, matched):
    other = recorded(client, walker, east_m=2, tags={"species": "Tilia"})
    url = f"{ORGANISE}/submissions/{{}}/match"
    given = client.post(url.format(matched["tree"]), headers=csrf(client),
                        json={"osm_type": "node", "osm_id": 8})
    assert given.status_code == 200
    refused = client.post(url.format(other), headers=csrf(client), json={"osm_type": "node", "osm_id": 8})
    assert refused.status_code == 409
    assert refused.json["error"]["field"] == "osm_id"
    assert_conforms(refused, MATCH, "post")
    assert history(other) == []
    assert client.get(f"{ORGANISE}/submissions/{other}").json["osm_match"] is None


def test_detail_shows_the_match_and_null_before_conflation(client, organiser, walker, matched):
    detail = client.get(f"{ORGANISE}/submissions/{matched['tree']}")
    assert_conforms(detail, DETAIL, "get")
    assert detail.json["osm_match"] == {
        "outcome": "update", "osm_type": "node", "osm_id": 7, "osm_version": 3,
        "distance_m": pytest.approx(1, abs=0.05), "duplicate_of": None, "overridden_by": None,
        "tag_diff": {"added": {"leaf_type": "broadleaved"},
                     "changed": {"species": ["Tilia", "Tilia cordata"]}},
        "explanation": {
            "distance_m": pytest.approx(1, abs=0.05), "accuracy_m": 6, "sigma_m": 6, "agree": 0,
            "contradict": 1, "cost": pytest.approx(0.70, abs=0.01), "new_cost": 1.5, "shared": False,
            "runner_up": {"osm_type": "node", "osm_id": 8},  # 3 m east, its species contradicts too
            "runner_up_cost": pytest.approx(0.81, abs=0.01),
            "runner_up_distance_m": pytest.approx(3, abs=0.05), "gap": pytest.approx(0.11, abs=0.01),
            "duplicate_of": None}}
    fresh = recorded(client, walker, north_m=300)
    assert client.get(f"{ORGANISE}/submissions/{fresh}").json["osm_match"] is None


def test_the_geojson_carries_each_match_and_its_explanation(client, organiser, matched):
    response = client.get("/api/events/party/submissions.geojson")
    assert_conforms(response, "/api/events/{slug}/submissions.geojson", "get")
    by_id = {feature["properties"]["osm_match"]["outcome"]: feature["properties"]["osm_match"]
             for feature in response.json["features"]}
    assert by_id["update"]["explanation"]["runner_up"] == {"osm_type": "node", "osm_id": 8}
    assert by_id["new"]["explanation"]["runner_up"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({}, "osm_type"), ({"osm_id": 7}, "osm_type"), ({"osm_type": "area", "osm_id": 7}, "osm_type"),
    ({"osm_type": None, "osm_id": 7}, "osm_type"), ({"osm_type": "node"}, "osm_id"),
    ({"osm_type": "node", "osm_id": "7"}, "osm_id"), ({"osm_type": "node", "osm_id": 0}, "osm_id"),
    ({"osm_type": "node", "osm_id": -7}, "osm_id"), ({"osm_type": "node", "osm_id": True}, "osm_id"),
    ({"osm_type": "node", "osm_id": 7.5}, "osm_id"), ({"osm_type": "node", "osm_id": 2**63}, "osm_id"),
    ({"outcome": "existing"}, "outcome"), ({"outcome": None}, "outcome"),
    ({"outcome": "new", "osm_type": "node", "osm_id": 7}, "outcome"), ({"colour": "red"}, "colour"),
])
def test_bad_match_bodies_are_refused_naming_the_field(client, organiser, matched, body, field):
    response = client.post(f"{ORGANISE}/submissions/{matched['tree']}/match", json=body,
                           headers=csrf(client))
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert_conforms(response, MATCH, "post")
    assert history(matched["tree"]) == []
    assert db.session.get(Match, matched["tree"]).overridden_by is None


def test_match_body_must_be_json(client, organiser, matched):
    url = f"{ORGANISE}/submissions/{matched['tree']}/match"
    not_json = client.post(url, data="osm_type=node&osm_id=7", headers=csrf(client))
    assert not_json.status_code == 415
    assert_conforms(not_json, MATCH, "post")
    broken = client.post(url, data="{", content_type="application/json", headers=csrf(client))
    assert broken.status_code == 400
    assert_conforms(broken, MATCH, "post")
    assert history(matched["tree"]) == []


def test_an_osm_feature_not_in_the_event_data_is_refused(client, organiser, matched):
    response = client.post(f"{ORGANISE}/submissions/{matched['tree']}/match", headers=csrf(client),
                           json={"osm_type": "way", "osm_id": 7})
    assert response.status_code == 404
    assert response.json["error"]["field"] == "osm_id"
    assert_conforms(response, MATCH, "post")
    assert history(matched["tree"]) == []
    assert db.session.get(Match, matched["tree"]).osm_id == 7


ROUTES = [
    ("get", FEATURES, f"/osm/features?bbox={VIEW}", None),
    ("get", CANDIDATES, "/submissions/{id}/candidates", None),
    ("post", MATCH, "/submissions/{id}/match", {"outcome": "new"}),
    ("delete", MATCH, "/submissions/{id}/match", None),
]


@pytest.mark.parametrize(("method", "path", "url", "body"), ROUTES)
def test_only_the_event_organisers_may_use_the_osm_routes(client, event, organiser, walker, method,
                                                          path, url, body):
    url = ORGANISE + url.format(id=recorded(client, walker))
    headers = csrf(client)
    send = getattr(client, method)
    if method != "get":
        no_token = send(url, json=body)
        assert no_token.status_code == 400
        assert_conforms(no_token, path, method)
    unknown_event = send(url.replace("/party/", "/nowhere/"), json=body, headers=headers)
    assert (unknown_event.status_code, unknown_event.json["error"]["field"]) == (404, "slug")
    assert_conforms(unknown_event, path, method)
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    forbidden = send(url, json=body, headers=headers)
    assert forbidden.status_code == 403
    assert_conforms(forbidden, path, method)
    with client.session_transaction() as session:
        del session["organiser_id"]
    signed_out = send(url, json=body, headers=headers)
    assert signed_out.status_code == 401
    assert_conforms(signed_out, path, method)
    as_walker = send(url, json=body, headers={**headers, **walker})
    assert as_walker.status_code == 401  # a walker's token never opens organiser routes
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 0
