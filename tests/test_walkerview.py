"""What a walker's phone is sent of its event: its own points and others' approved points,
nothing else; and only what changed since its last sync."""

import base64

import pytest
from conftest import a_submission, join, make_event, make_organiser

from cartoparty.extensions import db
from cartoparty.models import Event, Organiser

GEOJSON = "/api/events/{slug}/submissions.geojson"
OTHERS_PROPERTIES = {"client_id", "preset", "tags", "status", "mine"}


def basic(email="alice@example.org", password="correct horse"):
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def record(client, walker, slug="party", **values):
    body = a_submission(**values)
    response = client.post(f"/api/events/{slug}/submissions", json=body, headers=walker)
    assert response.status_code == 201, response.json
    return response.json


def decide(client, slug, point, decision, reason=None):
    body = {"version": point["version"] if "version" in point else 1}
    if reason:
        body["reason"] = reason
    response = client.post(f"/api/organise/{slug}/submissions/{point['id']}/{decision}",
                           json=body, headers=basic())
    assert response.status_code == 200, response.json
    return response.json


def view(client, walker, slug="party", since=None):
    response = client.get(GEOJSON.format(slug=slug), headers=walker,
                          query_string={"since": since} if since else None)
    assert response.status_code == 200, response.json
    return response.json


def by_client_id(collection):
    return {feature["id"]: feature["properties"] for feature in collection["features"]}


@pytest.fixture
def camille(client, event):
    return join(client, "party", "Camille")


@pytest.fixture
def dominique(client, event):
    return join(client, "party", "Dominique")


def test_walker_sees_own_points_and_only_the_approved_points_of_others(client, event, camille,
                                                                        dominique):
    make_organiser(events=[event])
    mine = record(client, camille, note="behind the school")
    mine_rejected = record(client, camille)
    decide(client, "party", mine_rejected, "reject", reason="Ce n'est pas un arbre")
    theirs_pending = record(client, dominique, note="Dominique's secret note")
    theirs_approved = record(client, dominique, note="not for others")
    theirs_rejected = record(client, dominique)
    decide(client, "party", theirs_approved, "approve")
    decide(client, "party", theirs_rejected, "reject", reason="doublon")

    points = by_client_id(view(client, camille))

    assert set(points) == {mine["client_id"], mine_rejected["client_id"], theirs_approved["client_id"]}
    assert theirs_pending["client_id"] not in points and theirs_rejected["client_id"] not in points
    assert points[mine["client_id"]]["note"] == "behind the school"
    assert points[mine["client_id"]]["mine"] is True
    assert points[mine_rejected["client_id"]]["review_reason"] == "Ce n'est pas un arbre"
    assert points[mine["client_id"]]["review_reason"] is None
    others = points[theirs_approved["client_id"]]
    assert set(others) == OTHERS_PROPERTIES
    assert (others["status"], others["mine"]) == ("approved", False)


def test_nothing_of_others_but_their_approved_points_reaches_the_phone(client, event, camille,
                                                                       dominique):
    make_organiser(events=[event])
    approved = record(client, dominique, note="Dominique's secret note")
    decide(client, "party", approved, "approve")
    record(client, dominique, note="pending and private")
    body = client.get(GEOJSON.format(slug="party"), headers=camille).get_data(as_text=True)
    assert "Dominique" not in body and "secret" not in body and "private" not in body
    assert "photo_count" not in body and "received_at" not in body


def test_organisers_still_see_every_point_with_its_author(client, event, camille, dominique):
    make_organiser(events=[event])
    record(client, camille)
    rejected = record(client, dominique)
    decide(client, "party", rejected, "reject", reason="doublon")
    features = client.get(GEOJSON.format(slug="party"), headers=basic()).json["features"]
    assert {f["properties"]["pseudonym"] for f in features} == {"Camille", "Dominique"}
    assert {f["properties"]["review_reason"] for f in features} == {None, "doublon"}


def test_a_full_answer_says_so_and_gives_a_cursor(client, camille):
    collection = view(client, camille)
    assert collection["complete"] is True
    assert collection["removed"] == []
    assert collection["cursor"].count(":") == 2


@pytest.mark.parametrize("cursor", ["yesterday", "1:2", "12:3:", "1:2:x", "9" * 30 + ":1:",
                                    "1:" + "9" * 25 + ":", "1:2:" + ",".join(["3"] * 3000),
                                    "5:9:7,6", "0:0:"])
