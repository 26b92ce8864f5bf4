"""The review map's data API: clusters or points, the list, the dashboard and the changes cursor."""

import math
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from conftest import join, make_event, make_organiser
from sqlalchemy import text

from cartoparty import reviewmap
from cartoparty.extensions import db
from cartoparty.models import Participant, Photo, Team, hash_token
from cartoparty.reviewmap import cell_size

API = "/api/organise/party"
EVERYWHERE = {"bbox": "5.9,45.55,5.94,45.58", "zoom": "14"}  # the whole `event` zone
NOON = datetime(2026, 6, 13, 10, 0, tzinfo=UTC)  # in Chambéry (UTC+2)

ADD_POINTS = text("""
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags,
                            note, observed_at, received_at, status, version, body_sha256)
    SELECT :event_id, :participant_id, gen_random_uuid(), :preset,
           ST_SetSRID(ST_MakePoint(:lon + (i % 40) * :step, :lat + (i / 40) * :step), 4326), 5,
           '{}', :note,
           CAST(:received_at AS timestamptz), CAST(:received_at AS timestamptz) + i * interval '1 second',
           CAST(:status AS submission_status), 1, repeat('0', 64)
    FROM generate_series(0, :count - 1) AS i
""")


def a_walker(event, pseudonym="Camille", team=None):
    """A participant of `event`, straight into the database."""
    participant = Participant(event_id=event.id, pseudonym=pseudonym, team_id=team and team.id,
                              token_hash=hash_token(secrets.token_urlsafe()), consented_at=NOON)
    db.session.add(participant)
    db.session.commit()
    return participant


def add_points(event, participant, count=1, lon=5.92, lat=45.565, step=0.00001, preset="tree",
               status="pending", received_at=NOON, note=""):
    """`count` submissions in a grid of 40 columns from lon, lat, `step` degrees apart, one a second."""
    db.session.execute(ADD_POINTS, {
        "event_id": event.id, "participant_id": participant.id, "count": count, "lon": lon, "lat": lat,
        "step": step, "preset": preset, "status": status, "received_at": received_at, "note": note})
    db.session.commit()


def get(client, route, **params):
    return client.get(f"{API}/{route}", query_string=params)


def test_few_points_in_view_come_one_by_one(client, event, organiser):
    add_points(event, a_walker(event), 3, preset="bench")
    response = get(client, "map", **EVERYWHERE)
    assert response.status_code == 200
    assert response.json["mode"] == "points"
    assert response.json["total"] == 3
    assert response.json["clusters"] == []
    point = response.json["points"][0]
    assert set(point) == {"id", "client_id", "preset", "status", "lat", "lon", "version"}
    assert (point["preset"], point["status"], point["version"]) == ("bench", "pending", 1)
    assert (point["lon"], point["lat"]) == (5.92, 45.565)


def test_many_points_in_view_come_as_clusters_that_add_up(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 1000, lon=5.917, lat=45.562, status="pending")
    add_points(event, someone, 400, lon=5.927, lat=45.567, status="approved")
    add_points(event, someone, 100, lon=5.927, lat=45.567, status="rejected")
    assert get(client, "map", **EVERYWHERE).json["mode"] == "points"  # 1500 still come one by one
    add_points(event, someone, 1, lon=5.927, lat=45.567, status="rejected")
    response = get(client, "map", **EVERYWHERE)
    assert response.json["mode"] == "clusters"
    assert response.json["points"] == []
    clusters = response.json["clusters"]
    assert response.json["total"] == sum(c["count"] for c in clusters) == 1501
    assert sum(c["pending"] for c in clusters) == 1000
    assert sum(c["approved"] for c in clusters) == 400
    assert sum(c["rejected"] for c in clusters) == 101
    assert all(c["count"] == c["pending"] + c["approved"] + c["rejected"] for c in clusters)


def middle_of_cell(lon, lat, zoom):
    """The middle of the clustering cell holding lon, lat: cells are as high on screen as wide
    at the latitude of the `event` zone's centre."""
    across = cell_size(zoom)
    down = across * math.cos(math.radians(45.565))
    return (math.floor(lon / across) + 0.5) * across, (math.floor(lat / down) + 0.5) * down


