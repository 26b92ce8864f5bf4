import base64
import io
import json
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from conftest import a_submission, join, make_event
from PIL import Image

from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Event, Organiser, Submission


def count_submissions():
    return db.session.scalar(db.select(db.func.count()).select_from(Submission))


def post(client, walker, body, slug="party"):
    return client.post(f"/api/events/{slug}/submissions", json=body, headers=walker)


def test_new_submission_is_stored_with_its_point_and_tags(client, walker):
    body = a_submission()
    response = post(client, walker, body)
    assert response.status_code == 201
    stored = response.json
    assert stored["client_id"] == body["client_id"]
    assert (stored["lat"], stored["lon"]) == (body["lat"], body["lon"])
    assert stored["tags"] == {"species": "Tilia cordata", "natural": "tree"}
    assert stored["status"] == "pending"
    assert stored["observed_at"] == "2026-06-13T08:15:00+00:00"
    submission = db.session.scalar(db.select(Submission))
    point = db.session.execute(db.select(db.func.ST_X(Submission.geom),
                                         db.func.ST_Y(Submission.geom))).one()
    assert point == (body["lon"], body["lat"])
    assert submission.accuracy == 6


def test_replayed_submission_is_stored_once(client, walker):
    body = a_submission()
    first = post(client, walker, body)
    replays = [post(client, walker, body) for _ in range(3)]
    assert first.status_code == 201
    assert [reply.status_code for reply in replays] == [200, 200, 200]
    assert all(reply.json == first.json for reply in replays)
    assert count_submissions() == 1


def test_same_client_id_with_another_body_is_a_conflict(client, walker):
    body = a_submission()
    post(client, walker, body)
    response = post(client, walker, {**body, "lat": body["lat"] + 0.001})
    assert response.status_code == 409
    assert response.json["error"]["field"] == "client_id"
    assert count_submissions() == 1


def test_same_client_id_from_another_walker_is_a_conflict(client, event, walker):
    body = a_submission()
    post(client, walker, body)
    other = join(client, "party", "Noor")
    assert post(client, other, body).status_code == 409


def test_same_client_id_in_two_events_is_two_submissions(client, event, walker):
    make_event("other")
    body = a_submission()
    assert post(client, walker, body).status_code == 201
    assert post(client, join(client, "other"), body, slug="other").status_code == 201
    assert count_submissions() == 2


@pytest.mark.parametrize(("change", "field"), [
    ({"client_id": "not-a-uuid"}, "client_id"),
    ({"client_id": None}, "client_id"),
    ({"client_id": 12}, "client_id"),
    ({"preset": "volcano"}, "preset"),
    ({"preset": "pharmacy"}, "preset"),
    ({"preset": ["tree"]}, "preset"),
    ({"lat": 91}, "lat"),
    ({"lat": -90.5}, "lat"),
    ({"lon": 181}, "lon"),
    ({"lat": "45.56"}, "lat"),
    ({"lat": None}, "lat"),
    ({"lon": True}, "lon"),
    ({"accuracy": -1}, "accuracy"),
    ({"accuracy": "6"}, "accuracy"),
    ({"lat": 48.85, "lon": 2.35}, "lat"),
    ({"tags": {"leaf_type": "spiky"}}, "tags.leaf_type"),
    ({"tags": {"natural": "rock"}}, "tags.natural"),
    ({"tags": "natural=tree"}, "tags"),
    ({"tags": {"x y": "z"}}, "tags.x y"),
    ({"note": "x" * 2001}, "note"),
    ({"note": ["a"]}, "note"),
    ({"observed_at": "yesterday"}, "observed_at"),
    ({"observed_at": "2026-06-13T10:15:00"}, "observed_at"),
    ({"observed_at": "2999-01-01T00:00:00Z"}, "observed_at"),
    ({"observed_at": 1718000000}, "observed_at"),
    ({"colour": "green"}, "colour"),
])
def test_bad_submission_is_refused_naming_the_field(client, walker, change, field):
    response = post(client, walker, a_submission(**change))
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert count_submissions() == 0


