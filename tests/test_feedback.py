"""Participants' feedback: offered at the end of the event, one answer per walker, anonymous
unless signed, refused field by field when wrong, summarised (escaped) for the organisers."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import join, make_event, make_organiser
from flask import g
from sqlalchemy import text
from test_api import assert_conforms, pointer, validator

from cartoparty.extensions import db
from cartoparty.models import Feedback, Participant

URL = "/api/events/party/feedback"
PATH = "/api/events/{slug}/feedback"
NOW = datetime.now(UTC)
ANSWER = {"learnt": "Reconnaître un tilleul", "improve": "Plus de cartes papier",
          "come_again": "yes"}


@pytest.fixture
def event():
    """An event that ended yesterday."""
    return make_event(starts_at=NOW - timedelta(days=1, hours=3), ends_at=NOW - timedelta(days=1))


def feedback_rows():
    return db.session.scalars(db.select(Feedback).order_by(Feedback.created_at)).all()


def test_walker_answers_once_and_the_answer_is_not_tied_to_them(client, event, walker):
    response = client.post(URL, json=ANSWER, headers=walker)
    assert response.status_code == 201
    assert_conforms(response, PATH, "post")
    assert response.json["signature"] is None
    assert response.json["learnt"] == "Reconnaître un tilleul"
    [stored] = feedback_rows()
    assert (stored.event_id, stored.come_again, stored.signature) == (event.id, "yes", None)
    assert stored.created_at.minute == stored.created_at.second == 0  # to the hour only
    columns = db.session.scalars(text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'feedback'")).all()
    assert not any("participant" in column for column in columns)
    walker_row = db.session.scalar(db.select(Participant).filter_by(event_id=event.id))
    assert walker_row.feedback_at == stored.created_at

    again = client.post(URL, json={**ANSWER, "come_again": "no"}, headers=walker)
    assert again.status_code == 409
    assert_conforms(again, PATH, "post")
    assert len(feedback_rows()) == 1


def test_a_signed_answer_carries_the_pseudonym(client, event):
    noor = join(client, "party", "Noor")
    response = client.post(URL, json={"come_again": "maybe", "sign": True}, headers=noor)
    assert response.status_code == 201
    assert response.json["signature"] == "Noor"
    assert (response.json["learnt"], response.json["improve"]) == ("", "")
    assert feedback_rows()[0].signature == "Noor"


def test_feedback_opens_at_the_end_or_when_the_restitution_is_published(client):
    make_event(starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=2))
    walker = join(client, "party")
    status = client.get(URL, headers=walker)
    assert status.json == {"open": False, "answered": False, "restitution_url": None}
    assert_conforms(status, PATH, "get")
    early = client.post(URL, json=ANSWER, headers=walker)
    assert early.status_code == 403
    assert_conforms(early, PATH, "post")
    assert feedback_rows() == []

    db.session.execute(text("UPDATE event SET restitution_published_at = now()"))
    db.session.commit()
    assert client.get(URL, headers=walker).json == {
        "open": True, "answered": False, "restitution_url": "/r/party"}
    assert client.post(URL, json=ANSWER, headers=walker).status_code == 201
    status = client.get(URL, headers=walker)
    assert status.json["answered"] is True
    assert_conforms(status, PATH, "get")


def test_an_event_with_no_end_asks_only_once_published(client):
    make_event()
    walker = join(client, "party")
    assert client.get(URL, headers=walker).json["open"] is False


def test_feedback_needs_a_walker_of_this_event(client, event, walker):
    make_event("other", ends_at=NOW - timedelta(days=1))
    stranger = join(client, "other", "Sam")
    for headers in ({}, stranger, {"Authorization": "Bearer nonsense"}):
        response = client.post(URL, json=ANSWER, headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["field"] == "Authorization"
        assert_conforms(response, PATH, "post")
        assert client.get(URL, headers=headers).status_code == 401
    missing = client.post("/api/events/nowhere/feedback", json=ANSWER, headers=walker)
    assert missing.status_code == 404
    assert_conforms(missing, PATH, "post")
    assert feedback_rows() == []


@pytest.mark.parametrize(("change", "field"), [
    ({"come_again": None}, "come_again"),
    ({"come_again": "perhaps"}, "come_again"),
    ({"come_again": ["yes"]}, "come_again"),
    ({"learnt": "x" * 2001}, "learnt"),
    ({"learnt": 42}, "learnt"),
    ({"improve": "mieux\x00"}, "improve"),
    ({"improve": "bip\x07"}, "improve"),
    ({"sign": "yes"}, "sign"),
    ({"email": "camille@example.org"}, "email"),
])
def test_a_bad_answer_is_refused_naming_the_field_and_nothing_is_kept(client, event, walker,
                                                                      change, field):
    body = {key: value for key, value in {**ANSWER, **change}.items() if value is not None}
    assert not validator(pointer("components", "schemas", "FeedbackInput")).is_valid(body)
    response = client.post(URL, json=body, headers=walker)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert_conforms(response, PATH, "post")
    assert feedback_rows() == []
    # The walker may still answer, correctly this time.
    assert client.post(URL, json=ANSWER, headers=walker).status_code == 201


def test_line_breaks_are_kept_and_long_answers_fit(client, event, walker):
    body = {"learnt": "ligne 1\r\nligne 2\tfin", "improve": "é" * 2000, "come_again": "no"}
    assert validator(pointer("components", "schemas", "FeedbackInput")).is_valid(body)
    response = client.post(URL, json=body, headers=walker)
    assert response.status_code == 201
    assert response.json["learnt"] == "ligne 1\nligne 2\tfin"
    assert len(feedback_rows()[0].improve) == 2000


def test_feedback_must_be_json(client, event, walker):
    response = client.post(URL, data="come_again=yes", headers=walker)
    assert response.status_code == 415
    assert_conforms(response, PATH, "post")
    broken = client.post(URL, data="{", headers={**walker, "Content-Type": "application/json"})
    assert broken.status_code == 400
    assert_conforms(broken, PATH, "post")


# What organisers see, on /organise/<slug>/restitution.

PAGE = "/organise/party/restitution"


def add_answer(event, hours_ago, **values):
    db.session.add(Feedback(event_id=event.id, created_at=NOW - timedelta(hours=hours_ago),
                            **{"learnt": "", "improve": "", "come_again": "yes", **values}))
    db.session.commit()


def test_organisers_see_the_answers_summarised_newest_first(client, event, organiser):
    add_answer(event, 5, learnt="le plus ancien", come_again="no")
    add_answer(event, 1, learnt="le plus récent", come_again="yes", signature="Noor")
    add_answer(event, 3, improve="au milieu", come_again="yes")
    add_answer(make_event("other"), 2, learnt="pas de cette cartopartie")
    page = client.get(PAGE).get_data(as_text=True)
    counts = dict(re.findall(r'data-choice="(\w+)">(\d+)<', page))
    assert counts == {"yes": "2", "maybe": "0", "no": "1"}
    assert page.index("le plus récent") < page.index("au milieu") < page.index("le plus ancien")
    assert "pas de cette cartopartie" not in page
    assert "Noor" in page
    assert page.count("· anonyme ·") == 2


def test_hostile_answers_and_signatures_are_shown_as_text(client, event, organiser):
    hostile = '<script>alert("x")</script>'
    walker = join(client, "party", '<img src=x onerror=alert(1)>')
    client.post(URL, json={"learnt": hostile, "improve": "<b>gras</b>", "come_again": "maybe",
                           "sign": True}, headers=walker)
    page = client.get(PAGE).get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;b&gt;gras&lt;/b&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>gras" not in page


def test_only_the_events_organisers_read_the_feedback(client, event):
    add_answer(event, 1, learnt="secret")
    signed_out = client.get(PAGE)
    assert signed_out.status_code == 302
    assert "/sign-in" in signed_out.location
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    forbidden = client.get(PAGE)
    assert forbidden.status_code == 403
    assert "secret" not in forbidden.get_data(as_text=True)
    g.pop("csrf_token", None)
    walker = join(client, "party", "Sam")
    with client.session_transaction() as session:
        session.clear()
    assert client.get(PAGE, headers=walker).status_code == 302
