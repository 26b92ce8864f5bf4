"""The walker app in Debian's Chromium, as a phone: join, record, go offline, survive errors."""

import io
import re
import time

from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import text

from cartoparty.extensions import db
from cartoparty.i18n import translate

from .conftest import db_rows

ALL_SENT = re.compile("Tout est envoyé")


def join(phone, pseudonym="Camille", path="/e/walk"):
    phone.goto(path)
    phone.get_by_label("Votre pseudonyme").fill(pseudonym)
    phone.get_by_role("checkbox").check()
    phone.get_by_role("button", name="Rejoindre la cartopartie").click()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)


def record(phone, preset="tree", answers=None, photo=None):
    """Record a point at the GPS position through the form."""
    phone.get_by_role("button", name="Ajouter un point").click()
    phone.locator(f'[data-preset="{preset}"]').click()
    for label, value in (answers or {}).items():
        field = phone.get_by_label(label, exact=True)
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    if photo:
        phone.locator("#photo").set_input_files(
            {"name": "arbre.png", "mimeType": "image/png", "buffer": photo})
        expect(phone.locator("#photo-preview img")).to_have_count(1)
    phone.get_by_role("button", name="Enregistrer").click()
    expect(phone.locator("#sheet")).to_be_hidden()


def submissions(app, event):
    return db_rows(app, "SELECT client_id::text, tags, preset FROM submission WHERE event_id = :id "
                        "ORDER BY id", id=event.id)


def outbox_count(phone):
    """How many records wait in the phone's outbox (IndexedDB)."""
    return phone.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open("cartoparty");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
            const read = open.result.transaction("outbox").objectStore("outbox").count();
            read.onsuccess = () => resolve(read.result);
        };
    })""")


def service_worker_keeps_the_page(phone, seconds=15):
    """Wait until the service worker controls the page and keeps it for offline use. (Playwright's
    wait_for_function takes the promise of an async predicate for a truthy answer: poll here.)"""
    phone.wait_for_function("() => Boolean(navigator.serviceWorker.controller)")
    deadline = time.monotonic() + seconds
    while not phone.evaluate("async () => Boolean(await caches.match(location.pathname))"):
        assert time.monotonic() < deadline, "the service worker never kept the page"
        phone.wait_for_timeout(100)


def eventually(phone, condition, seconds=15):
    """Wait until the server has what the phone sent (it sends in the background). The wait
    is Playwright's: a plain sleep would also stop the routes that let the page's requests go."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the phone's change never reached the server"
        phone.wait_for_timeout(200)


def a_photo():
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 110, 40)).save(out, "PNG")
    return out.getvalue()


def test_walker_joins_with_consent_and_stays_joined(app, phone, committed_event):
    phone.goto("/e/walk")
    expect(phone.get_by_text("ODbL").first).to_be_visible()
    phone.get_by_label("Votre pseudonyme").fill("Camille <b>")
    phone.get_by_role("button", name="Rejoindre la cartopartie").click()
    expect(phone.locator("#join-error")).to_have_text(
        translate("fr", "error.consent_missing", licence="ODbL-1.0"))
    assert db_rows(app, "SELECT 1 FROM participant WHERE event_id = :id", id=committed_event.id) == []

    phone.get_by_role("checkbox").check()
    phone.get_by_role("button", name="Rejoindre la cartopartie").click()
    expect(phone.locator("#who")).to_have_text("Camille <b>")
    phone.reload()
    expect(phone.locator("#walk")).to_be_visible()
    expect(phone.locator("#join")).to_be_hidden()
    rows = db_rows(app, "SELECT pseudonym, consented_at FROM participant WHERE event_id = :id",
                   id=committed_event.id)
    assert [row.pseudonym for row in rows] == ["Camille <b>"]
    assert rows[0].consented_at is not None


def test_walker_records_a_tree_with_its_fields_and_a_photo(app, phone, committed_event):
    join(phone)
    record(phone, "tree", {"Espèce (nom latin)": "Tilia cordata",
                           "Type de feuillage": "broadleaved", "Hauteur (estimation)": "12"}, photo=a_photo())
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    [row] = submissions(app, committed_event)
    assert row.tags == {"natural": "tree", "species": "Tilia cordata", "leaf_type": "broadleaved",
                        "height": "12"}
    photos = db_rows(app, "SELECT media_type, width FROM photo JOIN submission s "
                          "ON s.id = photo.submission_id WHERE s.client_id::text = :c", c=row.client_id)
    assert [(p.media_type, p.width) for p in photos] == [("image/jpeg", 640)]
    expect(phone.locator(f'.point[data-client-id="{row.client_id}"]')).to_be_visible()


