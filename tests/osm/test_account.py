"""Linking an organiser's OpenStreetMap account (osm/account.py): OAuth 2.0 with PKCE against the
local stand-in of the OSM site (tests/osm/osm_api.py), driven as a browser would: the app's link
route, the stand-in's authorize page (its form submitted with requests), the app's callback."""

import json
import logging
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from conftest import make_event, make_organiser
from cryptography.fernet import Fernet
from flask import flash, render_template

from cartoparty import create_app, i18n
from cartoparty.errors import CartopartyError
from cartoparty.extensions import db
from cartoparty.models import OsmAccount
from cartoparty.osm import account

TOKEN = "s3cret-OSM-token-6f1c0e9a"  # noqa: S105
CLIENT_ID, CLIENT_SECRET = "cartoparty-tests", "client-secret-of-tests"
# As the README registers it: OSM takes http redirect URIs on 127.0.0.1 only.
PUBLIC_URL = "http://127.0.0.1:5000"
CALLBACK = f"{PUBLIC_URL}/organise/osm-account/callback"
STATE_PREFIX = f"_state_{account.CLIENT_NAME}_"


@pytest.fixture(scope="module")
def app(app, database_url, tmp_path_factory):
    """The shared app once create_app registers the blueprint; until then one of our own (a
    blueprint cannot be added to an app that has served requests)."""
    if account.bp.name in app.blueprints:
        return app
    own = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      "PHOTO_DIR": str(tmp_path_factory.mktemp("photos"))})
    own.register_blueprint(account.bp)
    return own


@pytest.fixture
def osm(app, osm_api, monkeypatch):
    """The stand-in as the OSM site too, our application registered on it, Dominique signed in."""
    osm_api.register_client(CLIENT_ID, CLIENT_SECRET, [CALLBACK])
    osm_api.authorize_as = osm_api.add_account("token-of-another-app", display_name="Dominique",
                                               uid=4242)
    for name, value in {"OSM_AUTH_URL": osm_api.auth_url, "OSM_OAUTH_CLIENT_ID": CLIENT_ID,
                        "OSM_OAUTH_CLIENT_SECRET": CLIENT_SECRET, "OSM_API_TIMEOUT": 5,
                        "PUBLIC_URL": PUBLIC_URL}.items():
        monkeypatch.setitem(app.config, name, value)
    return osm_api


class _Forms(HTMLParser):
    """A page's forms: {button text: (action, fields)}, the fields with the button's own."""

    def __init__(self):
        super().__init__()
        self.buttons, self._form, self._button = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = (attrs.get("action") or "", {})
        elif tag == "input" and self._form is not None and attrs.get("name"):
            self._form[1][attrs["name"]] = attrs.get("value") or ""
        elif tag == "button":
            self._button = attrs

    def handle_data(self, data):
        if self._button is not None and data.strip():
            own = {self._button["name"]: self._button.get("value") or ""} if self._button.get("name") else {}
            self.buttons[data.strip()] = (self._form[0], {**self._form[1], **own})

    def handle_endtag(self, tag):
        if tag == "button":
            self._button = None
        elif tag == "form":
            self._form = None


def go_to_osm(client, slug):
    """GET the link route: the authorize URL it redirects to."""
    response = client.get(f"/organise/{slug}/osm-account/link")
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def answer_on_osm(authorize_url, choice="Authorize"):
    """Where the OSM site sends the browser back after `choice` on its authorize page (or at
    once, for an application already authorized): the callback's path and query."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    if answer.status_code != 302:
        assert answer.status_code == 200, answer.text
        forms = _Forms()
        forms.feed(answer.text)
        action, fields = forms.buttons[choice]
        answer = requests.post(urljoin(authorize_url, action), data=fields, allow_redirects=False,
                               timeout=5)
        assert answer.status_code == 302, answer.text
    back = answer.headers["Location"]
    assert back.startswith(f"{CALLBACK}?"), back
    parts = urlsplit(back)
    return f"{parts.path}?{parts.query}"


def link(client, slug, choice="Authorize"):
    """The whole flow, as a browser goes through it; the callback's answer."""
    return client.get(answer_on_osm(go_to_osm(client, slug), choice))


def flashed(client):
    """The account messages waiting in the session, taken: [(catalog key, params, level)]."""
    with client.session_transaction() as session:
        messages = session.pop("_flashes", [])
    return [(m["text"], m["params"], m["level"]) for category, m in messages
            if category == account.FLASH_CATEGORY]


def stored(organiser):
    db.session.expire_all()
    return db.session.get(OsmAccount, organiser.id)


def csrf(client, event):
    page = client.get(f"/organise/{event.slug}/osm-changes").text
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def include(event, osm_account, oauth_configured=True):
    """The page's account part as the OSM changes page includes it."""
    return render_template("organise/_osm_account.html", event=event, osm_account=osm_account,
                           oauth_configured=oauth_configured)


