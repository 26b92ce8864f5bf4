"""The walker's screen at 360 x 640: long names give way, buttons stay within reach, and the
presets' icons are drawn images that need no emoji font."""

import re

import pytest
from playwright.sync_api import expect

from cartoparty.extensions import db
from cartoparty.i18n import translate
from cartoparty.models import Team

from .test_walker import ALL_SENT, join, record, service_worker_keeps_the_page

PSEUDONYM = "Camille-Dominique de la Fontaine-Saint-J"  # 40 characters, the most allowed
TEAM = "Les arpenteurs infatigables du quartier de la gare et des bords de la Leysse nord"[:80]
EMOJI = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")


@pytest.fixture
def long_team(app, committed_event):
    """A team with an 80-character name; deleted with the event."""
    with app.app_context():
        team = Team(event_id=committed_event.id, name=TEAM, presets=[])
        db.session.add(team)
        db.session.commit()
        return team.join_code


def inside_viewport(locator):
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["y"] >= 0 \
        and box["x"] + box["width"] <= 360 and box["y"] + box["height"] <= 640


def is_ellipsised(locator):
    return locator.evaluate("node => node.scrollWidth > node.clientWidth "
                            "&& getComputedStyle(node).textOverflow === 'ellipsis'")


def test_header_keeps_the_language_switch_and_sync_state_with_long_names(phone, committed_event,
                                                                         long_team):
    assert len(PSEUDONYM) == 40 and len(TEAM) == 80
    # The longest sync state: a point the server refused.
    phone.route("**/api/events/walk/submissions", lambda route: route.fulfill(status=422, json={
        "error": {"code": "outside_zone", "field": "lat", "params": {},
                  "message": "This point is outside the event's zone."}}))
    join(phone, PSEUDONYM, path=f"/e/walk?team={long_team}")
    record(phone, "bench")
    sync = phone.locator("#sync")
    expect(sync).to_have_text("1 refusé : touchez le point")

    header = phone.locator("#walk header")
    for node in [sync, header.get_by_role("link", name="FR"), header.get_by_role("link", name="EN")]:
        assert inside_viewport(node)
    header.get_by_role("link", name="EN").click(trial=True)  # nothing covers it
    expect(phone.locator("#pseudonym-shown")).to_have_text(PSEUDONYM)
    expect(phone.locator("#team-shown")).to_have_text(TEAM)
    assert is_ellipsised(phone.locator("#pseudonym-shown"))
    assert is_ellipsised(phone.locator("#team-shown"))

    # The server's refusal, in the walker's language, in the point's popup.
    phone.locator(".point-refused").click()
    expect(phone.locator(".popup .error")).to_have_text(translate("fr", "error.outside_zone"))


NOTE = ("Le banc est descellé côté fontaine, une latte manque et la peinture s'écaille ; "
        "à signaler aux services techniques. ") * 20
NOTE = (NOTE[:1999].rstrip() + "x" * 2000)[:2000]


def test_popup_with_a_long_note_keeps_its_buttons_within_reach(app, phone, committed_event):
    assert len(NOTE) == 2000
    join(phone)
    phone.get_by_role("button", name="Ajouter un point").click()
    phone.locator('[data-preset="bench"]').click()
    phone.get_by_label("Remarque (facultatif)").fill(NOTE)
    phone.get_by_role("button", name="Enregistrer").click()
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)

    marker = phone.locator(".point")
    marker.click()
    popup = phone.locator(".leaflet-popup")
    expect(popup.locator(".note")).to_have_text(NOTE)
    assert popup.locator(".popup-body").evaluate("node => node.scrollHeight > node.clientHeight")
    for name in ["Corriger", "Supprimer"]:
        button = popup.get_by_role("button", name=name)
        expect(button).to_be_in_viewport(ratio=1)
        assert inside_viewport(button)
        button.click(trial=True)
    popup.get_by_role("button", name="Corriger").click()
    expect(phone.locator("#sheet-title")).to_have_text("Corriger le point")
    expect(phone.get_by_label("Remarque (facultatif)")).to_have_value(NOTE)
    phone.get_by_role("button", name="Annuler").click()

    phone.once("dialog", lambda dialog: dialog.accept())
    marker.click()
    popup.get_by_role("button", name="Supprimer").click()
    expect(marker).to_have_count(0)
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)


def drawn_icons(phone, selector):
    """Whether every element matching `selector` holds exactly one image, loaded (naturalWidth
    > 0) and decorative (alt=""), once the images under it have finished loading."""
    images = f"[...document.querySelectorAll({selector!r})].map((node) => node.querySelectorAll('img'))"
    phone.wait_for_function(f"() => {images}.every((found) => [...found].every((img) => img.complete))")
    return phone.evaluate(f"""() => {images}.map((found) => found.length === 1
        && found[0].naturalWidth > 0 && found[0].getAttribute("alt") === "")""")


def test_preset_icons_are_drawn_images_even_offline(phone, committed_event):
    join(phone)
    service_worker_keeps_the_page(phone)
    record(phone, "tree")
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    phone.context.set_offline(True)
    phone.reload()  # offline: the service worker serves the page and the icons

    marker = phone.locator(".point")
    expect(marker).to_have_count(1)
    assert drawn_icons(phone, ".point") == [True]
    assert marker.text_content() == ""
    marker.click()
    expect(phone.locator(".popup h3")).to_have_text("Arbre")
    assert drawn_icons(phone, ".popup h3") == [True]

    phone.get_by_role("button", name="Ajouter un point").click()
    buttons = phone.locator(".preset")
    expect(buttons).to_have_count(3)
    assert drawn_icons(phone, ".preset") == [True, True, True]
    assert buttons.all_text_contents() == ["Arbre", "Banc", "Défibrillateur (DAE)"]
    for text in buttons.all_text_contents() + [marker.text_content()]:
        assert not EMOJI.search(text), text
