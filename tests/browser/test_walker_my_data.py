"""A walker's own data on the phone: "Mes données" in the menu, the zip downloaded with the
walker's token, then erased: the phone forgets the walker, the points stay, anonymous."""

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import text

from cartoparty.extensions import db
from cartoparty.i18n import translate

from .conftest import db_rows
from .test_walker import ALL_SENT, a_photo, join, outbox_count, record

TOKEN_KEY = "cartoparty:walk:token"


def open_my_data(phone):
    phone.get_by_role("button", name="Menu").click()
    phone.get_by_role("button", name="Mes données").click()
    expect(phone.get_by_role("heading", name="Mes données")).to_be_visible()


def stored_token(phone):
    return phone.evaluate(f"localStorage.getItem('{TOKEN_KEY}')")


def test_walker_downloads_then_erases_their_data_and_their_point_stays(app, phone, committed_event,
                                                                      tmp_path):
    join(phone, "Camille")
    record(phone, "bench", {"Remarque (facultatif)": "près de la fontaine"}, photo=a_photo())
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    token = stored_token(phone)
    [(sha256,)] = db_rows(app, "SELECT sha256 FROM photo JOIN submission s ON s.id = "
                               "photo.submission_id WHERE s.event_id = :id", id=committed_event.id)
    photo_file = Path(app.config["PHOTO_DIR"]) / sha256[:2] / f"{sha256}.jpg"
    assert photo_file.is_file()
    open_my_data(phone)
    expect(phone.locator("#mydata-pseudonym")).to_have_text("Camille")

    with phone.expect_download() as download:
        phone.get_by_role("button", name="Télécharger mes données").click()
    assert download.value.suggested_filename == "cartoparty-walk-my-data.zip"
    download.value.save_as(tmp_path / "mine.zip")
    with zipfile.ZipFile(tmp_path / "mine.zip") as archive:
        data = json.loads(archive.read("participant.json"))
        [point] = data["points"]
        assert data["participant"]["pseudonym"] == "Camille"
        assert (point["preset"], point["note"]) == ("bench", "près de la fontaine")
        [photo] = point["photos"]
        assert archive.read(photo)[:3] == b"\xff\xd8\xff"  # the JPEG the server kept
    expect(phone.locator("#mydata-status")).to_have_text(translate("fr", "mydata_downloaded"))

    phone.get_by_role("button", name="Effacer mes données").click()
    expect(phone.get_by_text(translate("fr", "mydata_confirm_osm"))).to_be_visible()
    expect(phone.locator("#mydata-unsent")).to_be_hidden()  # everything was sent
    phone.get_by_role("button", name="Oui, effacer").click()
    expect(phone.locator("#join-notice")).to_have_text(translate("fr", "mydata_erased"))
    expect(phone.locator("#join")).to_be_visible()
    assert stored_token(phone) is None
    assert phone.evaluate("Object.keys(localStorage).filter((key) => key.startsWith("
                          "'cartoparty:walk:'))") == []

    [row] = db_rows(app, "SELECT p.pseudonym, s.note, s.preset, (SELECT count(*) FROM photo "
                         "WHERE photo.submission_id = s.id) AS photos FROM submission s "
                         "JOIN participant p ON p.id = s.participant_id WHERE s.event_id = :id",
                    id=committed_event.id)
    assert row.pseudonym.startswith("anonyme-")
    assert (row.note, row.preset, row.photos) == ("", "bench", 0)
    assert not photo_file.exists()
    refused = phone.request.get("/api/events/walk/me/data",
                                headers={"Authorization": f"Bearer {token}"})
    assert refused.status == 401
    phone.reload()
    expect(phone.locator("#join")).to_be_visible()
    expect(phone.locator("#walk")).to_be_hidden()


