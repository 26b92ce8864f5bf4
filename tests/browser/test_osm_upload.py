"""Sending a party's changes to OpenStreetMap in Chromium, as a new OSM contributor would: link
their OSM account (OAuth 2.0 with PKCE), press "Envoyer les changements prêts", follow the
upload on the page until it is done, and find each point's node from the review page. Also: the
connection cut while OSM applies an upload, and the hourly limit of a new account.

The OSM API and the OSM site are the local stand-in of tests/osm/osm_api.py (`osm_api` points
OSM_API_URL at it; `osm_site` below points OSM_AUTH_URL at it and registers this application
there, its callback on the live server's own http://127.0.0.1:PORT, the only http address OSM
takes). The queued upload is run by `work(app)`, a procrastinate worker in a thread beside the
live server, while the page waits.
"""

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import make_event
from osm.test_check import work
from playwright.sync_api import expect

from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import (
    Event,
    Organiser,
    OsmChangesetLog,
    OsmElement,
    OsmUpload,
    Participant,
    Submission,
)
from cartoparty.osm.account import decrypt_token
from cartoparty.osm.conflate import match

from .conftest import db_rows, sign_in

EMAIL, PASSWORD = "osm-upload@example.org", "correct horse"
SLUG = "charmettes"
CLIENT_ID, CLIENT_SECRET = "cartoparty-browser-tests", "client-secret-of-browser-tests"
MAPPER = "Dominique Lefèvre"
# The centre of conftest's zone in Chambéry (WGS84 degrees), near which the walkers stood.
LAT, LON = 45.565, 5.92
SURVEYED_AT = datetime(2026, 6, 13, 9, 30, tzinfo=UTC)
# The walkers' points: (preset, tags, metres east, metres north). The lime tree stands where
# OSM has node TREE_ID without a species: an update; the others are new.
TREE_ID = 101
IN_OSM = {"natural": "tree"}
ACER = ("tree", {"natural": "tree", "species": "Acer campestre"}, 0, 0)
BENCH = ("bench", {"amenity": "bench", "backrest": "yes"}, 0, 40)
TILIA = ("tree", {"natural": "tree", "species": "Tilia cordata"}, 80, 0)
DEFIBRILLATOR = ("defibrillator", {"emergency": "defibrillator", "indoor": "yes"}, 40, -40)
SHOWN_IN_TIME = 20_000  # ms: the page reloads itself every 5 s while the upload is queued


def shifted(east_m=0.0, north_m=0.0):
    """(lat, lon) some metres east and north of the zone's centre, to OSM's 7 decimals."""
    return (round(LAT + north_m / 111_320, 7),
            round(LON + east_m / (111_320 * math.cos(math.radians(LAT))), 7))


@dataclass(frozen=True)
class Party:
    """What the tests need of the committed event (an ORM object would outlive its session)."""

    id: int
    slug: str
    walker_id: int
    organiser_id: int

    @property
    def page(self):
        return f"/organise/{self.slug}/osm-changes"

    def survey(self, app, point):
        """An approved point of the walker, `point` being (preset, tags, east_m, north_m); its id."""
        preset, tags, east_m, north_m = point
        lat, lon = shifted(east_m, north_m)
        with app.app_context():
            submission = Submission(
                event_id=self.id, participant_id=self.walker_id, client_id=uuid.uuid4(),
                preset=preset, geom=f"SRID=4326;POINT({lon} {lat})", accuracy=4, tags=tags,
                note="", observed_at=SURVEYED_AT, body_sha256="0" * 64, status="approved")
            db.session.add(submission)
            db.session.commit()
            return submission.id


