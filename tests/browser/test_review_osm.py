"""The OSM side of the review page in Chromium: the OSM tab, the OSM layer with its lines, a
point's match and tag diff, and correcting the match by hand, then undoing it."""

import math
import threading
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from cartoparty import jobs
from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Event, Match, Organiser, OsmElement, OsmSnapshot, Participant, Submission

from .conftest import db_rows, sign_in

EMAIL, PASSWORD = "osm-organiser@example.org", "correct horse"
HOSTILE = '<img src=x onerror="window.pwned=1">'
# The centre of the event's zone, where the map opens.
LAT, LON = 45.565, 5.9225


def shifted(east_m=0.0, north_m=0.0):
    """EWKT of a point some metres east and north of the zone's centre."""
    lat = LAT + north_m / 111_320
    lon = LON + east_m / (111_320 * math.cos(math.radians(LAT)))
    return f"SRID=4326;POINT({lon} {lat})"


@pytest.fixture
def checked_event(app, committed_event):
    """The event "walk" as after an OSM check: a tree matched to OSM node 7 (whose species is a
    hostile string) with an update, a bench with nothing in OSM (new), OSM node 8 15 m west of
    the tree, OSM way 9 far away; and an organiser."""
    with app.app_context():
        event = db.session.get(Event, committed_event.id)
        organiser = Organiser(email=EMAIL, password_hash=hash_password(PASSWORD))
        organiser.events.append(event)
        walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                             consented_at=datetime.now(UTC))
        db.session.add_all([organiser, walker])
        db.session.flush()
        tree, bench = (Submission(
            event_id=event.id, participant_id=walker.id, client_id=uuid.uuid4(), preset=preset,
            geom=shifted(east_m=east), tags=tags, note="", observed_at=datetime.now(UTC),
            body_sha256="0" * 64) for preset, east, tags in (
            ("tree", 0, {"natural": "tree", "species": "Tilia cordata", "leaf_type": "broadleaved"}),
            ("bench", 30, {"amenity": "bench"})))
        db.session.add_all([tree, bench])
        db.session.add_all([
            OsmElement(event_id=event.id, osm_type="node", osm_id=7, version=3, geom=shifted(north_m=4),
                       tags={"natural": "tree", "species": HOSTILE}),
            OsmElement(event_id=event.id, osm_type="node", osm_id=8, version=1, geom=shifted(east_m=-15),
                       tags={"natural": "tree"}),
            OsmElement(event_id=event.id, osm_type="way", osm_id=9, version=2, geom=shifted(east_m=500),
                       tags={"natural": "tree"}),
            OsmSnapshot(event_id=event.id, source="file survey.osm", fetched_at=datetime.now(UTC),
                        element_count=3)])
        db.session.flush()
        db.session.add_all([
            Match(submission_id=tree.id, outcome="update", osm_type="node", osm_id=7, osm_version=3,
                  distance_m=4.0, tag_diff={"added": {"leaf_type": "broadleaved"},
                                            "changed": {"species": [HOSTILE, "Tilia cordata"]}}),
            Match(submission_id=bench.id, outcome="new")])
        db.session.commit()
        ids = {"event": event.id, "tree": tree.id, "bench": bench.id}
    yield ids
    with app.app_context():
        # The points first, while their event exists: deleting them bumps its revision counter,
        # which must not happen in the cascade of the event's own deletion.
        db.session.execute(db.delete(Submission).where(Submission.event_id == ids["event"]))
        db.session.execute(db.delete(Organiser).where(Organiser.email == EMAIL))
        db.session.commit()


def match_row(app, submission_id):
    [row] = db_rows(app, "SELECT outcome, osm_id, overridden_by FROM match WHERE submission_id = :id",
                    id=submission_id)
    return row


def test_organiser_sees_the_osm_check_and_its_figures(app, desk, checked_event):
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    desk.get_by_role("tab", name="OSM").click()
    panel = desk.locator("#osm-panel")
    expect(panel).to_contain_text("file survey.osm")
    expect(panel.locator(".osm-snapshot")).to_contain_text("3")
    expect(panel.locator('[data-outcome="update"] td')).to_have_text("1")
    expect(panel.locator('[data-outcome="new"] td')).to_have_text("1")
    expect(panel.locator('[data-outcome="existing"] td')).to_have_text("0")

    panel.get_by_role("button", name="Recalculer les correspondances").click()
    expect(panel.locator("#osm-check")).to_contain_text("En attente")
    expect(panel.get_by_role("button", name="Vérifier avec OSM")).to_be_disabled()
    # The worker runs its own event loop: in another thread than Playwright's.
    worker = threading.Thread(target=jobs.run_worker, args=(app,),
                              kwargs={"wait": False, "signals": False, "listen_notify": False})
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    # The page follows the check until it ends, without a reload.
    expect(panel.locator("#osm-check")).to_contain_text("Terminée", timeout=15_000)
    expect(panel.locator("#osm-check")).to_contain_text("2 points comparés")
    expect(panel.get_by_role("button", name="Vérifier avec OSM")).to_be_enabled()
    expect(panel.locator('[data-outcome="update"] td')).to_have_text("1")


