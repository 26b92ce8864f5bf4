"""The organiser's side in Chromium: sign in, draw a zone, review points as walkers send them."""

import uuid

import pytest
from playwright.sync_api import expect

from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Event, Organiser

from .conftest import db_rows, sign_in

EMAIL, PASSWORD = "alice@example.org", "correct horse"


@pytest.fixture
def organiser_of_walk(app, committed_event):
    with app.app_context():
        organiser = Organiser(email=EMAIL, password_hash=hash_password(PASSWORD))
        organiser.events.append(db.session.get(Event, committed_event.id))
        db.session.add(organiser)
        db.session.commit()
    yield committed_event
    with app.app_context():
        db.session.execute(db.delete(Event).where(Event.slug == "drawn"))
        db.session.execute(db.delete(Organiser).where(Organiser.email == EMAIL))
        db.session.commit()


def walker_sends(page, token, species, lat=45.565, lon=5.92):
    """A walker's phone posting a tree through the API."""
    response = page.request.post("/api/events/walk/submissions", headers={
        "Authorization": f"Bearer {token}"}, data={
        "client_id": str(uuid.uuid4()), "preset": "tree", "lat": lat, "lon": lon,
        "tags": {"species": species}})
    assert response.status == 201, response.text()


def join(page, pseudonym="Camille"):
    response = page.request.post("/api/events/walk/participants",
                                 data={"pseudonym": pseudonym, "consent": True})
    return response.json()["token"]


def test_organiser_draws_a_zone_for_a_new_event(app, desk, organiser_of_walk):
    sign_in(desk, "/organise/new", EMAIL, PASSWORD)
    desk.get_by_label("Nom", exact=True).fill("Quartier dessiné")
    desk.get_by_label("Adresse courte").fill("drawn")
    zone_map = desk.locator("#zone-map")
    zone_map.evaluate("node => node.scrollIntoView()")
    desk.locator('[data-for="zone"] [data-draw="start"]').click()
    box = zone_map.bounding_box()
    for x, y in ((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)):
        desk.mouse.click(box["x"] + box["width"] * x, box["y"] + box["height"] * y)
    desk.locator('[data-for="zone"] [data-draw="finish"]').click()
    desk.get_by_role("button", name="Enregistrer").click()
    desk.wait_for_url("**/organise/drawn/settings")
    [row] = db_rows(app, "SELECT ST_NPoints(zone) AS corners, ST_Area(zone) AS area "
                         "FROM event WHERE slug = 'drawn'")
    assert row.corners == 5 and row.area > 0


def test_organiser_reviews_points_and_sees_new_ones_arrive(app, desk, organiser_of_walk):
    token = join(desk)
    for species in ("Tilia cordata", "Acer campestre", "Quercus robur"):
        walker_sends(desk, token, species, lon=5.92 + len(species) * 1e-5)
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    items = desk.locator("#list .item")
    expect(items).to_have_count(3)

    items.nth(0).click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Quercus robur")
    desk.locator("#approve").click()
    expect(desk.locator("#detail .status")).to_have_text("Validé")

    items.nth(1).click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Acer campestre")
    desk.get_by_placeholder("Raison").fill("Photo floue")
    desk.locator("#reject").click()
    expect(desk.locator("#detail .status")).to_contain_text("Écarté — Photo floue")

    items.nth(2).click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Tilia cordata")
    desk.locator("#edit").click()
    desk.locator("#editor").get_by_label("Espèce (nom latin)", exact=True).fill("Quercus petraea")
    desk.locator("#editor").get_by_role("button", name="Enregistrer").click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Quercus petraea")

    rows = db_rows(app, "SELECT status::text, tags->>'species' AS species FROM submission "
                        "WHERE event_id = :id ORDER BY received_at DESC, id DESC", id=organiser_of_walk.id)
    assert [(r.status, r.species) for r in rows] == [
        ("approved", "Quercus robur"), ("rejected", "Acer campestre"), ("pending", "Quercus petraea")]

    walker_sends(desk, join(desk, "Noor"), "Sorbus aria")
    expect(items).to_have_count(4, timeout=15_000)
    expect(items.first).to_contain_text("Noor")