@pytest.fixture
def party(app):
    """The event "charmettes", committed, with a walker and an organiser (EMAIL, PASSWORD);
    deleted after the test with all that hangs from it (points, matches, plan, uploads, the
    linked OSM account) and the upload jobs left in the queue. Tests ask for it before `desk`,
    so that it is deleted once the browser is closed, not under a request the page still makes."""
    with app.app_context():
        event = make_event(SLUG, name="Cartopartie des Charmettes")
        walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                             consented_at=datetime.now(UTC))
        organiser = Organiser(email=EMAIL, password_hash=hash_password(PASSWORD), events=[event])
        db.session.add_all([organiser, walker])
        db.session.commit()
        party = Party(id=event.id, slug=event.slug, walker_id=walker.id, organiser_id=organiser.id)
    yield party
    with app.app_context():
        # The points first, while their event exists: deleting them bumps its revision counter,
        # which must not happen in the cascade of the event's own deletion.
        db.session.execute(db.delete(Submission).where(Submission.event_id == party.id))
        db.session.execute(db.delete(Event).where(Event.id == party.id))
        db.session.execute(db.delete(Organiser).where(Organiser.email == EMAIL))
        db.session.execute(db.text("DELETE FROM procrastinate_jobs WHERE task_name = 'osm_upload'"))
        db.session.commit()


@pytest.fixture
def osm_site(app, osm_api, live_server, monkeypatch):
    """The stand-in as openstreetmap.org too: this application registered there with its
    callback on the live server, MAPPER signed in on the site (`.authorize_as`)."""
    osm_api.register_client(CLIENT_ID, CLIENT_SECRET,
                            [f"{live_server.url}/organise/osm-account/callback"])
    osm_api.authorize_as = osm_api.add_account("token-of-another-app", display_name=MAPPER)
    for name, value in {"OSM_AUTH_URL": osm_api.auth_url, "OSM_OAUTH_CLIENT_ID": CLIENT_ID,
                        "OSM_OAUTH_CLIENT_SECRET": CLIENT_SECRET, "PUBLIC_URL": live_server.url,
                        "OSM_API_TIMEOUT": 5, "OSM_READBACK_DELAY": 0}.items():
        monkeypatch.setitem(app.config, name, value)
    return osm_api


def walked(app, party, osm, *points):
    """The party after its walk: OSM's tree TREE_ID (stored and in the API alike), the walkers'
    approved `points`, matched; their ids."""
    lat, lon = shifted(*TILIA[2:])
    with app.app_context():
        db.session.add(OsmElement(event_id=party.id, osm_type="node", osm_id=TREE_ID, version=3,
                                  tags=IN_OSM, geom=f"SRID=4326;POINT({lon} {lat})"))
        db.session.commit()
    osm.add_node(TREE_ID, lat, lon, IN_OSM, version=3)
    ids = [party.survey(app, point) for point in points]
    with app.app_context():
        match(db.session.get(Event, party.id))
        db.session.commit()
    outcomes = dict(db_rows(app, "SELECT submission_id, outcome FROM match WHERE submission_id = ANY(:ids)",
                            ids=ids))
    assert outcomes == {i: "update" if p is TILIA else "new" for i, p in zip(ids, points, strict=True)}
    return ids


def link_account(page, osm):
    """From the OSM changes page: link the account signed in on the OSM site, as its owner would."""
    page.get_by_role("link", name="Lier mon compte OpenStreetMap").click()
    page.wait_for_url(f"{osm.auth_url}/oauth2/authorize?**")
    expect(page.get_by_role("heading")).to_have_text("Authorize cartoparty to access your account?")
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator("#osm-account-linked")).to_contain_text(
        f"Compte OSM lié : {osm.authorize_as.display_name}")


def token_given(osm):
    """The access token the OSM site gave this application (one, whichever account)."""
    [token] = [token for token, grant in osm.tokens.items() if grant.client_id == CLIENT_ID]
    return token


def prepared(page):
    """Press "Préparer les changements" and wait for the plan."""
    page.get_by_role("button", name="Préparer les changements").click()
    expect(page.locator("#built")).to_contain_text("relus dans OSM juste avant")