def token_works(osm, token):
    """Whether the OSM API takes the token."""
    answer = requests.get(f"{osm.url}/user/details.json", headers={"Authorization": f"Bearer {token}"},
                          timeout=5)
    return answer.status_code == 200


def no_state_left(client):
    with client.session_transaction() as session:
        return not [key for key in session if key.startswith(STATE_PREFIX) or key == account.EVENT_KEY]


def test_linking_stores_the_account_with_its_token_encrypted(app, client, organiser, event, osm):
    authorize_url = go_to_osm(client, event.slug)
    query = parse_qs(urlsplit(authorize_url).query)
    assert authorize_url.startswith(f"{osm.auth_url}/oauth2/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["scope"] == ["write_api read_prefs"] and query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [CALLBACK]
    assert len(query["state"][0]) >= 20

    response = client.get(answer_on_osm(authorize_url))

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/organise/{event.slug}/osm-changes#osm-account")
    row = stored(organiser)
    token = account.token_for(organiser.id)
    assert osm.tokens[token].account.uid == 4242 and token_works(osm, token)
    assert (row.osm_uid, row.display_name) == (4242, "Dominique")
    assert set(row.scopes.split()) == {"write_api", "read_prefs"}
    assert token.encode() not in bytes(row.token_encrypted)
    assert account.account_of(organiser.id).osm_uid == 4242
    assert flashed(client) == [("oa_linked_now", {"name": "Dominique"}, "status")]
    assert no_state_left(client)
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        page = include(event, row)
    assert f'href="{osm.auth_url}/user/Dominique"' in page
    assert f'action="/organise/{event.slug}/osm-account/unlink"' in page


def test_the_osm_changes_page_shows_the_linked_account_and_says_so_once(client, organiser, event, osm):
    link(client, event.slug)

    page = client.get(f"/organise/{event.slug}/osm-changes", headers={"Accept-Language": "en"}).text

    assert 'id="osm-account-linked"' in page and f'href="{osm.auth_url}/user/Dominique"' in page
    assert i18n.translate("en", "oa_linked_now", name="Dominique") in page
    again = client.get(f"/organise/{event.slug}/osm-changes", headers={"Accept-Language": "en"}).text
    assert i18n.translate("en", "oa_linked_now", name="Dominique") not in again


def test_a_public_client_links_with_pkce_alone(app, client, organiser, event, osm, monkeypatch):
    osm.register_client("public-app", None, [CALLBACK])
    monkeypatch.setitem(app.config, "OSM_OAUTH_CLIENT_ID", "public-app")
    monkeypatch.setitem(app.config, "OSM_OAUTH_CLIENT_SECRET", "")

    link(client, event.slug)

    assert stored(organiser).display_name == "Dominique"
    assert osm.tokens[account.token_for(organiser.id)].client_id == "public-app"


def test_the_token_is_never_logged_put_in_a_url_or_kept_in_the_session(client, organiser, event, osm,
                                                                        caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("authlib", "urllib3", "requests", "cartoparty", "werkzeug"):
        caplog.set_level(logging.DEBUG, logger=name)

    link(client, event.slug)
    token = account.token_for(organiser.id)
    client.post(f"/organise/{event.slug}/osm-account/unlink", data={"csrf_token": csrf(client, event)})

    assert not token_works(osm, token)  # revoked: the whole round was logged
    records = [f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}"
               for record in caplog.records]
    assert any(record.startswith("urllib3") for record in records)  # debug logging was on
    assert not [record for record in records if token in record]
    assert not [path for path in osm.requests if token in path]
    with client.session_transaction() as session:
        assert token not in json.dumps(dict(session), default=str)


def test_denying_on_osm_stores_nothing_and_says_so(client, organiser, event, osm):
    response = link(client, event.slug, choice="Deny")

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/organise/{event.slug}/osm-changes#osm-account")
    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_link_denied", {}, "error")]
    assert no_state_left(client)


def test_a_callback_whose_state_is_not_ours_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    forged = urlencode({"code": parse_qs(urlsplit(back).query)["code"][0], "state": "not-ours"})

    response = client.get(f"/organise/osm-account/callback?{forged}")

    assert response.status_code == 302
    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_link_expired", {}, "error")]
    assert ("POST", "/oauth2/token") not in osm.calls


def test_a_wrong_pkce_verifier_is_refused_by_osm_and_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    with client.session_transaction() as session:
        for key in [key for key in session if key.startswith(STATE_PREFIX)]:
            data = {**session[key]["data"], "code_verifier": "x" * 64}
            session[key] = {**session[key], "data": data}

    client.get(back)

    assert ("POST", "/oauth2/token") in osm.calls
    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_link_refused", {"reason": "invalid_grant"}, "error")]


def test_osm_unreachable_during_the_token_exchange_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    osm.down()

    response = client.get(back)

    assert response.status_code == 302
    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_auth_unreachable", {"url": osm.auth_url}, "error")]


def test_an_error_page_from_the_token_endpoint_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    osm.fail_next(503, "<h1>Service Unavailable</h1>", "text/html", when=r"POST /oauth2/token")

    client.get(back)

    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_auth_unreachable", {"url": osm.auth_url}, "error")]


def test_the_api_failing_to_say_who_the_mapper_is_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    osm.fail_next(500, "Internal Server Error", when=r"GET /user/details\.json")

    client.get(back)

    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_api_failed",
                                {"http_status": 500, "reason": "Internal Server Error"}, "error")]


