import re
from html import unescape

import pytest
from conftest import join, make_event, make_organiser

from cartoparty.extensions import db
from cartoparty.models import SignInAttempt


def csrf_of(client, path="/sign-in"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, email="alice@example.org", password="correct horse", next_page=None):
    data = {"email": email, "password": password, "csrf_token": csrf_of(client)}
    if next_page:
        data["next"] = next_page
    return client.post("/sign-in", data=data)


def test_signed_out_organiser_goes_to_sign_in_and_back(client, event):
    make_organiser(events=[event])
    response = client.get("/organise/party")
    assert response.status_code == 302
    assert response.location == "/sign-in?next=/organise/party"
    signed = sign_in(client, next_page="/organise/party")
    assert signed.status_code == 302
    assert signed.location == "/organise/party"
    assert client.get("/organise/party").status_code == 200


def test_wrong_password_is_refused_and_counted(client, event):
    make_organiser(events=[event])
    response = sign_in(client, password="guess")
    assert response.status_code == 401
    assert "incorrect" in response.get_data(as_text=True) or "Wrong" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(SignInAttempt)) == 1
    assert client.get("/organise/party").status_code == 302


def test_sign_in_is_rate_limited(client, event):
    make_organiser(events=[event])
    for _ in range(5):
        assert sign_in(client, password="guess").status_code == 401
    response = sign_in(client)  # even the right password waits now
    assert response.status_code == 429
    assert client.get("/organise/party").status_code == 302


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


def test_basic_auth_guessing_is_rate_limited_too(client, event):
    import base64
    make_organiser(events=[event])

    def with_password(password):
        credentials = base64.b64encode(f"alice@example.org:{password}".encode()).decode()
        return client.get("/api/events/party/submissions.geojson",
                          headers={"Authorization": f"Basic {credentials}"})

    assert [with_password("guess").status_code for _ in range(5)] == [401] * 5
    response = with_password("correct horse")
    assert response.status_code == 429
    assert response.is_json


def test_nul_in_the_sign_in_form_is_refused_by_name_not_a_500(client, event):
    make_organiser(events=[event])
    response = sign_in(client, email="alice\x00@example.org")
    assert response.status_code == 422
    assert "« email » contient un caractère nul" in unescape(response.get_data(as_text=True))
    with client.session_transaction() as session:
        assert "organiser_id" not in session