def send(page, app):
    """Press "Envoyer les changements prêts", then run the queued upload while the page waits."""
    page.get_by_role("button", name="Envoyer les changements prêts").click()
    expect(page.locator("#upload-status")).to_contain_text("Envoi en attente…")
    work(app)


def walkers_nodes(osm):
    """{(lat, lon, tags as sorted items): how many} of the stand-in's visible nodes."""
    held = {}
    for element in osm.elements.values():
        if element.visible and element.osm_type == "node":
            where = (round(element.lat, 7), round(element.lon, 7), tuple(sorted(element.tags.items())))
            held[where] = held.get(where, 0) + 1
    return held


def spot(point):
    """A walker's point as walkers_nodes() counts it: (lat, lon, tags as sorted items)."""
    preset, tags, east_m, north_m = point
    return (*shifted(east_m, north_m), tuple(sorted(tags.items())))


def uploads(osm):
    """The stand-in's calls that uploaded an osmChange."""
    return [path for method, path in osm.calls if method == "POST" and path.endswith("/upload")]


def linked(app, ids):
    """{submission id: (osm_type, osm_id, osm_changeset)} as the database has them now."""
    rows = db_rows(app, "SELECT s.id, u.osm_type, u.osm_id, u.changeset AS osm_changeset FROM submission s "
                        "LEFT JOIN submission_osm u ON u.submission_id = s.id WHERE s.id = ANY(:ids)",
                   ids=ids)
    return {row.id: (row.osm_type, row.osm_id, row.osm_changeset) for row in rows}


def test_an_organiser_links_their_osm_account_and_the_token_stays_out_of_sight(
        app, party, osm_site, desk):
    visited = []
    desk.on("request", lambda request: visited.append(request.url))
    sign_in(desk, party.page, EMAIL, PASSWORD)
    account = desk.locator("#osm-account")
    expect(account).to_contain_text("le jeton est enregistré chiffré")
    expect(desk.locator("#start-upload")).to_have_count(0)
    link_account(desk, osm_site)

    expect(account.get_by_role("status")).to_have_text(f"Votre compte OpenStreetMap {MAPPER} est lié.")
    expect(account.get_by_role("link", name=MAPPER)).to_have_attribute(
        "href", f"{osm_site.auth_url}/user/Dominique%20Lef%C3%A8vre")
    expect(account.get_by_role("button", name="Délier ce compte")).to_be_visible()
    token = token_given(osm_site)
    assert osm_site.tokens[token].account is osm_site.authorize_as
    assert set(osm_site.tokens[token].scopes) == {"write_api", "read_prefs"}

    # The browser went to the OSM site with a PKCE challenge and came back with a code only.
    [authorize] = [url for url in visited if url.startswith(f"{osm_site.auth_url}/oauth2/authorize?")]
    assert "code_challenge_method=S256" in authorize and "code_challenge=" in authorize
    assert any("/organise/osm-account/callback?code=" in url for url in visited)
    assert [url for url in visited if token in url] == []
    assert token not in desk.content()
    [cookie] = [c for c in desk.context.cookies() if c["name"] == app.config["SESSION_COOKIE_NAME"]]
    session = app.session_interface.get_signing_serializer(app).loads(cookie["value"])
    assert token not in json.dumps(session, default=str)

    [row] = db_rows(app, "SELECT display_name, scopes, token_encrypted FROM osm_account "
                         "WHERE organiser_id = :id", id=party.organiser_id)
    assert (row.display_name, set(row.scopes.split())) == (MAPPER, {"write_api", "read_prefs"})
    assert token.encode() not in bytes(row.token_encrypted)
    with app.app_context():
        assert decrypt_token(row.token_encrypted) == token


