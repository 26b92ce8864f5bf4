"""The restitution page on a phone and on paper, the public map of events, and the walker's
feedback form once the party is over — in Debian's Chromium."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from test_restitution import TREE, point, walker

from cartoparty.extensions import db
from cartoparty.models import Event, Team

from .conftest import db_rows
from .test_walker import join

HOSTILE = "<img src=x onerror=alert(1)>"
# A4 is 210 mm wide; the page's margins (@page) leave 186 mm, 703 CSS pixels at 96 per inch.
A4_PRINTABLE_PX = 703


@pytest.fixture
def party(app, committed_event):
    """The committed event, over since yesterday, with approved, pending and rejected points."""
    with app.app_context():
        event = db.session.get(Event, committed_event.id)
        event.starts_at = datetime.now(UTC) - timedelta(days=1, hours=3)
        event.ends_at = datetime.now(UTC) - timedelta(days=1)
        event.listed = True  # as its organiser chose, for the public map of events
        team = Team(event_id=event.id, name="Arbres", presets=["tree"])
        db.session.add(team)
        db.session.flush()
        camille, evil = walker(event, "Camille", team), walker(event, HOSTILE)
        for minute, lon in ((5, 5.918), (20, 5.921), (50, 5.924)):
            point(event, camille, "tree", "approved", f"10:{minute:02d}", 6, TREE, photos=1, lon=lon)
        point(event, evil, "bench", "approved", "11:10", None, {"backrest": "yes"}, lon=5.926)
        point(event, evil, "bench", "pending", "11:20", 40)
        point(event, evil, "tree", "rejected", "11:40", 12, reason="<b>trop flou</b>")
        db.session.commit()
    yield committed_event
    # The points go first, in a statement of their own, so that removing the event does not
    # depend on how the submission triggers (revision counters) behave in a cascade.
    with app.app_context():
        db.session.execute(db.text("DELETE FROM submission WHERE event_id = :id"), {"id": committed_event.id})
        db.session.commit()


def publish(app, event):
    with app.app_context():
        db.session.execute(db.text("UPDATE event SET restitution_published_at = now() WHERE id = :id"),
                           {"id": event.id})
        db.session.commit()


def overflow(page):
    """How many CSS pixels the page is wider than its viewport (0 when it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_restitution_reads_well_on_a_phone(app, phone, party):
    assert phone.goto("/r/walk").status == 404
    publish(app, party)
    phone.goto("/r/walk")
    expect(phone.get_by_role("heading", level=1)).to_have_text("Cartopartie du quartier")
    expect(phone.locator("#map .point-icon")).to_have_count(4)
    expect(phone.locator(".key-figures")).to_contain_text("4 points validés")
    participants = phone.locator("#by-participant tbody th")
    expect(participants).to_have_text(["Camille", HOSTILE])
    expect(phone.locator("#reasons")).to_contain_text("<b>trop flou</b>")
    expect(phone.locator("#timeline .slot")).to_have_count(4)  # 10:00 to 11:30, every half-hour
    assert overflow(phone) <= 0
    for chart in ("#by-preset", "#by-participant", "#timeline", "#accuracy"):
        box = phone.locator(chart).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, chart

    phone.locator("#map .point-icon").first.click()
    popup = phone.locator(".leaflet-popup-content")
    expect(popup).to_contain_text("Arbre")
    expect(popup).to_contain_text("Tilia cordata")


def test_restitution_prints_on_a4_without_buttons(app, desk, party):
    publish(app, party)
    desk.set_viewport_size({"width": A4_PRINTABLE_PX, "height": 1000})
    desk.goto("/r/walk")
    expect(desk.locator("#map .point-icon")).to_have_count(4)
    expect(desk.get_by_role("button", name="Imprimer")).to_be_visible()
    desk.emulate_media(media="print")
    expect(desk.get_by_role("button", name="Imprimer")).to_be_hidden()
    expect(desk.locator(".langs")).to_be_hidden()
    expect(desk.locator(".leaflet-control-zoom")).to_be_hidden()
    assert overflow(desk) <= 0
    body = desk.locator("main").bounding_box()
    for part in ("#map", "#by-preset table", "#by-participant table", "#timeline .timeline", "#accuracy"):
        box = desk.locator(part).bounding_box()
        assert box["x"] >= body["x"] - 1 and box["x"] + box["width"] <= body["x"] + body["width"] + 1, part
    map_box = desk.locator("#map").bounding_box()
    assert 400 <= map_box["height"] <= 430  # 110 mm
    assert map_box["width"] >= body["width"] - 2

    pdf = desk.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 5


def test_public_map_of_events_leads_to_the_restitution(app, phone, party):
    phone.goto("/events")
    expect(phone.locator("#past .event-list li")).to_have_count(1)
    expect(phone.locator("#past")).to_contain_text("Restitution pas encore publiée")
    publish(app, party)
    phone.goto("/events")
    expect(phone.locator(".event-marker")).to_have_count(1)
    phone.locator(".event-marker").click()
    link = phone.locator(".leaflet-popup-content").get_by_role("link", name="Voir la restitution")
    expect(link).to_have_attribute("href", re.compile(r"/r/walk$"))
    phone.locator("#past").get_by_role("link", name="Voir la restitution").click()
    expect(phone).to_have_url(re.compile(r"/r/walk$"))
    expect(phone.get_by_role("heading", level=1)).to_have_text("Cartopartie du quartier")


def test_walker_gives_feedback_once_the_party_is_over(app, phone, party):
    join(phone, "Dominique")
    banner = phone.locator("#feedback-banner")
    expect(banner).to_contain_text("La cartopartie est finie")
    expect(banner.get_by_role("link", name="Voir la restitution")).to_be_hidden()
    banner.get_by_role("button", name="Donner mon avis").click()
    sheet = phone.locator("#feedback-sheet")
    expect(sheet).to_be_visible()
    sheet.get_by_role("button", name="Envoyer").click()
    expect(sheet.locator("#feedback-error")).to_have_text("Dites-nous si vous reviendriez.")
    sheet.get_by_label("Qu'avez-vous appris ?").fill("Reconnaître un tilleul <b>")
    sheet.get_by_label("Que faudrait-il améliorer ?").fill("Des gants")
    sheet.get_by_label("Oui").check()
    sheet.get_by_role("button", name="Envoyer").click()
    expect(phone.locator("#toast")).to_have_text("Merci pour votre avis !")
    expect(sheet).to_be_hidden()
    expect(banner).to_be_hidden()
    rows = db_rows(app, "SELECT learnt, improve, come_again, signature FROM feedback WHERE event_id = :id",
                   id=party.id)
    assert rows == [("Reconnaître un tilleul <b>", "Des gants", "yes", None)]
    answered = db_rows(app, "SELECT feedback_at IS NOT NULL FROM participant WHERE pseudonym = 'Dominique'")
    assert answered == [(True,)]

    phone.reload()
    expect(phone.locator("#who")).to_have_text("Dominique")
    expect(banner).to_have_attribute("data-state", "answered")
    expect(banner).to_be_hidden()


def test_walker_is_offered_the_restitution_once_published(app, phone, party):
    publish(app, party)
    join(phone, "Ines")
    banner = phone.locator("#feedback-banner")
    link = banner.get_by_role("link", name="Voir la restitution")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "/r/walk")
    banner.get_by_role("button", name="Donner mon avis").click()
    sheet = phone.locator("#feedback-sheet")
    sheet.get_by_label("Peut-être").check()
    sheet.get_by_label("Signer ma réponse avec mon pseudonyme").check()
    sheet.get_by_role("button", name="Envoyer").click()
    expect(phone.locator("#toast")).to_have_text("Merci pour votre avis !")
    assert db_rows(app, "SELECT come_again, signature FROM feedback WHERE event_id = :id",
                   id=party.id) == [("maybe", "Ines")]