def test_organiser_sees_the_osm_layer_and_corrects_a_match(app, desk, checked_event):
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    expect(desk.locator("#list .item")).to_have_count(2)
    desk.get_by_label("Données OSM").check()
    zoom_in = desk.get_by_role("button", name="Zoom in")
    for _ in range(3):
        zoom_in.click()
    elements, lines = desk.locator("path.osm-element"), desk.locator("path.osm-line")
    expect(elements).to_have_count(2)  # way 9 is out of view
    expect(lines).to_have_count(1)
    expect(desk.locator("path.osm-line.update")).to_have_count(1)

    # OSM's tags are shown as text in the popup: the hostile value is not markup. Node 7 is the
    # northernmost, the highest on the screen.
    # Measured once the zoom has settled; clicked as such, since the tree's own marker 4 m
    # away may cover it at some zooms.
    desk.wait_for_function("!document.querySelector('.leaflet-zoom-anim')")
    tops = elements.evaluate_all("paths => paths.map((path) => path.getBoundingClientRect().top)")
    elements.nth(tops.index(min(tops))).dispatch_event("click")
    popup = desk.locator(".osm-popup")
    expect(popup).to_contain_text("node/7")
    expect(popup).to_contain_text(HOSTILE)
    expect(popup.locator("img")).to_have_count(0)
    expect(popup.get_by_role("link")).to_have_attribute("href", "https://www.openstreetmap.org/node/7")

    desk.locator("#list .item", has_text="Arbre").click()
    section = desk.locator("#osm-match")
    expect(section.locator(".outcome")).to_contain_text("Mise à jour proposée · à 4,0 m")
    diff = section.locator(".osm-diff")
    expect(diff.locator("tr.changed")).to_contain_text("species")
    expect(diff.locator("tr.changed .before")).to_have_text(HOSTILE)
    expect(diff.locator("tr.changed .after")).to_have_text("Tilia cordata")
    expect(diff.locator("tr.added")).to_contain_text("leaf_type")
    expect(diff.locator("tr.added .after")).to_have_text("broadleaved")
    expect(diff.locator("img")).to_have_count(0)
    expect(section.get_by_role("link")).to_have_attribute("href", "https://www.openstreetmap.org/node/7")
    expect(section.get_by_role("button", name="Annuler la correction")).to_have_count(0)

    section.get_by_role("button", name="Objet différent (nouveau)").click()
    expect(section.locator(".outcome")).to_have_text(f"Nouveau · corrigé par {EMAIL}")
    expect(lines).to_have_count(0)  # a new feature has nothing to point at
    assert tuple(match_row(app, checked_event["tree"])) == ("new", None, EMAIL)
    entries = desk.locator("#detail .history > li")
    expect(entries.nth(0)).to_contain_text(f"{EMAIL} — marqué nouveau pour OSM")
    expect(entries.nth(0)).to_contain_text("correspondance OSM : Mise à jour proposée → Nouveau")

    # Undoing gives back the match the check had found, its line and its diff included.
    section.get_by_role("button", name="Annuler la correction").click()
    expect(section.get_by_role("button", name="Annuler la correction")).to_have_count(0)
    expect(section.locator(".outcome")).to_have_text("Mise à jour proposée · à 4,0 m")
    expect(section.locator(".osm-diff tr.changed .after")).to_have_text("Tilia cordata")
    expect(lines).to_have_count(1)
    assert tuple(match_row(app, checked_event["tree"])) == ("update", 7, None)
    expect(entries).to_have_count(2)
    expect(entries.nth(1)).to_contain_text("correction OSM annulée")
    expect(entries.nth(1)).to_contain_text("correspondance OSM : Nouveau → Mise à jour proposée")

    section.get_by_role("button", name="C'est cet objet OSM…").click()
    candidates = section.locator(".osm-candidates li")
    expect(candidates).to_have_count(2)
    expect(candidates.first).to_contain_text("node/7 · 4,0 m")
    expect(candidates.first).to_contain_text(HOSTILE)
    candidates.nth(1).get_by_role("button", name="Choisir").click()
    expect(section.locator(".outcome")).to_contain_text(
        f"Mise à jour proposée · à 15,0 m · corrigé par {EMAIL}")
    expect(section.get_by_role("link")).to_have_attribute("href", "https://www.openstreetmap.org/node/8")
    expect(lines).to_have_count(1)
    assert tuple(match_row(app, checked_event["tree"])) == ("update", 8, EMAIL)
    actions = db_rows(app, "SELECT action FROM audit_entry WHERE submission_id = :id ORDER BY id",
                      id=checked_event["tree"])
    assert [row.action for row in actions] == ["match_new", "match_undo", "match_osm"]
    assert desk.evaluate("window.pwned") is None