def test_the_button_sends_the_changes_and_each_point_leads_to_its_node(app, party, osm_site, desk):
    acer, bench, tilia = ids = walked(app, party, osm_site, ACER, BENCH, TILIA)
    sign_in(desk, party.page, EMAIL, PASSWORD)
    link_account(desk, osm_site)
    prepared(desk)
    expect(desk.locator("#counts")).to_contain_text("2 objets à créer")
    expect(desk.locator("#counts")).to_contain_text("1 objet à modifier")
    send(desk, app)

    status = desk.locator("#upload-status")
    expect(status).to_contain_text("Envoi terminé.", timeout=SHOWN_IN_TIME)
    expect(desk.locator("#uploaded")).to_have_text("Dans OpenStreetMap : 2 points ajoutés, 1 objet amélioré.")
    [changeset] = osm_site.changesets.values()
    expect(desk.locator("#uploaded-changesets").get_by_role("link")).to_have_attribute(
        "href", f"{osm_site.auth_url}/changeset/{changeset.id}")
    # (How the id is written: see test_a_changeset_is_named_by_its_id_as_osm_writes_it.)
    expect(desk.locator("#uploaded-changesets")).to_have_text(
        re.compile(r"^Groupe de modifications [\d\s]+ sur OpenStreetMap$"))

    points = linked(app, ids)
    assert {changeset for _, _, changeset in points.values()} == {changeset.id}
    assert points[tilia][:2] == ("node", TREE_ID)
    held = {key: (element.version, round(element.lat, 7), round(element.lon, 7), element.tags)
            for key, element in osm_site.elements.items()}
    assert held == {
        ("node", TREE_ID): (4, *shifted(*TILIA[2:]), TILIA[1]),
        ("node", points[acer][1]): (1, *shifted(*ACER[2:]), ACER[1]),
        ("node", points[bench][1]): (1, *shifted(*BENCH[2:]), BENCH[1])}
    assert changeset.changes_count == 3 and not osm_site.is_open(changeset)
    assert len(uploads(osm_site)) == 1
    assert changeset.account is osm_site.authorize_as and changeset.tags["source"] == "survey"

    desk.goto(f"/organise/{party.slug}")
    desk.locator("#list .item", has_text="Banc").click()
    in_osm = desk.locator("#in-osm")
    expect(in_osm).to_contain_text(f"Dans OpenStreetMap : node/{points[bench][1]}")
    # On the OSM site the app is set to (here the stand-in), not always openstreetmap.org.
    site = re.escape(osm_site.auth_url)
    expect(in_osm.get_by_role("link")).to_have_attribute(
        "href", re.compile(rf"^{site}/node/{points[bench][1]}$"))
    desk.locator(f'#list .item[data-id="{tilia}"]').click()
    expect(in_osm).to_contain_text(f"Dans OpenStreetMap : node/{TREE_ID}")
    expect(in_osm.get_by_role("link")).to_have_attribute("href", re.compile(rf"^{site}/node/{TREE_ID}$"))


def test_a_connection_cut_while_osm_applies_is_read_back_and_nothing_is_doubled(
        app, party, osm_site, desk):
    ids = walked(app, party, osm_site, ACER, BENCH, TILIA)
    sign_in(desk, party.page, EMAIL, PASSWORD)
    link_account(desk, osm_site)
    prepared(desk)
    osm_site.drop_after_apply()
    send(desk, app)

    expect(desk.locator("#upload-status")).to_contain_text("Envoi terminé.", timeout=SHOWN_IN_TIME)
    expect(desk.locator("#uploaded")).to_have_text("Dans OpenStreetMap : 2 points ajoutés, 1 objet amélioré.")
    [changeset] = osm_site.changesets.values()
    # The answer was lost: the job read the changeset back instead of sending it again.
    assert uploads(osm_site) == [f"/api/0.6/changeset/{changeset.id}/upload"]
    assert ("GET", f"/api/0.6/changeset/{changeset.id}/download") in osm_site.calls
    nodes = walkers_nodes(osm_site)
    assert [nodes.get(spot(point)) for point in (ACER, BENCH, TILIA)] == [1, 1, 1]
    assert len(osm_site.elements) == 3
    for submission, (osm_type, osm_id, in_changeset) in linked(app, ids).items():
        assert osm_type == "node" and in_changeset == changeset.id, submission
        assert ("node", osm_id) in osm_site.elements, submission

    # Unsure, the organiser presses the button again: nothing is left to send.
    before = len(osm_site.calls)
    desk.get_by_role("button", name="Envoyer les changements prêts").click()
    expect(desk.get_by_role("alert")).to_have_text("Rien à envoyer : aucun changement n'est prêt.")
    expect(desk.locator("#osm-changes")).to_have_attribute("data-map-ready", "0")
    assert [method for method, _ in osm_site.calls[before:] if method != "GET"] == []
    assert walkers_nodes(osm_site) == nodes