def test_a_cluster_sits_at_the_mean_of_its_points(client, event, organiser):
    someone = a_walker(event)
    corners = [middle_of_cell(5.917, 45.562, 14), middle_of_cell(5.927, 45.567, 14)]
    for lon, lat in corners:
        add_points(event, someone, 800, lon=lon, lat=lat)  # 40 × 20 points, 1 m apart
    clusters = get(client, "map", **EVERYWHERE).json["clusters"]
    assert len(clusters) == 2
    for (lon, lat), cluster in zip(sorted(corners), sorted(clusters, key=lambda c: c["lon"]), strict=True):
        assert cluster["count"] == 800
        assert (cluster["lon"], cluster["lat"]) == pytest.approx(
            (lon + 19.5 * 0.00001, lat + 9.5 * 0.00001), abs=1e-7)


def clustered_counts(client, **params):
    body = get(client, "map", **EVERYWHERE, **params).json
    assert body["mode"] == "clusters"
    return {status: sum(c[status] for c in body["clusters"])
            for status in ("pending", "approved", "rejected")}


def test_clusters_follow_every_change_at_once(client, event, organiser):
    # Each worker keeps the event's grid between requests: it must never serve a stale one.
    someone = a_walker(event)
    add_points(event, someone, 1501)
    assert clustered_counts(client) == {"pending": 1501, "approved": 0, "rejected": 0}
    add_points(event, someone, 1, status="approved")
    assert clustered_counts(client) == {"pending": 1501, "approved": 1, "rejected": 0}
    db.session.execute(text("UPDATE submission SET status = 'rejected' WHERE id = "
                            "(SELECT min(id) FROM submission)"))
    db.session.commit()
    assert clustered_counts(client) == {"pending": 1500, "approved": 1, "rejected": 1}
    db.session.execute(text("DELETE FROM submission WHERE status = 'approved'"))
    db.session.commit()
    assert clustered_counts(client) == {"pending": 1500, "approved": 0, "rejected": 1}


def test_a_map_that_knows_the_cursor_is_recounted_once_it_sees_a_new_one(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 1501)
    seen = cursor(client)
    assert get(client, "map", cursor=seen, **EVERYWHERE).json["total"] == 1501
    add_points(event, someone, 1)
    # Panning before the next poll of the cursor: the clusters counted at `seen` still do...
    assert get(client, "map", cursor=seen, **EVERYWHERE).json["total"] == 1501
    # ...until the map has seen the new cursor; without one, clusters are always as of now.
    assert get(client, "map", cursor=cursor(client), **EVERYWHERE).json["total"] == 1502
    assert get(client, "map", **EVERYWHERE).json["total"] == 1502


def test_a_cursor_from_the_future_gets_the_latest_clusters(client, event, organiser):
    add_points(event, a_walker(event), 1501)
    assert get(client, "map", cursor="999999999999", **EVERYWHERE).json["total"] == 1501


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1" * 19, "12 ", "0x10"])
def test_a_cursor_that_is_not_one_is_refused(client, event, organiser, value):
    response = get(client, "map", cursor=value, **EVERYWHERE)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "cursor"


def test_clusters_of_a_moved_point_move_with_it(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 1600, lon=5.917, lat=45.562)
    before = get(client, "map", **EVERYWHERE).json["clusters"]
    assert len(before) == 1
    db.session.execute(text("UPDATE submission SET geom = ST_SetSRID(ST_MakePoint(5.935, 45.575), 4326) "
                            "WHERE id IN (SELECT id FROM submission ORDER BY id LIMIT 10)"))
    db.session.commit()
    after = sorted(get(client, "map", **EVERYWHERE).json["clusters"], key=lambda c: c["count"])
    assert [c["count"] for c in after] == [10, 1590]
    assert (after[0]["lon"], after[0]["lat"]) == (5.935, 45.575)


def test_filtered_clusters_are_counted_apart(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 1600, preset="tree")
    add_points(event, someone, 1700, preset="bench", lon=5.925)
    assert get(client, "map", **EVERYWHERE).json["total"] == 3300
    assert get(client, "map", preset="bench", **EVERYWHERE).json["total"] == 1700
    assert get(client, "map", preset="tree", **EVERYWHERE).json["total"] == 1600
    other = make_event("other")
    add_points(other, a_walker(other), 1600, preset="bench")
    assert get(client, "map", preset="bench", **EVERYWHERE).json["total"] == 1700


