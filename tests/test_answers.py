"""What every answer carries, and what the app answers when the database goes away under it or
a write comes with no one signed in: a clear 4xx or 503, never a 500."""

import psycopg
import sqlalchemy.exc
from conftest import make_organiser
from sqlalchemy.orm import Session


def dead_connection(*args, **kwargs):
    raise sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(
        "server closed the connection unexpectedly"), connection_invalidated=True)


def test_the_first_request_after_a_database_restart_is_told_to_try_again(client, event, monkeypatch):
    # Every statement of the request meets the dead connection, however it is run.
    monkeypatch.setattr(Session, "_execute_internal", dead_connection)
    answer = client.get("/api/events")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json["error"]["code"] == "database_unavailable"
    page = client.get(f"/e/{event.slug}")
    assert page.status_code == 503 and "réessayez" in page.get_data(as_text=True)
    monkeypatch.undo()
    assert client.get("/api/events").status_code == 200


def test_other_database_errors_are_still_500_and_logged(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise sqlalchemy.exc.ProgrammingError("SELECT x", {}, psycopg.ProgrammingError("no x"))

    monkeypatch.setattr(Session, "_execute_internal", broken)
    answer = client.get("/api/events")
    assert answer.status_code == 500 and answer.json["error"]["code"] == "internal"
    assert "unexpected error on GET /api/events" in caplog.text


def test_an_unauthenticated_write_to_the_api_gets_401_not_a_csrf_refusal(client, event):
    answer = client.post(f"/api/organise/{event.slug}/submissions/1/approve", json={"version": 1})
    assert answer.status_code == 401 and answer.json["error"]["code"] == "organiser_sign_in"


def test_a_signed_in_organisers_write_without_its_token_is_still_refused(client, organiser, event):
    answer = client.post(f"/api/organise/{event.slug}/submissions/1/approve", json={"version": 1})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "csrf_failed"


def test_pages_and_api_answers_carry_the_security_headers(client, event):
    for answer in (client.get(f"/e/{event.slug}"), client.get("/api/events"),
                   client.get("/no-such-page"), client.get("/api/openapi.json")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_an_authorization_header_that_authenticates_nothing_does_not_skip_the_csrf_check(
        client, organiser, event):
    # A signed-in organiser's browser: the header is no proof that the request is not forged.
    answer = client.post(f"/api/organise/{event.slug}/submissions/1/approve", json={"version": 1},
                         headers={"Authorization": "Bearer whatever"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "csrf_failed"


def test_unknown_and_known_emails_cost_the_same_password_check(client, event, monkeypatch):
    from cartoparty import auth

    checked = []
    real = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real(stored, password))
    make_organiser(events=[event])
    assert auth.find_organiser("nobody@example.org", "guess") is None
    assert auth.find_organiser("alice@example.org", "guess") is None
    assert len(checked) == 2 and checked[0].split("$")[0] == checked[1].split("$")[0]
