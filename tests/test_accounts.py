import base64
import re
from html import unescape

import pytest
from conftest import join, make_event, make_organiser
from flask import g

from cartoparty.config import session_cookie_secure
from cartoparty.extensions import db
from cartoparty.models import OrganiserSession, SignInFailure

HERE, ELSEWHERE = "198.51.100.7", "203.0.113.9"


def csrf_of(client, path="/sign-in"):
    g.pop("csrf_token", None)  # flask-wtf keeps the last one in `g`, which outlives a test request
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, email="alice@example.org", password="correct horse", next_page=None,
            address=HERE):
    data = {"email": email, "password": password, "csrf_token": csrf_of(client)}
    if next_page:
        data["next"] = next_page
    return client.post("/sign-in", data=data, environ_base={"REMOTE_ADDR": address})


def time_passes(seconds):
    """Move every stored failure `seconds` back in time (the database's clock stands still
    within a test's transaction)."""
    db.session.execute(db.update(SignInFailure).values(
        last_failed_at=SignInFailure.last_failed_at - db.func.make_interval(0, 0, 0, 0, 0, 0, seconds)))


def basic(password, email="alice@example.org"):
    credentials = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def test_signed_out_organiser_goes_to_sign_in_and_back(client, event):
    make_organiser(events=[event])
    response = client.get("/organise/party")
    assert response.status_code == 302
    assert response.location == "/sign-in?next=/organise/party"
    signed = sign_in(client, next_page="/organise/party")
    assert signed.status_code == 302
    assert signed.location == "/organise/party"
    assert client.get("/organise/party").status_code == 200


def test_wrong_password_is_refused_and_counted_without_keeping_email_or_address(client, event):
    make_organiser(events=[event])
    response = sign_in(client, password="guess")
    assert response.status_code == 401
    assert "incorrect" in response.get_data(as_text=True) or "Wrong" in response.get_data(as_text=True)
    failure = db.session.scalar(db.select(SignInFailure))
    assert failure.failures == 1
    assert "alice" not in failure.key and HERE not in failure.key
    assert client.get("/organise/party").status_code == 302


def test_after_a_few_failures_the_same_address_waits_and_is_told_how_long(client, event):
    make_organiser(events=[event])
    assert [sign_in(client, password="guess").status_code for _ in range(3)] == [401] * 3
    response = sign_in(client)  # even the right password waits now
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert "réessayez dans 1 seconde." in unescape(response.get_data(as_text=True))
    assert client.get("/organise/party").status_code == 302
    time_passes(1)
    assert sign_in(client).status_code == 302
    assert client.get("/organise/party").status_code == 200


def test_the_wait_doubles_with_each_failure_up_to_ten_minutes(client, event):
    make_organiser(events=[event])
    for _ in range(3):
        sign_in(client, password="guess")
    waits = []
    for _ in range(12):
        refused = sign_in(client, password="guess")
        waits.append(int(refused.headers["Retry-After"]))
        time_passes(waits[-1])
        assert sign_in(client, password="guess").status_code == 401  # counted again
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]


def test_the_refusal_says_minutes_in_the_readers_language(client, event):
    make_organiser(events=[event])
    for _ in range(3):
        sign_in(client, password="guess")
    db.session.execute(db.update(SignInFailure).values(failures=20))
    french = sign_in(client)
    assert french.status_code == 429
    assert french.headers["Retry-After"] == "600"
    assert "réessayez dans 10 minutes." in unescape(french.get_data(as_text=True))
    client.set_cookie("lang", "en")
    english = sign_in(client)
    assert "try again in 10 minutes." in english.get_data(as_text=True)


def test_five_wrong_passwords_from_elsewhere_do_not_lock_out_the_organiser(client, event):
    make_organiser(events=[event])
    stranger = [sign_in(client, password="guess", address=ELSEWHERE).status_code for _ in range(5)]
    assert stranger == [401, 401, 401, 429, 429]
    assert sign_in(client, address=HERE).status_code == 302
    assert client.get("/organise/party").status_code == 200


def test_an_address_shared_by_a_party_is_not_slowed_for_the_other_emails(client, event):
    make_organiser(events=[event])
    make_organiser("bob@example.org", events=[event])
    for _ in range(5):
        sign_in(client, password="guess")
    assert sign_in(client, "bob@example.org").status_code == 302
    assert client.get("/organise/party").status_code == 200


