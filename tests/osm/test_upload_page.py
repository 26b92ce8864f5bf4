"""Sending to OSM from the OSM changes page: the button queues a job, the worker uploads under
the organiser's linked account, and every uploaded point then links to its OSM element."""

import json
import re
import uuid
from html import unescape

import pytest
from conftest import make_event, make_organiser
from osm.test_changes import mapped, surveyed
from osm.test_check import work
from sqlalchemy import text
from test_organise import csrf

from cartoparty import exports
from cartoparty.extensions import db
from cartoparty.models import OsmAccount, OsmUpload, Participant
from cartoparty.osm import changes
from cartoparty.osm.account import encrypt_token
from cartoparty.osm.conflate import match

TOKEN = "token-of-the-organiser-on-osm"


def signed_in(client, organiser):
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id


def link(organiser):
    db.session.add(OsmAccount(organiser_id=organiser.id, osm_uid=42, display_name="Camille",
                              token_encrypted=encrypt_token(TOKEN), scopes="read_prefs write_api"))
    db.session.commit()


def party_of(event):
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    return event, walker


def test_the_page_offers_to_link_an_account_before_sending(client, app, event, organiser, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_OAUTH_CLIENT_ID", "cartoparty-test")
    html = client.get(f"/organise/{event.slug}/osm-changes").get_data(as_text=True)
    assert f"/organise/{event.slug}/osm-account/link" in html
    assert 'id="start-upload"' not in html


def test_sending_without_a_linked_account_is_refused_in_the_users_language(client, event, organiser,
                                                                          osm_api):
    page = f"/organise/{event.slug}/osm-changes"
    surveyed(party_of(event), {"species": "Acer"})
    match(event)
    changes.build(event, organiser.email)
    db.session.commit()
    response = client.post(f"{page}/upload", data={"csrf_token": csrf(client, page)})
    assert response.status_code == 409
    assert "Liez d'abord votre compte OpenStreetMap" in unescape(response.get_data(as_text=True))
    assert db.session.scalar(text("SELECT count(*) FROM osm_upload")) == 0


@pytest.fixture
def committed_party(app):
    event = make_event("upload-party")
    organiser = make_organiser("upload@example.org", events=[event])
    yield event, organiser
    db.session.rollback()
    db.session.execute(text("DELETE FROM event WHERE slug = 'upload-party'"))
    db.session.execute(text("DELETE FROM organiser WHERE email = 'upload@example.org'"))
    db.session.execute(text("DELETE FROM procrastinate_jobs WHERE task_name = 'osm_upload'"))
    db.session.commit()


@pytest.mark.commits
def test_the_button_sends_the_changes_and_each_point_links_to_osm(app, committed_party, osm_api,
                                                                 tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_READBACK_DELAY", 0)
    event, organiser = committed_party
    osm_api.add_account(TOKEN, display_name="Camille", hourly_limit=10_000)
    link(organiser)
    party = party_of(event)
    mapped(party, osm_api, 101, {"natural": "tree"}, east_m=80)
    new = surveyed(party, {"species": "Acer"})
    improved = surveyed(party, {"species": "Tilia"}, east_m=80)
    db.session.commit()
    match(event)
    changes.build(event, organiser.email)
    db.session.commit()
    client = app.test_client()
    signed_in(client, organiser)
    page = f"/organise/{event.slug}/osm-changes"
    assert 'id="start-upload"' in client.get(page).get_data(as_text=True)
    assert client.post(f"{page}/upload", data={"csrf_token": csrf(client, page)}).status_code == 302
    assert db.session.scalar(db.select(OsmUpload.status)) == "queued"
    work(app)
    assert db.session.scalar(db.select(OsmUpload.status)) == "done"
    html = client.get(page).get_data(as_text=True)
    assert "Envoi terminé" in html and "1 point ajouté" in html and "1 objet amélioré" in html
    sent = re.findall(r'href="https://www\.openstreetmap\.org/changeset/(\d+)"', html)
    assert len(sent) == 1 and int(sent[0]) in osm_api.changesets
    assert osm_api.elements["node", 101].tags == {"natural": "tree", "species": "Tilia"}
    detail = client.get(f"/api/organise/{event.slug}/submissions/{improved}").json
    assert (detail["in_osm_type"], detail["in_osm_id"]) == ("node", 101)
    restitution = unescape(client.get(f"/r/{event.slug}").get_data(as_text=True))
    assert "Envoyé à OpenStreetMap : 1 point ajouté, 1 objet amélioré." in restitution
    assert f"/changeset/{sent[0]}" in restitution
    path = tmp_path / "points.geojson"
    exports.write(event, "geojson", path)
    by_id = {f["id"]: f["properties"]["osm"] for f in json.loads(path.read_text())["features"]}
    assert by_id[improved] == "node/101" and by_id[new].startswith("node/")
    # Pressed again: nothing is left to send, and OSM gets nothing more.
    before = len(osm_api.calls)
    response = client.post(f"{page}/upload", data={"csrf_token": csrf(client, page)})
    assert response.status_code == 409 and "Rien à envoyer" in unescape(response.get_data(as_text=True))
    assert osm_api.calls[before:] == [c for c in osm_api.calls[before:] if c[0] == "GET"]


@pytest.mark.commits
def test_a_paused_upload_job_runs_again_by_itself_when_osm_allows(app, committed_party, osm_api,
                                                                  monkeypatch):
    monkeypatch.setitem(app.config, "OSM_READBACK_DELAY", 0)
    event, organiser = committed_party
    osm_api.add_account(TOKEN, display_name="New mapper", hourly_limit=2)
    link(organiser)
    party = party_of(event)
    for east in (0, 30, 60):
        surveyed(party, {"species": "Acer"}, east_m=east)
    db.session.commit()
    match(event)
    changes.update_settings(changes.plan_of(event), {"hashtags": "#cartoparty", "max_changes": "2"})
    changes.build(event, organiser.email)
    db.session.commit()
    client = app.test_client()
    signed_in(client, organiser)
    page = f"/organise/{event.slug}/osm-changes"
    client.post(f"{page}/upload", data={"csrf_token": csrf(client, page)})
    work(app)
    paused = db.session.scalar(db.select(OsmUpload))
    assert paused.status == "paused"
    job = db.session.execute(text("SELECT status, scheduled_at FROM procrastinate_jobs "
                                  "WHERE id = :id"), {"id": paused.job_id}).one()
    assert job.status == "todo" and job.scheduled_at == paused.resume_at   # the job waits for OSM
    html = unescape(client.get(page).get_data(as_text=True))
    assert "environ 1 000 changements par heure" in html and "il en reste 1" in html
    # The hour has passed, for OSM and for the queue.
    osm_api.advance(3601)
    db.session.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = :id"),
                       {"id": paused.job_id})
    db.session.commit()
    work(app)
    assert db.session.scalar(db.select(OsmUpload.status)) == "done"
    assert sum(1 for e in osm_api.elements.values() if e.tags.get("species") == "Acer") == 3
