"""One rule for all text a request brings (inputs.py): NUL and bidirectional controls are refused
wherever they come from, and deep JSON is refused, each with a 4xx naming the field, never a 500."""

import json
from html import unescape

import pytest
from conftest import a_submission, join
from test_organise import csrf, new_event_form

from cartoparty.extensions import db
from cartoparty.models import Event, Submission


def test_a_nul_in_a_query_parameter_is_refused_on_the_page(client, event):
    response = client.get(f"/e/{event.slug}", query_string={"team": "a\x00b"})
    assert response.status_code == 422
    assert "caractère nul" in unescape(response.get_data(as_text=True))


@pytest.mark.parametrize("body, field", [
    ({"pseudonym": "Camille", "consent": True, "team": "x\x00"}, "team"),
    ({"pseudonym": "Cam\u202eille", "consent": True}, "pseudonym"),
])
def test_the_join_body_is_held_to_the_same_rule(client, event, body, field):
    response = client.post(f"/api/events/{event.slug}/participants", json=body)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert response.json["error"]["code"] in ("text_nul", "text_bidi_control")


def test_a_bidirectional_control_in_a_tag_is_refused_and_nothing_is_stored(client, event):
    headers = join(client, event.slug)
    body = a_submission(tags={"species": "Tilia", "name": "evil\u202etxt.exe"})
    response = client.post(f"/api/events/{event.slug}/submissions", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json["error"] | {"message": None} == {
        "code": "text_bidi_control", "field": "tags.name", "message": None,
        "params": {"name": "tags.name"}}
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == 0


@pytest.mark.parametrize("depth", [40, 2000])
def test_json_nested_too_deep_is_422_not_a_recursion_error(client, event, depth):
    raw = '{"a":' * depth + "1" + "}" * depth
    response = client.post(f"/api/events/{event.slug}/participants", data=raw,
                           content_type="application/json")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "json_too_deep"


def test_an_event_name_with_a_nul_is_refused_on_the_organiser_form(client, organiser):
    response = new_event_form(client, name="Bissy\x00")
    assert response.status_code == 422
    assert "caractère nul" in unescape(response.get_data(as_text=True))
    assert db.session.scalar(db.select(Event).filter_by(slug="bissy")) is None


def test_a_reject_reason_with_a_nul_is_refused(client, event, organiser):
    headers = join(client, event.slug)
    client.post(f"/api/events/{event.slug}/submissions", json=a_submission(), headers=headers)
    submission = db.session.scalar(db.select(Submission))
    response = client.post(f"/api/organise/{event.slug}/submissions/{submission.id}/reject",
                           json={"version": submission.version, "reason": "no\x00"},
                           headers={"X-CSRFToken": csrf(client, f"/organise/{event.slug}")})
    assert response.status_code == 422 and response.json["error"]["field"] == "reason"
    db.session.refresh(submission)
    assert submission.status.value == "pending"


def test_ordinary_text_in_any_language_passes(client, event):
    body = {"pseudonym": "Zoë ﻣﺮﻳﻢ 🌳", "consent": True}
    assert client.post(f"/api/events/{event.slug}/participants", json=body).status_code == 201
    assert json.dumps(body)