def test_old_failures_are_forgotten(client, event):
    make_organiser(events=[event])
    for _ in range(4):
        sign_in(client, password="guess")
    time_passes(24 * 3600 + 1)
    assert sign_in(client, password="guess").status_code == 401  # a first failure again
    assert db.session.scalar(db.select(SignInFailure.failures)) == 1
    sign_in(client, password="guess", address=ELSEWHERE)
    time_passes(24 * 3600 + 1)
    sign_in(client, "bob@example.org", password="guess", address="192.0.2.1")
    assert db.session.scalar(db.select(db.func.count()).select_from(SignInFailure)) == 1


def test_the_right_password_clears_the_failures_of_its_address(client, event):
    make_organiser(events=[event])
    sign_in(client, password="guess")
    sign_in(client, password="guess", address=ELSEWHERE)
    assert sign_in(client).status_code == 302
    assert db.session.scalar(db.select(db.func.count()).select_from(SignInFailure)) == 1


def test_sign_in_without_csrf_token_is_refused(client, event):
    make_organiser(events=[event])
    response = client.post("/sign-in", data={"email": "alice@example.org",
                                             "password": "correct horse"})
    assert response.status_code == 400
    assert client.get("/organise/party").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_sign_in_never_sends_organisers_off_site(client, event, target):
    make_organiser(events=[event])
    response = sign_in(client, next_page=target)
    assert response.location == "/organise"


def test_sign_out_needs_csrf_and_ends_the_session(client, organiser):
    assert client.post("/sign-out").status_code == 400
    token = csrf_of(client, "/organise")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/organise/party").status_code == 302


def test_organiser_of_another_event_is_refused(client, event):
    make_organiser("bob@example.org", events=[make_event("other")])
    sign_in(client, "bob@example.org")
    assert client.get("/organise/party").status_code == 403
    assert client.get("/organise/party/settings").status_code == 403
    assert client.get("/api/organise/party/submissions/1").status_code == 403
    assert client.get("/organise/other").status_code == 200


def test_walker_token_never_opens_organiser_routes(client, event):
    walker = join(client, "party")
    assert client.get("/organise/party", headers=walker).status_code == 302
    assert client.get("/organise", headers=walker).status_code == 302
    response = client.get("/api/organise/party/submissions/1", headers=walker)
    assert response.status_code == 401
    assert response.is_json


def test_basic_auth_guessing_waits_too_and_only_from_its_address(client, event):
    make_organiser(events=[event])

    def with_password(password, address=ELSEWHERE):
        return client.get("/api/events/party/submissions.geojson", headers=basic(password),
                          environ_base={"REMOTE_ADDR": address})

    assert [with_password("guess").status_code for _ in range(3)] == [401] * 3
    response = with_password("correct horse")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json["error"]["code"] == "sign_in_wait_seconds"
    assert response.json["error"]["message"].endswith("try again in 1 second.")
    assert with_password("correct horse", address=HERE).status_code == 200


def test_a_copied_session_cookie_stops_working_once_signed_out(app, client, event):
    make_organiser(events=[event])
    assert sign_in(client).status_code == 302
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/organise/party").status_code == 200
    assert client.post("/sign-out", data={"csrf_token": csrf_of(client, "/organise")}).status_code == 302
    assert db.session.scalar(db.select(db.func.count()).select_from(OrganiserSession)) == 0
    assert copy.get("/organise/party").status_code == 302
    api = copy.get("/api/events/party/submissions.geojson")
    assert api.status_code == 401


def test_signing_in_again_ends_the_previous_session(app, client, event):
    make_organiser(events=[event])
    sign_in(client)
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    sign_in(client)
    assert copy.get("/organise/party").status_code == 302
    assert client.get("/organise/party").status_code == 200


def test_a_signed_cookie_without_its_server_session_opens_nothing(app, client, event):
    organiser = make_organiser(events=[event])
    forged = app.session_interface.get_signing_serializer(app).dumps(
        {"organiser_id": organiser.id, "organiser_session": "made-up", "_permanent": True})
    client.set_cookie("session", forged)
    assert client.get("/organise/party").status_code == 302
    older = app.session_interface.get_signing_serializer(app).dumps({"organiser_id": organiser.id})
    client.set_cookie("session", older)  # as cookies were before sessions lived on the server
    assert client.get("/organise/party").status_code == 302