def test_non_finite_numbers_are_refused(client, walker):
    data = f'{{"client_id": "{uuid.uuid4()}", "preset": "tree", "lat": NaN, "lon": 5.92}}'
    response = client.post("/api/events/party/submissions", data=data,
                           content_type="application/json", headers=walker)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "lat"


def test_point_outside_zone_is_accepted_when_the_event_allows_it(client):
    make_event("open", allow_outside_zone=True)
    response = post(client, join(client, "open"), a_submission(lat=48.85, lon=2.35), slug="open")
    assert response.status_code == 201


def test_observed_at_defaults_to_reception(client, walker):
    body = a_submission()
    del body["observed_at"]
    response = post(client, walker, body)
    assert response.status_code == 201
    assert response.json["observed_at"] == response.json["received_at"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Y2FtaWxsZQ=="},
    {"Authorization": "Bearer " + "x" * 5000},
])
def test_submission_without_a_valid_token_is_401(client, event, headers):
    response = post(client, headers, a_submission())
    assert response.status_code == 401
    assert response.json["error"]["field"] == "Authorization"


def test_token_of_another_event_is_refused(client, event):
    make_event("other")
    response = post(client, join(client, "other"), a_submission())
    assert response.status_code == 401


def test_unknown_event_is_404(client, walker):
    assert post(client, walker, a_submission(), slug="nowhere").status_code == 404


