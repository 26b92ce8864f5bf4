"""The restitution: public once published (its organisers preview it before), figures computed
right on generated data, publishing with CSRF by the event's organisers only, and everything
users typed shown as text."""

import json
import re
import uuid
from datetime import UTC, datetime
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from conftest import a_submission, join, make_event, make_organiser
from flask import g

from cartoparty.extensions import db
from cartoparty.models import Event, Match, Participant, Photo, Status, Submission, Team
from cartoparty.restitution import figures

PARIS = ZoneInfo("Europe/Paris")
TREE = {"leaf_type": "broadleaved", "leaf_cycle": "deciduous", "genus": "Tilia",
        "species": "Tilia cordata", "denotation": "avenue", "height": "12", "circumference": "1.5"}
DEFIBRILLATOR = {"defibrillator:location": "hall", "indoor": "yes", "level": "0", "access": "yes",
                 "opening_hours": "24/7", "phone": "+33 4 79 00 00 00", "operator": "Mairie"}
HOSTILE = '<script>alert("x")</script>'


def walker(event, pseudonym, team=None):
    participant = Participant(event_id=event.id, pseudonym=pseudonym, team_id=team and team.id,
                              token_hash=uuid.uuid4().hex * 2, consented_at=db.func.now())
    db.session.add(participant)
    db.session.flush()
    return participant


def point(event, participant, preset, status, at, accuracy=None, tags=None, photos=0,
          reason=None, duplicate_of=None, lon=5.92):
    """A submission observed at `at` (hh:mm, Paris time, 13 June 2026)."""
    hour, minute = map(int, at.split(":"))
    submission = Submission(
        event_id=event.id, participant_id=participant.id, client_id=uuid.uuid4(), preset=preset,
        geom=f"SRID=4326;POINT({lon} 45.565)", accuracy=accuracy, tags=tags or {}, note="à voir",
        observed_at=datetime(2026, 6, 13, hour, minute, tzinfo=PARIS), status=Status(status),
        body_sha256="0" * 64, review_reason=reason,
        duplicate_of_id=duplicate_of and duplicate_of.id)
    db.session.add(submission)
    db.session.flush()
    for number in range(photos):
        db.session.add(Photo(submission_id=submission.id, sha256=f"{submission.id:032d}{number:032d}",
                             media_type="image/jpeg", size=1, width=1, height=1))
    return submission


@pytest.fixture
def party():
    """A party with two teams' worth of walkers and seven points of every kind of state."""
    event = make_event(starts_at=datetime(2026, 6, 13, 10, tzinfo=PARIS),
                       ends_at=datetime(2026, 6, 13, 13, tzinfo=PARIS), licence="CC-BY-4.0")
    arbres = Team(event_id=event.id, name="Arbres", presets=["tree"])
    db.session.add(arbres)
    db.session.flush()
    camille, noor = walker(event, "Camille", arbres), walker(event, "Noor")
    walker(event, "Sam", arbres)  # joined, recorded nothing
    first = point(event, camille, "tree", "approved", "10:05", 4, TREE, photos=2)
    second = point(event, camille, "tree", "approved", "10:20", 8, {"species": "Tilia"}, photos=1)
    point(event, camille, "tree", "pending", "10:40", 30, photos=1)
    point(event, noor, "bench", "approved", "11:10", None, {"backrest": "yes"}, lon=5.921)
    point(event, noor, "bench", "rejected", "11:15", 60, reason="photo floue")
    point(event, noor, "tree", "rejected", "11:20", 5, reason=f"same feature as submission {first.id}",
          duplicate_of=first)
    point(event, camille, "defibrillator", "approved", "12:45", 15, DEFIBRILLATOR)
    db.session.add_all([Match(submission_id=first.id, outcome="new"),
                        Match(submission_id=second.id, outcome="existing")])
    db.session.commit()
    return event


