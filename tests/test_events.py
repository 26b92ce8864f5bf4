import pytest
from conftest import ZONE, join, make_event

from cartoparty.extensions import db
from cartoparty.models import Participant


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