def test_geojson_lists_submissions_for_walkers_longitude_first(client, walker):
    body = a_submission()
    post(client, walker, body)
    response = client.get("/api/events/party/submissions.geojson", headers=walker)
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    collection = response.json
    assert collection["type"] == "FeatureCollection"
    [feature] = collection["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [body["lon"], body["lat"]]}
    properties = feature["properties"]
    assert properties["client_id"] == body["client_id"]
    assert properties["preset"] == "tree"
    assert properties["tags"]["natural"] == "tree"
    assert properties["status"] == "pending"
    assert properties["accuracy"] == 6
    assert properties["mine"] is True
    assert "pseudonym" not in properties
    assert properties["observed_at"].startswith("2026-06-13T08:15:00")
    assert feature["id"] == body["client_id"] and "received_at" in properties


def test_geojson_of_an_empty_event_is_an_empty_collection(client, walker):
    response = client.get("/api/events/party/submissions.geojson", headers=walker)
    assert response.json["type"] == "FeatureCollection"
    assert (response.json["features"], response.json["removed"]) == ([], [])


def test_geojson_is_401_for_strangers(client, event):
    assert client.get("/api/events/party/submissions.geojson").status_code == 401
    make_event("other")
    stranger = join(client, "other")
    assert client.get("/api/events/party/submissions.geojson",
                      headers=stranger).status_code == 401


@pytest.fixture
def committed_event(app):
    event = make_event("race")
    yield event
    db.session.execute(db.delete(Event).where(Event.slug == "race"))
    db.session.commit()


@pytest.mark.commits
def test_racing_replays_create_exactly_one_row(app, committed_event):
    walker = join(app.test_client(), "race")
    body = a_submission()
    start = threading.Barrier(12)
    statuses = []

    def replay():
        start.wait()
        statuses.append(post(app.test_client(), walker, body, slug="race").status_code)

    threads = [threading.Thread(target=replay) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 11 + [201]
    rows = db.session.scalar(db.select(db.func.count()).select_from(Submission)
                             .where(Submission.event_id == committed_event.id))
    assert rows == 1


def organiser_of(event, email="alice@example.org", password="correct horse"):
    organiser = Organiser(email=email, password_hash=hash_password(password))
    if event is not None:
        event.organisers.append(organiser)
    db.session.add(organiser)
    db.session.commit()
    return organiser


def test_geojson_shows_pseudonyms_to_the_event_organiser(client, event, walker):
    post(client, walker, a_submission())
    organiser = organiser_of(event)
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    response = client.get("/api/events/party/submissions.geojson")
    assert response.status_code == 200
    [feature] = response.json["features"]
    assert feature["properties"]["pseudonym"] == "Camille"
    assert "mine" not in feature["properties"]


def test_geojson_takes_organiser_basic_auth(client, event, walker):
    post(client, walker, a_submission())
    organiser_of(event)
    credentials = base64.b64encode(b"alice@example.org:correct horse").decode()
    response = client.get("/api/events/party/submissions.geojson",
                          headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 200
    wrong = base64.b64encode(b"alice@example.org:guess").decode()
    assert client.get("/api/events/party/submissions.geojson",
                      headers={"Authorization": f"Basic {wrong}"}).status_code == 401


def test_organiser_of_another_event_cannot_see_submissions(client, event):
    organiser = organiser_of(make_event("other"))
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    assert client.get("/api/events/party/submissions.geojson").status_code == 401


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\u0000b"', '"\\udfff\\ud800"'])
@pytest.mark.parametrize("field", ["note", "tag", "client_id", "preset"])
def test_hostile_text_is_refused_or_cleaned_never_a_500(client, walker, field, text):
    body = json.dumps(a_submission())
    target = {"note": '"note": ""', "tag": '"species": "Tilia cordata"',
              "client_id": '"client_id": "', "preset": '"preset": "tree"'}[field]
    replacement = {"note": f'"note": {text}', "tag": f'"species": {text}',
                   "client_id": f'"client_id": {text}, "x_": "', "preset": f'"preset": {text}'}[field]
    data = body.replace(target, replacement, 1)
    response = client.post("/api/events/party/submissions", data=data,
                           content_type="application/json", headers=walker)
    assert response.status_code in (201, 400, 422), response.json
    if response.status_code == 201:
        assert "\x00" not in response.json["note"]


def test_author_corrects_a_pending_point(client, walker):
    body = a_submission()
    post(client, walker, body)
    changed = {**body, "lat": body["lat"] + 0.0005, "tags": {"species": "Tilia platyphyllos"}}
    del changed["client_id"], changed["observed_at"]
    response = client.put(f"/api/events/party/submissions/{body['client_id']}", json=changed,
                          headers=walker)
    assert response.status_code == 200
    assert response.json["lat"] == changed["lat"]
    assert response.json["tags"]["species"] == "Tilia platyphyllos"
    assert response.json["observed_at"] == "2026-06-13T08:15:00+00:00"
    assert post(client, walker, body).status_code == 200  # the original may still be replayed
    assert count_submissions() == 1


def test_author_deletes_a_pending_point_and_its_photo_file(app, client, walker):
    body = a_submission()
    post(client, walker, body)
    image = io.BytesIO()
    Image.new("RGB", (4, 4)).save(image, "PNG")
    photo = client.post(f"/api/events/party/submissions/{body['client_id']}/photos",
                        data={"photo": (io.BytesIO(image.getvalue()), "p.png")}, headers=walker)
    stored = next(Path(app.config["PHOTO_DIR"]).rglob(photo.json["sha256"] + ".png"))
    response = client.delete(f"/api/events/party/submissions/{body['client_id']}", headers=walker)
    assert response.status_code == 204
    assert count_submissions() == 0
    assert not stored.exists()
    again = client.delete(f"/api/events/party/submissions/{body['client_id']}", headers=walker)
    assert again.status_code == 404


@pytest.mark.parametrize("method", ["put", "delete"])
def test_reviewed_or_foreign_points_cannot_be_changed(client, event, walker, method):
    body = a_submission()
    post(client, walker, body)
    url = f"/api/events/party/submissions/{body['client_id']}"
    edit = {key: body[key] for key in ("preset", "lat", "lon")}
    other = join(client, "party", "Noor")
    assert getattr(client, method)(url, json=edit, headers=other).status_code == 403
    db.session.execute(db.update(Submission).values(status="approved"))
    response = getattr(client, method)(url, json=edit, headers=walker)
    assert response.status_code == 409
    assert response.json["error"]["field"] == "status"
    assert count_submissions() == 1


def test_correction_is_checked_like_a_new_point(client, walker):
    body = a_submission()
    post(client, walker, body)
    url = f"/api/events/party/submissions/{body['client_id']}"
    response = client.put(url, json={"preset": "tree", "lat": 48.85, "lon": 2.35}, headers=walker)
    assert response.status_code == 422
    response = client.put(url, json={"preset": "tree", "lat": body["lat"], "lon": body["lon"],
                                     "client_id": str(uuid.uuid4())}, headers=walker)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "client_id"


@pytest.mark.parametrize("tags", [{"natural\n": "rock"}, {"height": "1_0"}, {"height": "١٢"},
                                  {"height": "1e3"}])
def test_tags_that_only_look_right_are_refused(client, walker, tags):
    assert post(client, walker, a_submission(tags=tags)).status_code == 422


@pytest.mark.parametrize("note", [False, 0, [], {}])
def test_note_must_be_text(client, walker, note):
    response = post(client, walker, a_submission(note=note))
    assert response.status_code == 422
    assert response.json["error"]["field"] == "note"


@pytest.mark.parametrize("path", ["/api/events/%00", "/api/events/%00/submissions.geojson",
                                  "/e/%00", "/api/events/party/photos/%00",
                                  "/api/events/party/photos/" + "a" * 64 + "garbage"])
def test_nul_and_junk_in_addresses_are_404(client, walker, path):
    assert client.get(path, headers=walker).status_code == 404


def test_nul_in_basic_auth_is_refused_not_a_500(client, event):
    credentials = base64.b64encode(b"al\x00ice@example.org:pw").decode()
    response = client.get("/api/events/party/submissions.geojson",
                          headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 401


# ---- Batches: what a phone back online sends --------------------------------------------------

BATCH = "/api/events/{slug}/submissions/batch"


def post_batch(client, walker, bodies, slug="party"):
    return client.post(f"/api/events/{slug}/submissions/batch", json={"submissions": bodies},
                       headers=walker)


def test_batch_answers_each_point_in_order_as_a_single_post_would(client, walker):
    from test_api import assert_conforms

    stored = a_submission()
    first = post(client, walker, stored)
    new = a_submission(preset="bench", tags={})
    bodies = [new, stored, {**stored, "note": "changed"}, a_submission(lat=91),
              a_submission(lat=48.85, lon=2.35), 12, a_submission(colour="green")]
    response = post_batch(client, walker, bodies)
    assert response.status_code == 200
    assert_conforms(response, BATCH, "post")
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 200, 409, 422, 422, 422, 422]
    assert [r["client_id"] for r in results] == [b["client_id"] if isinstance(b, dict) else None
                                                 for b in bodies]
    assert results[0]["submission"]["tags"] == {"amenity": "bench"}
    assert results[1]["submission"] == first.json
    assert [r.get("error", {}).get("field") for r in results] == [
        None, None, "client_id", "lat", "lat", None, "colour"]
    assert [r["error"]["code"] for r in results[2:]] == [
        "client_id_taken", "number_range", "outside_zone", "json_not_object", "unknown_field"]
    assert "submission" not in results[2] and "error" not in results[0]
    assert count_submissions() == 2


def test_replayed_batch_adds_no_rows(client, walker):
    bodies = [a_submission(note=f"arbre {n}") for n in range(5)]
    first = post_batch(client, walker, bodies)
    again = post_batch(client, walker, bodies)
    assert [r["status"] for r in first.json["results"]] == [201] * 5
    assert [r["status"] for r in again.json["results"]] == [200] * 5
    assert [r["submission"] for r in again.json["results"]] == \
        [r["submission"] for r in first.json["results"]]
    assert count_submissions() == 5
    single = post(client, walker, bodies[2])  # the single route knows them too
    assert (single.status_code, single.json) == (200, first.json["results"][2]["submission"])


def test_batch_points_are_stored_in_the_order_sent(client, walker):
    bodies = [a_submission(note=f"point {n}") for n in range(50)]
    results = post_batch(client, walker, bodies).json["results"]
    ids = [result["submission"]["id"] for result in results]
    assert ids == sorted(ids)
    assert db.session.scalars(db.select(Submission.note).order_by(Submission.id)).all() == \
        [body["note"] for body in bodies]


@pytest.mark.parametrize(("second", "status"), [({}, 200), ({"note": "autre"}, 409)])
def test_a_client_id_twice_in_one_batch_is_stored_once(client, walker, second, status):
    body = a_submission()
    response = post_batch(client, walker, [body, {**body, **second}])
    assert [r["status"] for r in response.json["results"]] == [201, status]
    assert count_submissions() == 1


def test_a_batch_of_another_walkers_points_is_a_conflict_per_point(client, event, walker):
    body = a_submission()
    post(client, walker, body)
    other = join(client, "party", "Noor")
    response = post_batch(client, other, [body, a_submission()])
    assert [r["status"] for r in response.json["results"]] == [409, 201]


@pytest.mark.parametrize("envelope", [
    {"submissions": [a_submission() for _ in range(51)]},
    {"submissions": {"0": a_submission()}},
    {"submissions": None},
    {},
    {"submissions": [], "colour": "green"},
], ids=["51 points", "an object", "null", "missing", "unknown field"])
def test_a_wrong_envelope_is_refused_whole(client, walker, envelope):
    response = client.post("/api/events/party/submissions/batch", json=envelope, headers=walker)
    assert response.status_code == 422
    assert response.json["error"]["field"] in ("submissions", "colour")
    assert count_submissions() == 0


def test_batch_of_more_than_50_names_the_limit(client, walker):
    response = post_batch(client, walker, [a_submission() for _ in range(51)])
    assert response.json["error"]["code"] == "batch_too_long"
    assert response.json["error"]["params"] == {"max": 50}


def test_an_empty_batch_is_an_empty_answer(client, walker):
    response = post_batch(client, walker, [])
    assert (response.status_code, response.json) == (200, {"results": []})


def test_sizes_are_limited_per_batch_and_per_point(client, walker):
    huge = post_batch(client, walker, [a_submission(note="x" * 1900) for _ in range(50)] * 12)
    assert huge.status_code == 413
    big_point = a_submission(x_filler="y" * 70_000)
    response = post_batch(client, walker, [big_point, a_submission()])
    assert [r["status"] for r in response.json["results"]] == [413, 201]
    assert response.json["results"][0]["error"]["code"] == "too_large"
    assert count_submissions() == 1


def test_a_nul_anywhere_refuses_the_batch_naming_the_point(client, walker):
    response = post_batch(client, walker, [a_submission(), a_submission(note="a\x00b")])
    assert response.status_code == 422
    assert response.json["error"]["field"] == "submissions[1].note"
    assert count_submissions() == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_batch_without_a_valid_token_is_401(client, event, headers):
    assert post_batch(client, headers, [a_submission()]).status_code == 401
    assert count_submissions() == 0


def test_batch_to_an_unknown_event_is_404(client, walker):
    assert post_batch(client, walker, [a_submission()], slug="nowhere").status_code == 404


@pytest.fixture
def statements(app):
    """The SQL statements the app sends to PostgreSQL meanwhile (savepoints left out)."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "SAVEPOINT" not in statement:
            sent.append(statement)

    sqlalchemy.event.listen(db.engine, "before_cursor_execute", record)
    yield sent
    sqlalchemy.event.remove(db.engine, "before_cursor_execute", record)


def test_a_batch_is_stored_by_one_statement(client, walker, statements):
    post_batch(client, walker, [a_submission() for _ in range(50)])
    assert len([s for s in statements if "submission" in s]) == 1
    assert len(statements) == 2  # the event and its walker, then the 50 points
    statements.clear()
    stored = a_submission()
    post(client, walker, stored)
    statements.clear()
    mixed = post_batch(client, walker, [stored, *(a_submission() for _ in range(48)),
                                        a_submission(lat=48.85, lon=2.35)])
    assert [r["status"] for r in mixed.json["results"]] == [200] + [201] * 48 + [422]
    assert len([s for s in statements if "INSERT" in s]) == 1
    assert len(statements) == 3  # and one look-up for the replay and the point outside the zone


@pytest.mark.commits
def test_racing_batches_of_the_same_points_store_each_once(app, committed_event):
    walker = join(app.test_client(), "race")
    bodies = [a_submission() for _ in range(20)]
    start = threading.Barrier(6)
    answers = []

    def send():
        start.wait()
        answers.append(post_batch(app.test_client(), walker, bodies, slug="race").json["results"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for position in range(20):
        assert sorted(results[position]["status"] for results in answers) == [200] * 5 + [201]
    rows = db.session.scalar(db.select(db.func.count()).select_from(Submission)
                             .where(Submission.event_id == committed_event.id))
    assert rows == 20