def test_a_session_unused_longer_than_its_lifetime_is_over(app, client, event):
    make_organiser(events=[event])
    sign_in(client)
    hours = int(app.permanent_session_lifetime.total_seconds() // 3600)
    db.session.execute(db.update(OrganiserSession).values(
        last_seen_at=OrganiserSession.last_seen_at - db.func.make_interval(0, 0, 0, 0, hours, 1)))
    assert client.get("/organise/party").status_code == 302


def test_a_session_in_use_is_seen_every_few_minutes_not_at_every_request(client, event):
    make_organiser(events=[event])
    sign_in(client)
    row = db.session.scalar(db.select(OrganiserSession))
    db.session.execute(db.update(OrganiserSession).values(
        last_seen_at=OrganiserSession.last_seen_at - db.func.make_interval(0, 0, 0, 0, 0, 11)))
    before = db.session.scalar(db.select(OrganiserSession.last_seen_at))
    assert client.get("/organise/party").status_code == 200
    db.session.expire_all()
    seen = db.session.scalar(db.select(OrganiserSession.last_seen_at))
    assert seen > before and seen == row.created_at  # now(): the test's transaction began then
    assert client.get("/organise/party").status_code == 200
    assert db.session.scalar(db.select(OrganiserSession.last_seen_at)) == seen


APPROVE = "/api/organise/party/submissions/{id}/approve"


@pytest.fixture
def point(client, event):
    walker = join(client, "party")
    from conftest import a_submission
    response = client.post("/api/events/party/submissions", json=a_submission(), headers=walker)
    return response.json["id"]


@pytest.mark.parametrize("header", ["Bearer made-up-token", "Basic " + base64.b64encode(
    b"alice@example.org:guess").decode(), "Basic !!!", "Token abc", "Basic"])
def test_an_authorization_header_that_signs_no_one_in_is_a_401_before_anything(client, event,
                                                                               point, header):
    make_organiser(events=[event])
    response = client.post(APPROVE.format(id=point), json={"version": 1},
                           headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "organiser_sign_in"
    from cartoparty.models import Submission
    assert db.session.get(Submission, point).status == "pending"


def test_basic_auth_that_signs_in_needs_no_csrf_token(client, event, point):
    make_organiser(events=[event])
    response = client.post(APPROVE.format(id=point), json={"version": 1},
                           headers=basic("correct horse"))
    assert response.status_code == 200


def test_a_cookie_session_needs_its_csrf_token_whatever_authorization_comes_along(client, organiser,
                                                                                   point):
    for headers in ({}, basic("correct horse"), {"Authorization": "Bearer x"}):
        response = client.post(APPROVE.format(id=point), json={"version": 1}, headers=headers)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "csrf_failed"


def test_pages_need_their_csrf_token_even_with_basic_auth(client, event):
    make_organiser(events=[event])
    response = client.post("/sign-in", data={"email": "alice@example.org", "password": "correct horse"},
                           headers=basic("correct horse"))
    assert response.status_code == 400
    response = client.post("/organise/party/teams", data={"name": "Les bancs"},
                           headers=basic("correct horse"))
    assert response.status_code == 400


@pytest.mark.parametrize(("environ", "secure"), [
    ({}, False), ({"SESSION_COOKIE_SECURE": "1"}, True), ({"SESSION_COOKIE_SECURE": "0"}, False),
    ({"PUBLIC_URL": "https://carto.example.org"}, True), ({"PUBLIC_URL": "http://localhost:8000"}, False),
    ({"PUBLIC_URL": "https://carto.example.org", "SESSION_COOKIE_SECURE": "0"}, False),
])
def test_the_session_cookie_is_secure_when_the_app_is_served_over_https(environ, secure):
    assert session_cookie_secure(environ) is secure


def test_the_session_cookie_is_http_only_and_same_site(app, client, event, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    make_organiser(events=[event])
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_nul_in_the_sign_in_form_is_refused_by_name_not_a_500(client, event):
    make_organiser(events=[event])
    response = sign_in(client, email="alice\x00@example.org")
    assert response.status_code == 422
    assert "« email » contient un caractère nul" in unescape(response.get_data(as_text=True))
    with client.session_transaction() as session:
        assert "organiser_id" not in session
