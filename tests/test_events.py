import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ZONE, join, make_event
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cartoparty.events import JOINS_PER_WINDOW
from cartoparty.extensions import db
from cartoparty.models import JoinRate, Participant


def test_event_shows_zone_as_geojson_and_its_presets(client, event):
    response = client.get("/api/events/party")
    assert response.status_code == 200
    body = response.json
    assert body["name"] == "Cartopartie du quartier"
    assert body["zone"]["type"] == "MultiPolygon"
    assert body["zone"]["coordinates"][0] == ZONE["coordinates"]
    assert [preset["id"] for preset in body["presets"]] == ["tree", "bench", "defibrillator"]
    assert body["licence"] == "ODbL-1.0"


def test_unknown_event_is_404_naming_the_slug(client):
    response = client.get("/api/events/nowhere")
    assert response.status_code == 404
    assert response.json["error"]["field"] == "slug"
    assert response.json["error"]["code"] == "no_such_event"
    assert response.json["error"]["params"] == {"slug": "nowhere"}
    assert "nowhere" in response.json["error"]["message"]


def test_joining_returns_a_token_and_stores_only_pseudonym_and_consent(client, event):
    response = client.post("/api/events/party/participants",
                           json={"pseudonym": "  Camille   la  rando ", "consent": True})
    assert response.status_code == 201
    token = response.json["token"]
    assert len(token) >= 40
    participant = db.session.scalar(db.select(Participant))
    assert participant.pseudonym == "Camille la rando"
    assert participant.consented_at is not None
    assert token not in participant.token_hash


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"pseudonym": "Camille"}, 422, "consent"),
    ({"pseudonym": "Camille", "consent": "yes"}, 422, "consent"),
    ({"pseudonym": "Camille", "consent": False}, 422, "consent"),
    ({"pseudonym": "", "consent": True}, 422, "pseudonym"),
    ({"pseudonym": "   ", "consent": True}, 422, "pseudonym"),
    ({"pseudonym": 42, "consent": True}, 422, "pseudonym"),
    ({"pseudonym": "x" * 41, "consent": True}, 422, "pseudonym"),
    ({"pseudonym": "a\x07b", "consent": True}, 422, "pseudonym"),
    ({"pseudonym": "Camille", "consent": True, "email": "c@x.fr"}, 422, "email"),
])
def test_bad_join_is_refused_naming_the_field(client, event, body, status, field):
    response = client.post("/api/events/party/participants", json=body)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
    assert db.session.scalar(db.select(db.func.count()).select_from(Participant)) == 0


def test_pseudonym_is_unique_within_an_event_whatever_its_case(client, event):
    join(client, "party", "Camille")
    response = client.post("/api/events/party/participants",
                           json={"pseudonym": "CAMILLE", "consent": True})
    assert response.status_code == 409
    assert response.json["error"]["field"] == "pseudonym"
    make_event("other")
    assert client.post("/api/events/other/participants",
                       json={"pseudonym": "Camille", "consent": True}).status_code == 201


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 400),
    ('"text"', "application/json", 400),
    ("pseudonym=Camille", "application/x-www-form-urlencoded", 415),
    ("\xff\xfe", "application/json", 400),
    ('{"pseudonym": "' + "x" * 70000 + '"}', "application/json", 413),
])
def test_malformed_bodies_get_a_json_error(client, event, data, content_type, status):
    response = client.post("/api/events/party/participants", data=data,
                           content_type=content_type)
    assert response.status_code == status
    assert response.is_json and response.json["error"]


def test_join_unknown_event_is_404(client):
    response = client.post("/api/events/nowhere/participants",
                           json={"pseudonym": "Camille", "consent": True})
    assert response.status_code == 404


@pytest.mark.parametrize("pseudonym", ["\ufeff", "a\u200bb", "\u2028"])
def test_invisible_pseudonyms_are_refused(client, event, pseudonym):
    response = client.post("/api/events/party/participants",
                           json={"pseudonym": pseudonym, "consent": True})
    assert response.status_code == 422


def join_from(client, address, pseudonym, slug="party"):
    return client.post(f"/api/events/{slug}/participants", json={"pseudonym": pseudonym, "consent": True},
                       environ_base={"REMOTE_ADDR": address})