def test_figures_are_counted_right(party):
    f = figures(party, PARIS)
    total = f["total"]
    assert {key: total[key] for key in ("recorded", "approved", "pending", "rejected")} == {
        "recorded": 7, "approved": 4, "pending": 1, "rejected": 2}
    assert (f["walkers"], f["contributors"]) == (3, 2)
    assert [(row["preset"], row["approved"], row["recorded"], row["complete"]) for row in f["by_preset"]] == [
        ("tree", 2, 4, 1), ("bench", 1, 2, 0), ("defibrillator", 1, 1, 1)]
    assert [(row["team"], row["approved"], row["recorded"]) for row in f["by_team"]] == [
        ("Arbres", 3, 4), (None, 1, 3)]
    assert [(row["pseudonym"], row["approved"], row["recorded"]) for row in f["by_participant"]] == [
        ("Camille", 3, 4), ("Noor", 1, 3)]
    assert (total["complete"], f["share_complete"]) == (2, 50.0)
    assert (total["with_photo"], total["photos"], f["share_photo"]) == (2, 3, 50.0)
    assert [bucket["count"] for bucket in f["accuracy"]] == [1, 1, 1, 0, 0, 1]
    assert total["median_accuracy"] == 8
    osm = ("osm_new", "osm_existing", "osm_update", "osm_checked")
    assert [total[key] for key in osm] == [1, 1, 0, 2]


def test_timeline_counts_points_per_half_hour_with_the_empty_ones(party):
    timeline = figures(party, PARIS)["timeline"]
    assert [(slot["slot"].strftime("%H:%M"), slot["recorded"], slot["approved"]) for slot in timeline] == [
        ("10:00", 2, 2), ("10:30", 1, 0), ("11:00", 3, 1), ("11:30", 0, 0), ("12:00", 0, 0),
        ("12:30", 1, 1)]


def test_reasons_group_merged_duplicates_together(party):
    reasons = {(row["merged"], row["reason"]): row["n"] for row in figures(party, PARIS)["reasons"]}
    assert reasons == {(True, None): 1, (False, "photo floue"): 1}


def test_an_event_with_no_point_has_empty_figures(client):
    event = make_event()
    f = figures(event, PARIS)
    assert f["total"]["recorded"] == 0
    assert f["timeline"] == [] and f["by_preset"] == [] and f["reasons"] == []
    event.restitution_published_at = db.func.now()
    db.session.commit()
    page = client.get("/r/party")
    assert page.status_code == 200
    assert "Aucun point." in page.get_data(as_text=True)


def publish(event):
    event.restitution_published_at = db.func.now()
    db.session.commit()


def test_the_page_shows_the_figures_and_the_approved_points_only(client, party):
    publish(party)
    response = client.get("/r/party")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    page = unescape(response.get_data(as_text=True))
    assert "Aperçu" not in page
    assert "4 points ont été validés par les organisateurs. Points relevés : 7 ; participants : 2." in page
    assert "La moitié des positions sont précises à 8 m près" in page
    assert "1 points sont nouveaux, 1 y figuraient déjà" in page
    assert "2 points validés sur 4 (50,0 %) ont au moins une photo. Photos en tout : 3." in page
    assert "Doublon : même objet qu'un autre point" in page and "photo floue" in page
    assert "CC-BY-4.0" in page
    raw = response.get_data(as_text=True)
    state = json.loads(unescape(re.search(r"data-state='([^']*)'", raw).group(1)))
    assert len(state["points"]) == 4
    assert {p["preset"] for p in state["points"]} == {"tree", "bench", "defibrillator"}
    assert "Camille" not in json.dumps(state) and "à voir" not in json.dumps(state)
    assert state["presets"]["tree"]["fields"]["species"] == "Espèce (nom latin)"


def test_the_page_is_in_english_when_asked(client, party):
    publish(party)
    page = unescape(client.get("/r/party?lang=en").get_data(as_text=True))
    assert "2 approved points of 4 (50.0 %) have at least one photo. Photos in all: 3." in page
    assert "4 points were approved by the organisers. Points recorded: 7; participants: 2." in page
    assert "What the data says" in page and "What it does not say" in page


def test_unpublished_restitution_is_404_for_everyone_but_its_organisers(client, party):
    assert client.get("/r/party").status_code == 404
    assert client.get("/r/nowhere").status_code == 404
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    assert client.get("/r/party").status_code == 404
    alice = make_organiser(events=[party])
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    preview = client.get("/r/party")
    assert preview.status_code == 200
    assert preview.headers["Cache-Control"] == "private, no-store"
    assert "Aperçu : cette page n'est pas encore publiée" in unescape(preview.get_data(as_text=True))