def test_clusters_count_the_whole_cells_the_view_touches(client, event, organiser):
    someone = a_walker(event)
    lon, lat = middle_of_cell(5.92, 45.565, 14)
    add_points(event, someone, 1600, lon=lon - 0.0002, lat=lat, step=0.00001)  # 40 × 40, ~3 m apart
    edge = {"bbox": f"{lon},{lat - 0.001},{lon + 0.01},{lat + 0.001}", "zoom": "14"}
    body = get(client, "map", **edge).json
    # The view cuts the cell in two: its cluster is whole, where it would be were the map panned.
    assert body["mode"] == "clusters"
    assert [c["count"] for c in body["clusters"]] == [1600]


def test_zoomed_in_far_the_map_shows_points_however_many(client, event, organiser):
    add_points(event, a_walker(event), 1600)
    response = get(client, "map", bbox="5.9199,45.5649,5.9206,45.5655", zoom="18")
    assert response.json["mode"] == "points"
    assert response.json["total"] == len(response.json["points"]) == 1600


def test_more_zoom_makes_smaller_clusters(client, event, organiser):
    add_points(event, a_walker(event), 1600, step=0.0001)  # 40 × 40 points over ~300 m
    counts = [len(get(client, "map", bbox="5.9,45.55,5.94,45.58", zoom=str(zoom)).json["clusters"])
              for zoom in (12, 16, 17)]
    assert counts[0] < counts[1] < counts[2]


def test_bbox_keeps_only_what_is_inside(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 2, lon=5.917, lat=45.562)
    add_points(event, someone, 3, lon=5.927, lat=45.567)
    west = {"bbox": "5.915,45.560,5.920,45.565"}
    assert get(client, "map", zoom="15", **west).json["total"] == 2
    assert get(client, "list", **west).json["total"] == 2
    assert get(client, "dashboard", **west).json["total"] == 2
    assert get(client, "list").json["total"] == 5


def test_map_ignores_other_events(client, event, organiser):
    other = make_event("other")
    add_points(other, a_walker(other), 4)
    assert get(client, "map", **EVERYWHERE).json["total"] == 0


@pytest.fixture
def mixed(event):
    """Six points: Camille (team Arbres) 2 trees pending, 1 bench approved at noon;
    Noor (no team) 1 tree rejected, 2 benches pending an hour later."""
    trees = Team(event_id=event.id, name="Arbres", presets=["tree"])
    db.session.add(trees)
    db.session.commit()
    camille, noor = a_walker(event, "Camille", trees), a_walker(event, "Noor")
    add_points(event, camille, 2, preset="tree")
    add_points(event, camille, 1, preset="bench", status="approved")
    later = NOON + timedelta(hours=1)
    add_points(event, noor, 1, preset="tree", status="rejected", received_at=later)
    add_points(event, noor, 2, preset="bench", received_at=later)
    return {"team": trees.id, "camille": camille.id, "noor": noor.id}


@pytest.mark.parametrize(("params", "expected"), [
    ({"preset": "tree"}, 3),
    ({"preset": "tree,bench"}, 6),
    ({"preset": "defibrillator"}, 0),
    ({"status": "pending"}, 4),
    ({"status": "approved,rejected"}, 2),
    ({"team": "none"}, 3),
    ({"since": "2026-06-13T12:30:00+02:00"}, 3),
    ({"until": "2026-06-13T10:30:00Z"}, 3),
    ({"since": "2026-06-13 12:30:00 02:00"}, 3),  # '+' sent unescaped arrives as a space
    ({"status": "pending", "preset": "bench"}, 2),
])
@pytest.mark.parametrize("route", ["map", "list", "dashboard"])
def test_each_filter_narrows_every_route(client, organiser, mixed, route, params, expected):
    params = {**EVERYWHERE, **params} if route == "map" else params
    assert get(client, route, **params).json["total"] == expected


@pytest.mark.parametrize("route", ["map", "list", "dashboard"])
def test_team_and_participant_filters(client, organiser, mixed, route):
    place = EVERYWHERE if route == "map" else {}
    assert get(client, route, team=str(mixed["team"]), **place).json["total"] == 3
    assert get(client, route, participant=str(mixed["noor"]), **place).json["total"] == 3
    assert get(client, route, participant=str(mixed["noor"]), status="pending", **place).json["total"] == 2
    assert get(client, route, team="99999", **place).json["total"] == 0