def test_my_data_needs_the_network_and_warns_of_points_not_sent(app, phone, committed_event):
    join(phone, "Dominique")
    phone.context.set_offline(True)
    record(phone, "tree")
    open_my_data(phone)
    expect(phone.locator("#mydata-offline")).to_have_text(translate("fr", "mydata_offline"))

    phone.get_by_role("button", name="Télécharger mes données").click()
    expect(phone.locator("#mydata-error")).to_have_text(translate("fr", "mydata_offline"))
    phone.get_by_role("button", name="Effacer mes données").click()
    expect(phone.locator("#mydata-unsent")).to_have_text(translate("fr", "mydata_unsent", n=1))
    phone.get_by_role("button", name="Oui, effacer").click()
    expect(phone.locator("#mydata-error")).to_have_text(translate("fr", "mydata_offline"))
    assert stored_token(phone) is not None
    assert outbox_count(phone) == 1
    assert [row.pseudonym for row in db_rows(
        app, "SELECT pseudonym FROM participant WHERE event_id = :id", id=committed_event.id)] == [
        "Dominique"]

    phone.context.set_offline(False)
    phone.evaluate("window.dispatchEvent(new Event('online'))")
    expect(phone.locator("#mydata-offline")).to_be_hidden()
    phone.get_by_role("button", name="Oui, effacer").click()
    expect(phone.locator("#join-notice")).to_have_text(translate("fr", "mydata_erased"))
    assert outbox_count(phone) == 0  # the point not sent is gone with the rest
    assert stored_token(phone) is None
    [row] = db_rows(app, "SELECT pseudonym, erased_at FROM participant WHERE event_id = :id",
                    id=committed_event.id)
    assert row.pseudonym.startswith("anonyme-") and row.erased_at is not None


def test_a_walker_can_cancel_erasing_and_stays_joined(app, phone, committed_event):
    join(phone, "Sacha")
    open_my_data(phone)
    phone.get_by_role("button", name="Effacer mes données").click()
    phone.get_by_role("button", name="Annuler").click()
    expect(phone.locator("#mydata-confirm")).to_be_hidden()
    phone.get_by_role("button", name="Retour").click()
    expect(phone.locator("#mydata")).to_be_hidden()
    expect(phone.locator("#walk")).to_be_visible()
    assert stored_token(phone) is not None
    assert [row.pseudonym for row in db_rows(
        app, "SELECT pseudonym FROM participant WHERE event_id = :id", id=committed_event.id)] == [
        "Sacha"]


def test_a_walker_erased_by_the_organisers_is_asked_to_join_again(app, phone, committed_event):
    join(phone, "Alix")
    with app.app_context():  # an organiser erased this walker meanwhile
        db.session.execute(text("UPDATE participant SET token_hash = 'erased:x' WHERE event_id = :id"),
                           {"id": committed_event.id})
        db.session.commit()
    # The phone's next call to the server (the one it makes when the page opens again, or its
    # background sync if that comes first) is refused, and it forgets the walker: whichever it
    # was, the page opened again is the join page. (The message itself: tests/browser/test_walker.)
    phone.reload()
    expect(phone.locator("#join-form")).to_be_visible()
    expect(phone.locator("#mydata")).to_be_hidden()
    assert stored_token(phone) is None


def test_join_page_shows_the_retention_date_and_the_contact_escaped(app, phone, committed_event):
    with app.app_context():
        db.session.execute(text(
            "UPDATE event SET ends_at = :end, retention_days = 30, privacy_contact = :contact "
            "WHERE id = :id"), {"end": datetime(2026, 6, 13, 16, tzinfo=UTC), "id": committed_event.id,
                                "contact": "<img src=x id=hostile> dpo@example.org"})
        db.session.commit()
    phone.goto("/e/walk")
    expect(phone.locator("#privacy-kept")).to_contain_text("au plus tard le 13 juillet 2026, 30 jours")
    expect(phone.locator("#privacy-contact")).to_have_text(
        "Contact pour vos données : <img src=x id=hostile> dpo@example.org.")
    expect(phone.locator("#hostile")).to_have_count(0)