def test_points_recorded_offline_arrive_exactly_once(app, phone, committed_event):
    join(phone)
    service_worker_keeps_the_page(phone)
    phone.context.set_offline(True)
    for _ in range(3):
        record(phone, "bench")
    expect(phone.locator("#sync")).to_have_text("3 en attente d'envoi")

    phone.reload()  # still offline: the service worker serves the page, IndexedDB the points
    expect(phone.locator("#sync")).to_have_text("3 en attente d'envoi")
    expect(phone.locator(".point-waiting")).to_have_count(3)
    assert submissions(app, committed_event) == []

    phone.context.set_offline(False)
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    rows = submissions(app, committed_event)
    assert len(rows) == 3
    assert len({row.client_id for row in rows}) == 3
    assert outbox_count(phone) == 0


def test_a_point_refused_by_a_failing_server_is_kept_and_sent_once(app, phone, committed_event):
    join(phone)
    posts = []

    def failing_once(route):
        posts.append(route.request.method)
        if len(posts) == 1:
            route.fulfill(status=500, json={"error": "something went wrong on our side"})
        else:
            route.continue_()

    phone.route("**/api/events/walk/submissions", failing_once)
    record(phone, "defibrillator", {"Où se trouve-t-il exactement ?": "Dans le hall, à gauche"})
    expect(phone.locator("#sync")).to_have_text("1 en attente d'envoi")
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    rows = submissions(app, committed_event)
    assert [row.tags["defibrillator:location"] for row in rows] == ["Dans le hall, à gauche"]
    assert posts == ["POST", "POST"]


def test_walker_corrects_then_deletes_a_point_before_review(app, phone, committed_event):
    join(phone)
    record(phone, "tree", {"Espèce (nom latin)": "Tilia cordata"})
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    [row] = submissions(app, committed_event)
    marker = phone.locator(f'.point[data-client-id="{row.client_id}"]')
    expect(marker).to_have_class(re.compile("point-pending"))

    marker.click()
    phone.get_by_role("button", name="Corriger").click()

    phone.get_by_label("Espèce (nom latin)", exact=True).fill("Tilia platyphyllos")
    phone.get_by_role("button", name="Enregistrer").click()
    eventually(phone, lambda: [r.tags["species"] for r in submissions(app, committed_event)]
               == ["Tilia platyphyllos"])
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)

    phone.once("dialog", lambda dialog: dialog.accept())
    marker.click()
    phone.get_by_role("button", name="Supprimer").click()
    expect(marker).to_have_count(0)
    eventually(phone, lambda: submissions(app, committed_event) == [])
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)


def test_walker_switches_to_english_and_sees_a_poor_fix_warning(app, phone, committed_event):
    phone.context.set_geolocation({"latitude": 45.565, "longitude": 5.92, "accuracy": 60})
    join(phone)
    phone.get_by_role("link", name="EN", exact=True).first.click()
    expect(phone.get_by_role("button", name="Add a point")).to_be_visible()
    phone.get_by_role("button", name="Add a point").click()
    expect(phone.locator("#accuracy-warning")).to_contain_text("± 60 m")
    box = phone.get_by_role("button", name="Save").bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44


def test_a_walker_whose_token_is_refused_joins_again_and_keeps_their_point(app, phone, committed_event):
    errors = []
    phone.on("pageerror", lambda error: errors.append(str(error)))
    join(phone)
    phone.context.set_offline(True)  # first: any request of the page would meet the 401 at once
    with app.app_context():  # the organisers removed this walker's access, say
        db.session.execute(text("UPDATE participant SET token_hash = md5(random()::text) "
                                "|| md5(random()::text) WHERE event_id = :id"), {"id": committed_event.id})
        db.session.commit()
    record(phone, "bench")
    phone.context.set_offline(False)
    phone.evaluate("window.dispatchEvent(new Event('online'))")  # sends now: the 401 comes back
    expect(phone.locator("#join-error")).to_have_text(translate("fr", "rejoin"))
    phone.get_by_label("Votre pseudonyme").fill("Camille 2")
    phone.get_by_role("button", name="Rejoindre la cartopartie").click()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    assert [row.preset for row in submissions(app, committed_event)] == ["bench"]
    expect(phone.locator(".point")).to_have_count(1)
    assert errors == []  # the map was not made a second time