def test_a_cursor_that_is_not_one_is_refused(client, camille, cursor):
    response = client.get(GEOJSON.format(slug="party"), headers=camille,
                          query_string={"since": cursor})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "cursor_invalid"
    assert response.json["error"]["field"] == "since"


def test_a_cursor_from_another_database_gets_a_full_answer(client, camille):
    record(client, camille)
    ahead = "9000000000000:9000000000000:"
    collection = view(client, camille, since=ahead)
    assert collection["complete"] is True
    assert len(collection["features"]) == 1


@pytest.fixture
def committed(app):
    """An event whose writes are committed (the sync follows transactions), removed after."""
    event = make_event("sync")
    organiser = make_organiser("alice@example.org", events=[event])
    db.session.commit()
    yield event
    db.session.execute(db.delete(Event).where(Event.slug == "sync"))
    db.session.execute(db.delete(Organiser).where(Organiser.id == organiser.id))
    db.session.commit()


@pytest.mark.commits
def test_the_phone_is_sent_only_what_changed_since_its_last_sync(app, committed):
    client = app.test_client()
    camille, dominique = join(client, "sync", "Camille"), join(client, "sync", "Dominique")
    own = record(client, camille, slug="sync")
    first = view(client, camille, "sync")
    assert set(by_client_id(first)) == {own["client_id"]}

    # Another walker's pending point is none of Camille's business, not even as a change.
    theirs = record(client, dominique, slug="sync")
    quiet = view(client, camille, "sync", since=first["cursor"])
    assert (quiet["complete"], quiet["features"], quiet["removed"]) == (False, [], [])

    # Approved, it arrives; nothing else is sent again.
    approved = decide(client, "sync", theirs, "approve")
    arrived = view(client, camille, "sync", since=quiet["cursor"])
    assert list(by_client_id(arrived)) == [theirs["client_id"]]
    assert arrived["removed"] == []

    # Rejected after all, it leaves Camille's phone; its author keeps it, with the reason.
    decide(client, "sync", approved, "reject", reason="hors sujet")
    left = view(client, camille, "sync", since=arrived["cursor"])
    assert (left["features"], left["removed"]) == ([], [theirs["client_id"]])
    author = by_client_id(view(client, dominique, "sync", since=first["cursor"]))
    assert author[theirs["client_id"]]["review_reason"] == "hors sujet"

    # Camille's own point, approved by the organiser, comes back with its new status.
    decide(client, "sync", own, "approve")
    mine = view(client, camille, "sync", since=left["cursor"])
    assert by_client_id(mine)[own["client_id"]]["status"] == "approved"


@pytest.mark.commits
def test_a_deleted_point_leaves_its_authors_phone_and_only_theirs(app, committed):
    client = app.test_client()
    camille, dominique = join(client, "sync", "Camille"), join(client, "sync", "Dominique")
    pending = record(client, dominique, slug="sync")
    before_camille = view(client, camille, "sync")["cursor"]
    before_dominique = view(client, dominique, "sync")["cursor"]
    deleted = client.delete(f"/api/events/sync/submissions/{pending['client_id']}", headers=dominique)
    assert deleted.status_code == 204
    assert view(client, dominique, "sync", since=before_dominique)["removed"] == [pending["client_id"]]
    assert view(client, camille, "sync", since=before_camille)["removed"] == []


@pytest.mark.commits
def test_a_point_written_while_the_phone_synced_is_not_missed(app, committed):
    """A transaction that began before the phone's snapshot and commits after it is sent at
    the next sync, though its rows are older than what the phone already saw."""
    client = app.test_client()
    camille = join(client, "sync", "Camille")
    record(client, camille, slug="sync")
    late = db.engine.connect()
    try:
        transaction = late.begin()
        late.execute(db.text("UPDATE submission SET note = 'late' WHERE event_id = :id"),
                     {"id": committed.id})
        cursor = view(client, camille, "sync")["cursor"]
        transaction.commit()
    finally:
        late.close()
    later = view(client, camille, "sync", since=cursor)
    assert [f["properties"]["note"] for f in later["features"]] == ["late"]


@pytest.mark.parametrize(("lang", "promise"), [
    ("fr", "Les autres participants voient seulement les points validés (position, ce que c'est, "
           "réponses), sans pseudonyme, remarque ni photo"),
    ("en", "Other walkers see only approved points (position, what it is, answers), without "
           "pseudonym, note or photo"),
])
def test_the_join_page_says_who_sees_what(client, event, lang, promise):
    page = client.get(f"/e/party?lang={lang}").get_data(as_text=True)
    assert promise in page.replace("&#39;", "'")
