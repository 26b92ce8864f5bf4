"""One tap, one point: tapping "Enregistrer" again, however fast, records the form once."""

import pytest
from playwright.sync_api import expect

from .test_walker import ALL_SENT, join, outbox_count, submissions


def tap_save(phone, taps):
    """Tap the save button `taps` times in a row, as a finger does: at its place on the screen,
    without waiting for the button to be ready again."""
    box = phone.get_by_role("button", name="Enregistrer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for _ in range(taps):
        phone.touchscreen.tap(x, y)


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
@pytest.mark.parametrize("taps", [2, 3])
def test_tapping_save_again_records_one_point_per_form(app, phone, committed_event, taps, offline):
    join(phone)
    phone.context.set_offline(offline)
    for _ in range(2):
        phone.get_by_role("button", name="Ajouter un point").click()
        phone.locator('[data-preset="bench"]').click()
        tap_save(phone, taps)
        expect(phone.get_by_role("button", name="Ajouter un point")).to_be_visible()
        expect(phone.locator("#sheet")).to_be_hidden()  # the later taps opened no new form
    if offline:
        expect(phone.locator("#sync")).to_have_text("2 en attente d'envoi")
        assert outbox_count(phone) == 2
        assert submissions(app, committed_event) == []
        phone.context.set_offline(False)
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    rows = submissions(app, committed_event)
    assert len(rows) == 2
    assert len({row.client_id for row in rows}) == 2
    expect(phone.locator(".point")).to_have_count(2)
    assert outbox_count(phone) == 0


def test_save_button_is_disabled_while_the_point_is_being_saved(app, phone, committed_event):
    join(phone)
    phone.get_by_role("button", name="Ajouter un point").click()
    phone.locator('[data-preset="bench"]').click()
    # Clicks dispatched in one go, before the first save has finished writing to IndexedDB.
    disabled = phone.evaluate("""() => {
        const save = document.getElementById("save");
        save.click();
        const during = save.disabled;
        save.click();
        save.click();
        return during;
    }""")
    assert disabled is True
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    assert len(submissions(app, committed_event)) == 1
    expect(phone.locator(".point")).to_have_count(1)