def test_an_unreadable_user_details_answer_stores_nothing(client, organiser, event, osm):
    back = answer_on_osm(go_to_osm(client, event.slug))
    osm.fail_next(200, '{"version": "0.6"}', "application/json", when=r"GET /user/details\.json")

    client.get(back)

    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_api_bad_answer",
                                {"url": f"{osm.url}/user/details.json"}, "error")]


def test_an_application_registered_without_write_api_cannot_link(app, client, organiser, event, osm):
    osm.register_client(CLIENT_ID, CLIENT_SECRET, [CALLBACK], scopes=("read_prefs",))

    link(client, event.slug)

    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_link_refused", {"reason": "invalid_scope"}, "error")]


def test_a_token_granted_without_write_api_is_revoked_and_not_stored(client, organiser, event, osm,
                                                                     monkeypatch):
    monkeypatch.setattr(account, "SCOPES", "read_prefs")

    link(client, event.slug)

    assert stored(organiser) is None
    assert flashed(client) == [("error.osm_link_scope", {}, "error")]
    assert not [grant for grant in osm.tokens.values() if grant.client_id == CLIENT_ID]


def test_the_organiser_of_another_event_cannot_link_or_unlink_from_it(client, event, osm):
    theirs = make_event("other-party")
    other = make_organiser("bob@example.org", events=[theirs])
    db.session.add(OsmAccount(organiser_id=other.id, osm_uid=1, display_name="Bob",
                              token_encrypted=account.encrypt_token("bobs-token"), scopes="write_api"))
    db.session.commit()
    with client.session_transaction() as session:
        session["organiser_id"] = other.id

    assert client.get(f"/organise/{event.slug}/osm-account/link").status_code == 403
    assert no_state_left(client)
    refused = client.post(f"/organise/{event.slug}/osm-account/unlink",
                          data={"csrf_token": csrf(client, theirs)})
    assert refused.status_code == 403
    assert stored(other) is not None


def test_a_signed_out_visitor_is_sent_to_sign_in(client, event, osm):
    assert "/sign-in" in client.get(f"/organise/{event.slug}/osm-account/link").headers["Location"]
    assert "/sign-in" in client.get("/organise/osm-account/callback?code=x&state=y").headers["Location"]


def test_unlinking_deletes_the_account_and_revokes_its_token(client, organiser, event, osm):
    link(client, event.slug)
    flashed(client)
    token = account.token_for(organiser.id)
    assert token_works(osm, token)

    response = client.post(f"/organise/{event.slug}/osm-account/unlink",
                           data={"csrf_token": csrf(client, event)})

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/organise/{event.slug}/osm-changes#osm-account")
    assert stored(organiser) is None
    assert not token_works(osm, token)
    assert flashed(client) == [("oa_unlinked", {}, "status")]


def test_unlinking_keeps_the_token_of_an_osm_account_another_organiser_linked_too(client, organiser,
                                                                                 event, osm):
    link(client, event.slug)
    token = account.token_for(organiser.id)
    colleague = make_organiser("bob@example.org", events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = colleague.id
    link(client, event.slug)  # the association's one OSM account: OSM gives the same token
    assert account.token_for(colleague.id) == token

    client.post(f"/organise/{event.slug}/osm-account/unlink", data={"csrf_token": csrf(client, event)})

    assert stored(colleague) is None and stored(organiser) is not None
    assert token_works(osm, token)


def test_unlinking_still_deletes_when_osm_is_unreachable(client, organiser, event, osm):
    link(client, event.slug)
    osm.down()

    response = client.post(f"/organise/{event.slug}/osm-account/unlink",
                           data={"csrf_token": csrf(client, event)})

    assert response.status_code == 302
    assert stored(organiser) is None


def test_unlinking_needs_the_forms_csrf_token(client, organiser, event, osm):
    link(client, event.slug)

    response = client.post(f"/organise/{event.slug}/osm-account/unlink")

    assert response.status_code == 400
    assert stored(organiser) is not None


def test_linking_another_osm_account_replaces_the_first_and_revokes_its_token(client, organiser,
                                                                             event, osm):
    link(client, event.slug)
    first = account.token_for(organiser.id)
    osm.authorize_as = osm.add_account("camilles-own-token", display_name="Camille", uid=4343)

    link(client, event.slug)

    row = stored(organiser)
    assert (row.osm_uid, row.display_name) == (4343, "Camille")
    assert osm.tokens[account.token_for(organiser.id)].account.uid == 4343
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmAccount)
                             .where(OsmAccount.organiser_id == organiser.id)) == 1
    assert not token_works(osm, first)