def test_organiser_is_told_why_osm_cannot_be_fetched_again_yet(app, desk, checked_event):
    with app.app_context():
        snapshot = db.session.get(OsmSnapshot, checked_event["event"])
        snapshot.source = "overpass http://127.0.0.1:9/api/interpreter"
        snapshot.last_error, snapshot.last_error_at = f"Overpass answered {HOSTILE}", datetime.now(UTC)
        db.session.commit()
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    desk.get_by_role("tab", name="OSM").click()
    panel = desk.locator("#osm-panel")
    expect(panel.locator(".osm-snapshot .error")).to_contain_text(f"Overpass answered {HOSTILE}")
    expect(panel.locator("img")).to_have_count(0)
    panel.get_by_role("button", name="Vérifier avec OSM").click()
    expect(panel.get_by_role("alert")).to_contain_text("il y a moins de 5 minutes")
    expect(panel.get_by_role("button", name="Récupérer quand même")).to_be_visible()
    assert not db_rows(app, "SELECT 1 FROM osm_check WHERE event_id = :id", id=checked_event["event"])
    assert desk.evaluate("window.pwned") is None


def colours(page, selector, prop):
    """The computed CSS colour `prop` of every element matching `selector`, as rgb() texts."""
    return set(page.locator(selector).evaluate_all(
        f"nodes => nodes.map((node) => getComputedStyle(node).{prop})"))


def test_osm_colours_are_not_the_review_status_colours(app, desk, checked_event):
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    expect(desk.locator("#list .item")).to_have_count(2)
    # The statuses as the list's dots and the map's points show them, pending and approved.
    with app.app_context():
        db.session.execute(db.update(Submission).where(Submission.id == checked_event["bench"])
                           .values(status="approved"))
        db.session.commit()
    desk.reload()
    expect(desk.locator("#list .dot")).to_have_count(2)
    status = colours(desk, "#list .dot", "color") | colours(desk, "path.point", "fill")
    assert len(status) == 2  # pending orange, approved green

    desk.get_by_role("tab", name="OSM").click()
    expect(desk.locator("#osm-panel .swatch")).to_have_count(6)
    legend = colours(desk, "#osm-panel .swatch", "color")
    assert len(legend) == 6  # new, existing, update, ambiguous, duplicate, unmatched: all distinct
    rejected = desk.evaluate("getComputedStyle(document.querySelector('.review')).getPropertyValue('--grey')")
    assert rejected.strip() == "#6b6b6b"
    assert not legend & (status | {"rgb(107, 107, 107)"})

    desk.get_by_role("tab", name="Liste").click()
    desk.get_by_label("Données OSM").check()
    for _ in range(3):
        desk.get_by_role("button", name="Zoom in").click()
    expect(desk.locator("path.osm-line")).to_have_count(1)
    line = colours(desk, "path.osm-line", "stroke")
    assert line <= legend and not line & status
    desk.locator("#list .item", has_text="Arbre").click()
    assert colours(desk, "#osm-match .outcome", "color") <= legend


def test_a_failed_check_is_explained_in_the_pages_language(app, desk, checked_event):
    from cartoparty.models import OsmCheck
    with app.app_context():
        db.session.add(OsmCheck(
            event_id=checked_event["event"], status="failed", step="fetching OSM data",
            fetch_osm=True, requested_by=EMAIL, finished_at=datetime.now(UTC),
            error=f"Overpass failed at every endpoint: {HOSTILE}",
            error_detail={"code": "overpass_failed", "params": {"detail": HOSTILE}}))
        db.session.commit()
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    desk.get_by_role("tab", name="OSM").click()
    check = desk.locator("#osm-check")
    expect(check.get_by_role("alert")).to_have_text(f"Overpass a échoué sur chaque serveur : {HOSTILE}")
    expect(check).to_contain_text("récupération des données OSM")
    assert desk.evaluate("window.pwned") is None


def test_a_points_details_say_why_it_was_matched_so(app, desk, checked_event):
    from cartoparty.osm.conflate import match

    with app.app_context():
        db.session.get(Submission, checked_event["tree"]).accuracy = 5
        match(db.session.get(Event, checked_event["event"]))
        db.session.commit()
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    desk.locator("#list .item", has_text="Arbre").click()
    why = desk.locator("#osm-match .osm-why")
    # Node 7, 4 m north, says another species; node 8, 15 m west, is beyond a tree's 5 m.
    expect(why).to_have_text("À 4,0 m (précision du GPS ± 5 m) ; 1 réponse diffère d'OSM")
    desk.locator("#list .item", has_text="Banc").click()
    expect(why).to_have_text("Aucun objet de ce type assez près")