def test_a_party_behind_one_router_joins_but_a_flood_waits(client, event):
    allowed = JOINS_PER_WINDOW
    assert allowed >= 200  # a whole party of a couple of hundred behind one router
    statuses = [join_from(client, "198.51.100.7", f"Walker {n}").status_code for n in range(allowed)]
    assert statuses == [201] * allowed
    refused = join_from(client, "198.51.100.7", "Walker x")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "600"
    assert refused.json["error"]["code"] == "join_rate_limited"
    assert refused.json["error"]["message"].endswith("try again in 10 minutes.")
    assert join_from(client, "203.0.113.9", "Walker x").status_code == 201
    db.session.execute(db.update(JoinRate).values(
        window_started_at=JoinRate.window_started_at - db.func.make_interval(0, 0, 0, 0, 0, 10)))
    assert join_from(client, "198.51.100.7", "Walker y").status_code == 201


def test_refused_joins_count_too(client, event):
    make_event("other")
    statuses = [join_from(client, "198.51.100.7", "Camille", "other").status_code
                for _ in range(JOINS_PER_WINDOW)]
    # guessing which pseudonyms are taken counts as well
    assert statuses == [201] + [409] * (JOINS_PER_WINDOW - 1)
    assert join_from(client, "198.51.100.7", "Noor").status_code == 429
    assert db.session.scalar(db.select(JoinRate.joins)) == JOINS_PER_WINDOW + 1
    assert "198.51.100.7" not in db.session.scalar(db.select(JoinRate.address_hash))


@pytest.mark.parametrize("look_alike", [
    "Cаmіllе",  # Cyrillic а, і and е
    "Camіlle",  # Cyrillic і only
    "Ｃａｍｉｌｌｅ",  # fullwidth letters
    "CAMILLE",
    "Carnille",  # rn drawn as m
])
def test_a_pseudonym_that_looks_like_a_taken_one_is_refused(client, event, look_alike):
    join(client, "party", "Camille")
    response = client.post("/api/events/party/participants",
                           json={"pseudonym": look_alike, "consent": True})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "pseudonym_taken"
    assert response.json["error"]["field"] == "pseudonym"
    assert response.json["error"]["params"] == {"pseudonym": look_alike}


@pytest.mark.parametrize("other", ["Camillé", "Camila", "Noor", "Camille 2"])
def test_pseudonyms_that_only_resemble_one_taken_are_welcome(client, event, other):
    join(client, "party", "Camille")
    assert client.post("/api/events/party/participants",
                       json={"pseudonym": other, "consent": True}).status_code == 201


def test_look_alikes_are_refused_by_the_index_even_when_joining_at_once(event):
    # Two workers that each checked nothing yet still cannot both write a look-alike: the
    # unique index on (event, skeleton) refuses the second row.
    db.session.add(Participant(event_id=event.id, pseudonym="Camille", token_hash="a" * 64,
                               consented_at=db.func.now()))
    db.session.flush()
    db.session.add(Participant(event_id=event.id, pseudonym="Cаmіllе", token_hash="b" * 64,
                               consented_at=db.func.now()))
    with pytest.raises(IntegrityError, match="participant_skeleton_unique"):
        db.session.flush()


def test_the_migration_fills_skeletons_and_keeps_look_alikes_that_joined_before(client, event,
                                                                               monkeypatch):
    path = Path(__file__).parents[1] / "migrations" / "versions" / \
        "2026_12_02_b8e1d3f5a7c9_sign_in_delays_sessions_lookalikes.py"
    spec = importlib.util.spec_from_file_location("lookalikes_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    for pseudonym, token in (("Camille", "a"), ("Cаmіllе", "b"), ("Noor", "c")):
        db.session.execute(text(
            "INSERT INTO participant (event_id, pseudonym, token_hash, consented_at) "
            "VALUES (:event, :pseudonym, :token, now())"),
            {"event": event.id, "pseudonym": pseudonym, "token": token * 64})
    monkeypatch.setattr(migration, "op", SimpleNamespace(get_bind=db.session.connection))
    migration.fill_skeletons()
    rows = db.session.execute(text(
        "SELECT pseudonym, pseudonym_skeleton FROM participant ORDER BY id")).all()
    assert [row.pseudonym_skeleton.split("\n")[0] for row in rows] == ["carnille", "carnille", "noor"]
    assert len({row.pseudonym_skeleton for row in rows}) == 3
    assert rows[0].pseudonym_skeleton == "carnille"
    assert join_from(client, "198.51.100.7", "CAMILLE").status_code == 409