def test_linking_the_same_osm_account_again_keeps_its_token_working(client, organiser, event, osm):
    link(client, event.slug)

    link(client, event.slug)  # OSM skips its page and gives the same token again

    assert token_works(osm, account.token_for(organiser.id))


def test_a_changed_token_key_makes_the_token_unreadable_and_asks_to_link_again(app, organiser,
                                                                               monkeypatch):
    monkeypatch.setitem(app.config, "OSM_TOKEN_KEY", Fernet.generate_key().decode())
    db.session.add(OsmAccount(organiser_id=organiser.id, osm_uid=4242, display_name="Dominique",
                              token_encrypted=account.encrypt_token(TOKEN), scopes="write_api"))
    db.session.commit()
    assert account.token_for(organiser.id) == TOKEN

    monkeypatch.setitem(app.config, "OSM_TOKEN_KEY", Fernet.generate_key().decode())

    with pytest.raises(CartopartyError) as error:
        account.token_for(organiser.id)
    assert (error.value.code, error.value.status) == ("osm_token_unreadable", 409)
    assert TOKEN not in str(error.value)


def test_an_unreadable_token_can_still_be_unlinked(app, client, organiser, event, osm, monkeypatch):
    link(client, event.slug)
    monkeypatch.setitem(app.config, "OSM_TOKEN_KEY", Fernet.generate_key().decode())

    client.post(f"/organise/{event.slug}/osm-account/unlink", data={"csrf_token": csrf(client, event)})

    assert stored(organiser) is None


def test_without_a_token_key_one_is_derived_from_the_secret_key(app, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_TOKEN_KEY", "")
    blob = account.encrypt_token(TOKEN)
    assert account.decrypt_token(blob) == TOKEN
    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret key")
    with pytest.raises(CartopartyError) as error:
        account.decrypt_token(blob)
    assert error.value.code == "osm_token_unreadable"


def test_a_token_key_that_is_not_a_fernet_key_is_named(app, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_TOKEN_KEY", "too-short")
    with pytest.raises(ValueError, match="OSM_TOKEN_KEY"):
        account.encrypt_token(TOKEN)


def test_without_the_oauth_settings_the_link_route_says_the_application_must_be_registered(
        app, client, organiser, event, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_OAUTH_CLIENT_ID", "")

    response = client.get(f"/organise/{event.slug}/osm-account/link")

    assert response.status_code == 302
    assert "/osm-changes" in response.headers["Location"]
    assert flashed(client) == [("error.osm_link_not_configured", {}, "error")]


def test_the_include_offers_to_link_or_says_the_application_is_not_registered(app, event):
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        offered = include(event, None, oauth_configured=True)
        hint = include(event, None, oauth_configured=False)
    assert 'href="/organise/party/osm-account/link"' in offered
    assert "osm-account-not-configured" not in offered
    assert "/osm-account/link" not in hint and 'id="osm-account-not-configured"' in hint


def test_the_include_shows_a_hostile_display_name_as_text_and_escaped_in_the_link(app, event):
    name = '<b onmouseover="x">A/B & C?'
    linked = OsmAccount(organiser_id=1, osm_uid=1, display_name=name, token_encrypted=b"",
                        scopes="write_api")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        page = include(event, linked)
    assert "<b " not in page
    assert "&lt;b onmouseover=&#34;x&#34;&gt;A/B &amp; C?" in page
    assert "/user/%3Cb%20onmouseover%3D%22x%22%3EA%2FB%20%26%20C%3F\"" in page


def test_the_include_says_the_messages_in_the_readers_language(app, event, monkeypatch):
    for lang, text in (("fr", "Refusé sur OSM"), ("en", "Denied on OSM")):
        monkeypatch.setitem(i18n.CATALOGS[lang], "error.osm_link_denied", text)
        with app.test_request_context(headers={"Accept-Language": lang}):
            flash({"text": "error.osm_link_denied", "params": {}, "level": "error"},
                  account.FLASH_CATEGORY)
            page = include(event, None)
        assert f'<p class="error" role="alert">{text}</p>' in page


def test_the_command_line_token_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("OSM_ACCESS_TOKEN", raising=False)
    assert account.cli_token() is None
    monkeypatch.setenv("OSM_ACCESS_TOKEN", f" {TOKEN}\n")
    assert account.cli_token() == TOKEN