def test_the_hourly_limit_of_a_new_account_pauses_the_upload_and_says_until_when(
        app, party, osm_site, desk):
    osm_site.authorize_as = osm_site.add_account("another-token", display_name="Nouvelle", hourly_limit=2)
    ids = walked(app, party, osm_site, ACER, BENCH, DEFIBRILLATOR)
    sign_in(desk, party.page, EMAIL, PASSWORD)
    link_account(desk, osm_site)
    prepared(desk)
    settings = desk.locator("#changeset-settings")
    settings.get_by_label("Changements par groupe, au plus").fill("2")
    settings.get_by_role("button", name="Enregistrer").click()
    desk.get_by_role("button", name="Préparer de nouveau (relit OSM)").click()
    expect(desk.locator("#changesets article.changeset h3")).to_have_text([
        re.compile(r"^Groupe 1 : 2 changements dont 2 créations"),
        re.compile(r"^Groupe 2 : 1 changement dont 1 création$")])
    send(desk, app)

    status = desk.locator("#upload-status")
    expect(status).to_contain_text("Envoi en pause.", timeout=SHOWN_IN_TIME)
    warning = status.locator("p.warning")
    expect(warning).to_contain_text(
        "OpenStreetMap limite les nouveaux comptes à environ 1 000 changements par heure : "
        "il en reste 1 ; l'envoi reprendra de lui-même à ")
    at = re.search(r"à (\d\d:\d\d)\.$", warning.inner_text().strip()).group(1)
    [row] = db_rows(app, "SELECT status, resume_at FROM osm_upload WHERE event_id = :id", id=party.id)
    assert row.status == "paused"
    assert at == row.resume_at.astimezone(ZoneInfo(app.config["TIMEZONE"])).strftime("%H:%M")
    expect(desk.locator("#uploaded")).to_have_text("Dans OpenStreetMap : 2 points ajoutés, 0 objet amélioré.")
    expect(desk.locator("#uploaded-changesets li")).to_have_count(1)

    # The first changeset went; the second waits, nothing of it applied.
    assert len(uploads(osm_site)) == 2
    assert sorted(changeset.changes_count for changeset in osm_site.changesets.values()) == [0, 2]
    created = set(osm_site.elements) - {("node", TREE_ID)}
    sent = [osm_id for _, osm_id, _ in linked(app, ids).values() if osm_id is not None]
    assert len(created) == 2 and {("node", osm_id) for osm_id in sent} == created


def test_a_changeset_is_named_by_its_id_as_osm_writes_it(app, party, desk):
    with app.app_context():
        sent = OsmUpload(event_id=party.id, organiser_id=party.organiser_id, requested_by=EMAIL,
                         status="done", step="done", counts={})
        db.session.add(sent)
        db.session.flush()
        db.session.add(OsmChangesetLog(upload_id=sent.id, event_id=party.id, changes=[], tags={},
                                       payload_sha256="0" * 64, placeholders={},
                                       changeset_id=162345678, state="closed"))
        db.session.commit()
    sign_in(desk, party.page, EMAIL, PASSWORD)
    link = desk.locator("#uploaded-changesets").get_by_role("link")
    expect(link).to_have_attribute("href", "https://www.openstreetmap.org/changeset/162345678")
    expect(link).to_have_text("Groupe de modifications 162345678 sur OpenStreetMap")