def test_list_items_say_who_what_and_when(client, event, organiser, mixed):
    item = get(client, "list", participant=str(mixed["camille"]), preset="bench").json["items"][0]
    assert set(item) == {"id", "client_id", "preset", "status", "lat", "lon", "pseudonym", "team",
                         "accuracy", "received_at", "observed_at", "version", "photo_count", "note"}
    assert (item["pseudonym"], item["team"], item["status"]) == ("Camille", "Arbres", "approved")
    assert item["received_at"] == "2026-06-13T10:00:00+00:00"
    assert item["photo_count"] == 0
    noor = get(client, "list", participant=str(mixed["noor"])).json["items"][0]
    assert noor["team"] is None


def test_list_counts_photos_and_shows_notes(client, event, organiser):
    add_points(event, a_walker(event), 1, note="arbre mort")
    submission_id = db.session.scalar(text("SELECT id FROM submission"))
    for n in range(2):
        db.session.add(Photo(submission_id=submission_id, sha256=f"{n}" * 64, media_type="image/jpeg",
                             size=1, width=1, height=1))
    db.session.commit()
    item = get(client, "list").json["items"][0]
    assert (item["photo_count"], item["note"]) == (2, "arbre mort")


def test_list_pages_run_newest_first(client, event, organiser):
    someone = a_walker(event)
    add_points(event, someone, 120)  # received one second apart
    for _ in range(2):  # received at the same instant: the later id comes first
        add_points(event, someone, 1, received_at=NOON + timedelta(minutes=5))
    first = get(client, "list", page="1", per_page="50").json
    third = get(client, "list", page="3", per_page="50").json
    beyond = get(client, "list", page="4", per_page="50").json
    assert (first["total"], first["page"], first["per_page"]) == (122, 1, 50)
    assert [len(first["items"]), len(third["items"]), len(beyond["items"])] == [50, 22, 0]
    stamps = [(item["received_at"], item["id"]) for item in first["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert first["items"][0]["received_at"] == first["items"][1]["received_at"]
    assert first["items"][0]["id"] > first["items"][1]["id"]
    every_id = {item["id"] for page in (1, 2, 3)
                for item in get(client, "list", page=str(page), per_page="50").json["items"]}
    assert len(every_id) == 122
    assert len(get(client, "list", per_page="200").json["items"]) == 122
    assert get(client, "list").json["per_page"] == 50


def test_dashboard_counts_by_status_preset_team_and_walker(client, organiser, mixed):
    assert get(client, "dashboard").json == {
        "total": 6,
        "by_status": {"pending": 4, "approved": 1, "rejected": 1},
        "by_preset": {"tree": 3, "bench": 3},
        "by_team": {"Arbres": 3, "—": 3},
        "by_participant": {"Camille": 3, "Noor": 3},
        "reference": None,  # no town dataset here (see tests/reference/test_checks.py)
    }


def test_dashboard_of_an_empty_event(client, organiser):
    assert get(client, "dashboard").json == {
        "total": 0, "by_status": {"pending": 0, "approved": 0, "rejected": 0},
        "by_preset": {}, "by_team": {}, "by_participant": {}, "reference": None}


def cursor(client):
    response = get(client, "changes")
    assert response.status_code == 200
    return response.json["cursor"]


def test_cursor_changes_with_every_insert_review_photo_and_deletion(client, event, organiser):
    someone = a_walker(event)
    empty = cursor(client)
    add_points(event, someone, 3)
    three = cursor(client)
    assert three != empty
    assert cursor(client) == three  # nothing changed, nothing to refetch
    db.session.execute(text("UPDATE submission SET status = 'approved', version = version + 1 "
                            "WHERE id = (SELECT min(id) FROM submission)"))
    db.session.commit()
    reviewed = cursor(client)
    assert reviewed != three
    db.session.add(Photo(submission_id=db.session.scalar(text("SELECT min(id) FROM submission")),
                         sha256="a" * 64, media_type="image/jpeg", size=1, width=1, height=1))
    db.session.commit()
    photographed = cursor(client)
    assert photographed != reviewed
    db.session.execute(text("DELETE FROM submission WHERE id = (SELECT max(id) FROM submission)"))
    db.session.commit()
    assert cursor(client) not in (empty, three, reviewed, photographed)


def test_cursor_sees_a_walker_correcting_a_point(client, event, organiser, walker):
    point = {"client_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "preset": "tree",
             "lat": 45.565, "lon": 5.92, "tags": {}}
    assert client.post("/api/events/party/submissions", json=point, headers=walker).status_code == 201
    before = cursor(client)
    response = client.put(f"/api/events/party/submissions/{point['client_id']}",
                          json={**point, "lat": 45.566}, headers=walker)
    assert response.status_code == 200
    assert cursor(client) != before  # the walker's correction leaves version alone


def test_cursor_ignores_other_events(client, event, organiser):
    before = cursor(client)
    other = make_event("other")
    add_points(other, a_walker(other), 2)
    assert cursor(client) == before


ROUTES = ["map?bbox=5.9,45.55,5.94,45.58&zoom=14", "list", "dashboard", "changes"]


@pytest.mark.parametrize("route", ROUTES)
def test_signed_out_visitors_get_401(client, event, route):
    response = client.get(f"{API}/{route}")
    assert response.status_code == 401
    assert response.is_json


@pytest.mark.parametrize("route", ROUTES)
def test_organiser_of_another_event_gets_403(client, event, route):
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    assert client.get(f"{API}/{route}").status_code == 403


@pytest.mark.parametrize("route", ROUTES)
def test_walker_token_cannot_open_review_map(client, event, route):
    token = join(client, "party")
    assert client.get(f"{API}/{route}", headers=token).status_code == 401


@pytest.mark.parametrize(("route", "params", "field"), [
    ("map", {"zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.55,5.94", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.55,5.94,north", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.55,5.94,nan", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.94,45.55,5.9,45.58", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.58,5.94,45.55", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.55,185,45.58", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,-95,5.94,45.58", "zoom": "14"}, "bbox"),
    ("map", {"bbox": "5.9,45.55,5.94,45.58"}, "zoom"),
    ("map", {"bbox": "5.9,45.55,5.94,45.58", "zoom": "23"}, "zoom"),
    ("map", {"bbox": "5.9,45.55,5.94,45.58", "zoom": "-1"}, "zoom"),
    ("map", {"bbox": "5.9,45.55,5.94,45.58", "zoom": "13.5"}, "zoom"),
    ("list", {"bbox": "1,2,3"}, "bbox"),
    ("list", {"status": "pending,lost"}, "status"),
    ("list", {"preset": "volcano"}, "preset"),
    ("list", {"team": "red"}, "team"),
    ("list", {"participant": "1.5"}, "participant"),
    ("list", {"participant": "-3"}, "participant"),
    ("list", {"page": "two"}, "page"),
    ("list", {"page": "0"}, "page"),
    ("list", {"per_page": "201"}, "per_page"),
    ("list", {"since": "yesterday"}, "since"),
    ("list", {"since": "2026-06-13T10:00:00"}, "since"),  # no time zone
    ("list", {"until": "2026-13-01T10:00:00Z"}, "until"),
    ("dashboard", {"status": "done"}, "status"),
    ("dashboard", {"team": "1; DROP TABLE submission"}, "team"),
    ("dashboard", {"until": "tomorrow"}, "until"),
    ("map", {**EVERYWHERE, "participant": "x"}, "participant"),
])
def test_bad_parameter_is_422_naming_it(client, organiser, route, params, field):
    response = get(client, route, **params)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field


# ---- Bringing a kept grid up to date, with the writes committed as walkers' are --------------

@pytest.fixture
def live(app, client):
    """The event "live", its organiser signed in on `client` and a walker, all committed (the
    change log tells transactions apart); deleted afterwards."""
    event = make_event("live")
    organiser = make_organiser("live@example.org", events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    walker = a_walker(event)
    yield event, walker
    db.session.rollback()
    db.session.execute(text("DELETE FROM submission_change WHERE event_id = :id"), {"id": event.id})
    db.session.execute(text("DELETE FROM event WHERE id = :id"), {"id": event.id})
    db.session.execute(text("DELETE FROM organiser WHERE id = :id"), {"id": organiser.id})
    db.session.commit()


def live_clusters(client, **params):
    body = client.get("/api/organise/live/map", query_string={**EVERYWHERE, **params}).json
    assert body["mode"] == "clusters"
    return sorted((c["lon"], c["lat"], c["count"], c["pending"], c["approved"], c["rejected"])
                  for c in body["clusters"])


def kept_grids(event):
    return [kept for key, kept in reviewmap.grids.items() if key[0] == event.id]


@pytest.mark.commits
def test_a_kept_grid_is_brought_up_to_date_with_what_changed(client, live):
    event, walker = live
    (west, south), (east, north), far = (middle_of_cell(lon, lat, 14) for lon, lat in (
        (5.917, 45.562), (5.927, 45.567), (5.935, 45.575)))
    add_points(event, walker, 1501, lon=west, lat=south)
    live_clusters(client)
    [kept] = kept_grids(event)
    add_points(event, walker, 30, lon=east, lat=north, status="approved")
    db.session.execute(text("UPDATE submission SET status = 'rejected' WHERE id IN "
                            "(SELECT id FROM submission WHERE event_id = :id ORDER BY id LIMIT 5)"),
                       {"id": event.id})
    db.session.execute(text("UPDATE submission SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) "
                            "WHERE id IN (SELECT id FROM submission WHERE event_id = :id "
                            "ORDER BY id DESC LIMIT 3)"), {"id": event.id, "lon": far[0], "lat": far[1]})
    db.session.execute(text("DELETE FROM submission WHERE id IN (SELECT id FROM submission "
                            "WHERE event_id = :id AND status = 'pending' ORDER BY id LIMIT 10)"),
                       {"id": event.id})
    db.session.commit()
    updated = live_clusters(client)
    assert kept_grids(event) == [kept]  # the same grid, brought up to date
    counts = [(count, pending, approved, rejected) for *_, count, pending, approved, rejected in updated]
    assert sorted(counts) == [(3, 0, 3, 0), (27, 0, 27, 0), (1491, 1486, 0, 5)]
    reviewmap.grids.clear()
    recounted = live_clusters(client)
    assert [c[2:] for c in recounted] == [c[2:] for c in updated]  # as a recount says...
    assert [v for c in recounted for v in c[:2]] == pytest.approx([v for c in updated for v in c[:2]],
                                                                  abs=2e-7)


@pytest.mark.commits
def test_a_write_committed_after_the_count_began_is_not_missed(app, client, live):
    event, walker = live
    add_points(event, walker, 1501)
    slow = db.engine.connect()  # a walker's request, still running while the map is counted
    slow.execute(ADD_POINTS, {
        "event_id": event.id, "participant_id": walker.id, "count": 1, "lon": 5.935, "lat": 45.575,
        "step": 0, "preset": "tree", "status": "pending", "received_at": NOON, "note": ""})
    assert sum(c[2] for c in live_clusters(client)) == 1501
    slow.commit()
    slow.close()
    assert sum(c[2] for c in live_clusters(client)) == 1502
    assert len(kept_grids(event)) == 1


@pytest.mark.commits
def test_filters_apply_to_what_changed_too(client, live):
    event, walker = live
    add_points(event, walker, 1600, preset="tree")
    add_points(event, walker, 1600, preset="bench", lon=5.925)
    assert sum(c[2] for c in live_clusters(client, preset="bench")) == 1600
    add_points(event, walker, 7, preset="bench", lon=5.925)
    add_points(event, walker, 9, preset="tree")
    assert sum(c[2] for c in live_clusters(client, preset="bench")) == 1607
    assert sum(c[2] for c in live_clusters(client, status="pending")) == 3216


@pytest.mark.commits
def test_the_since_filter_counts_clusters_and_follows_changes(client, live):
    # `since` is a filter of the map and was also the name of the kept grid's snapshot: the
    # filter then matched nothing, and after a change the snapshot was read as a time (a 500).
    event, walker = live
    add_points(event, walker, 1501)
    since = "2000-01-01T00:00:00+00:00"
    first = client.get("/api/organise/live/map", query_string={**EVERYWHERE, "since": since})
    assert first.status_code == 200 and first.json["mode"] == "clusters"
    assert sum(c["count"] for c in first.json["clusters"]) == 1501
    add_points(event, walker, 2, status="approved")
    again = client.get("/api/organise/live/map", query_string={**EVERYWHERE, "since": since})
    assert again.status_code == 200
    assert sum(c["approved"] for c in again.json["clusters"]) == 2
    future = client.get("/api/organise/live/map",
                        query_string={**EVERYWHERE, "since": "2999-01-01T00:00:00+00:00"})
    assert future.status_code == 200 and future.json["total"] == 0