def test_everything_users_typed_is_shown_as_text(client):
    event = make_event(name=HOSTILE, description="<i>desc</i>", licence="<b>lic</b>")
    team = Team(event_id=event.id, name="<img src=x onerror=alert(1)>", presets=["tree"])
    db.session.add(team)
    db.session.flush()
    evil = walker(event, "<svg onload=alert(2)>", team)
    point(event, evil, "tree", "approved", "10:00", 3, {"species": "</script><script>alert(3)</script>"})
    point(event, evil, "tree", "rejected", "10:10", 3, reason="<a href=javascript:alert(4)>x</a>")
    publish(event)
    page = client.get("/r/party").get_data(as_text=True)
    for raw in (HOSTILE, "<i>desc", "<b>lic", "<img src=x", "<svg onload", "<a href=javascript",
                "</script><script>alert(3)"):
        assert raw not in page
    assert "&lt;svg onload=alert(2)&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;a href=javascript:alert(4)&gt;x&lt;/a&gt;" in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


# The organisers' page: publish, unpublish, list, unlist.

PAGE = "/organise/party/restitution"


def csrf(client):
    g.pop("csrf_token", None)
    page = client.get(PAGE).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_organiser_publishes_and_unpublishes(client, party):
    alice = make_organiser(events=[party])
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    page = client.get(PAGE).get_data(as_text=True)
    assert "Restitution non publiée." in unescape(page) and 'value="publish"' in page
    published = client.post(PAGE, data={"csrf_token": csrf(client), "action": "publish"})
    assert published.status_code == 302
    assert published.location == f"{PAGE}?saved=1"
    first = db.session.get(Event, party.id).restitution_published_at
    assert first is not None
    client.post(PAGE, data={"csrf_token": csrf(client), "action": "publish"})
    assert db.session.get(Event, party.id).restitution_published_at == first  # not moved
    with client.session_transaction() as session:
        session.clear()
    assert client.get("/r/party").status_code == 200
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    assert "http://localhost/r/party" in client.get(PAGE).get_data(as_text=True)
    client.post(PAGE, data={"csrf_token": csrf(client), "action": "unpublish"})
    assert db.session.get(Event, party.id).restitution_published_at is None
    with client.session_transaction() as session:
        session.clear()
    assert client.get("/r/party").status_code == 404


def test_publishing_needs_the_csrf_token_an_action_and_an_organiser_of_the_event(client, party):
    alice = make_organiser(events=[party])
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    token = csrf(client)
    assert client.post(PAGE, data={"action": "publish"}).status_code == 400
    bad = client.post(PAGE, data={"csrf_token": token, "action": "delete"})
    assert bad.status_code == 422
    assert "action" in bad.get_data(as_text=True)
    bob = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = bob.id
    assert client.post(PAGE, data={"csrf_token": token, "action": "publish"}).status_code == 403
    with client.session_transaction() as session:
        del session["organiser_id"]  # the CSRF token stays valid: it is not tied to who signs in
    signed_out = client.post(PAGE, data={"csrf_token": token, "action": "publish"})
    assert signed_out.status_code == 302 and "/sign-in" in signed_out.location
    assert db.session.get(Event, party.id).restitution_published_at is None


def test_organiser_lists_and_unlists_the_event(client, party):
    alice = make_organiser(events=[party])
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    assert db.session.get(Event, party.id).listed is False  # until its organiser lists it
    client.post(PAGE, data={"csrf_token": csrf(client), "action": "list"})
    assert db.session.get(Event, party.id).listed is True
    client.post(PAGE, data={"csrf_token": csrf(client), "action": "unlist"})
    assert db.session.get(Event, party.id).listed is False
    assert 'value="list"' in client.get(PAGE).get_data(as_text=True)
    client.post(PAGE, data={"csrf_token": csrf(client), "action": "list"})
    assert db.session.get(Event, party.id).listed is True


def test_review_and_settings_pages_link_to_the_restitution(client, party):
    alice = make_organiser(events=[party])
    with client.session_transaction() as session:
        session["organiser_id"] = alice.id
    for path in ("/organise/party", "/organise/party/settings"):
        assert f'href="{PAGE}"' in client.get(path).get_data(as_text=True)


def test_a_single_approved_point_is_said_in_the_singular(client, app):
    event = make_event("solo")
    event.restitution_published_at = datetime.now(UTC)
    walker_id = join(client, "solo")
    client.post("/api/events/solo/submissions", json=a_submission(), headers=walker_id)
    db.session.execute(db.text("UPDATE submission SET status = 'approved' WHERE event_id = :id"),
                       {"id": event.id})
    page = client.get("/r/solo?lang=fr").get_data(as_text=True).replace("&#39;", "'")
    assert "1 point a été validé par les organisateurs." in page
    assert "Carte du point validé" in page
