"""The organiser's side in Chromium: sign in, draw a zone, review points as walkers send them."""

import uuid

import pytest
from playwright.sync_api import expect

from .conftest import DESK, _page, db_rows, sign_in
from .conftest import ORGANISER_EMAIL as EMAIL
from .conftest import ORGANISER_PASSWORD as PASSWORD


def walker_sends(page, token, species, lat=45.565, lon=5.92, **values):
    """A walker's phone posting a tree through the API; its id."""
    response = page.request.post("/api/events/walk/submissions", headers={
        "Authorization": f"Bearer {token}"}, data={
        "client_id": str(uuid.uuid4()), "preset": "tree", "lat": lat, "lon": lon,
        "tags": {"species": species}, **values})
    assert response.status == 201, response.text()
    return response.json()["id"]


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
    # The history says what changed, not "edit: pending → pending".
    desk.locator("#detail summary", has_text="Historique (1)").click()
    entry = desk.locator("#detail .history > li")
    expect(entry).to_contain_text(f"{EMAIL} — corrigé")
    expect(entry.locator("li")).to_have_text(["species : Tilia cordata → Quercus petraea"])

    rows = db_rows(app, "SELECT status::text, tags->>'species' AS species FROM submission "
                        "WHERE event_id = :id ORDER BY received_at DESC, id DESC", id=organiser_of_walk.id)
    assert [(r.status, r.species) for r in rows] == [
        ("approved", "Quercus robur"), ("rejected", "Acer campestre"), ("pending", "Quercus petraea")]

    walker_sends(desk, join(desk, "Noor"), "Sorbus aria")
    expect(items).to_have_count(4, timeout=15_000)
    expect(items.first).to_contain_text("Noor")


def api_patch(page, submission_id, body):
    """PATCH a point as the page's own script does (same session, same CSRF token); the status."""
    return page.evaluate("""async ([url, body]) => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch(url, { method: "PATCH", body: JSON.stringify(body),
            headers: { "Content-Type": "application/json", "X-CSRFToken": csrf } });
        return response.status;
    }""", [f"/api/organise/walk/submissions/{submission_id}", body])


def test_history_shows_each_change_before_and_after(app, desk, organiser_of_walk):
    point = walker_sends(desk, join(desk), "Tilia cordata")
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    expect(desk.locator("#list .item")).to_have_count(1)
    assert api_patch(desk, point, {"version": 1, "note": "au pied du mur"}) == 200
    assert api_patch(desk, point, {"version": 2, "lat": 45.5651, "lon": 5.92}) == 200
    assert api_patch(desk, point, {"version": 3, "tags": {"natural": "tree", "genus": "Tilia"}}) == 200
    desk.locator("#list .item").click()
    desk.get_by_placeholder("Raison").fill("Photo floue")
    desk.locator("#reject").click()
    expect(desk.locator("#detail .status")).to_contain_text("Écarté")
    desk.locator("#detail summary", has_text="Historique (4)").click()
    entries = desk.locator("#detail .history > li")
    expect(entries.nth(0).locator("li")).to_have_text(["remarque : (vide) → « au pied du mur »"])
    expect(entries.nth(1)).to_contain_text("déplacé")
    expect(entries.nth(1).locator("li")).to_have_text(
        ["position : 45,565000, 5,920000 → 45,565100, 5,920000 (déplacé de 11 m)"])
    expect(entries.nth(2).locator("li")).to_have_text(
        ["genus : (aucun) → Tilia", "species : Tilia cordata → (aucun)"])
    expect(entries.nth(3).locator("li")).to_have_text(["État : À valider → Écarté (Photo floue)"])


def centred_on_selected(page):
    """Wait until the chosen point's marker is at the middle of the review map (±3 px)."""
    page.wait_for_function("""() => {
        const marker = document.querySelector("path.point.selected");
        if (!marker) return false;
        const map = document.querySelector("#review-map").getBoundingClientRect();
        const dot = marker.getBoundingClientRect();
        return Math.abs(dot.x + dot.width / 2 - (map.x + map.width / 2)) < 3
            && Math.abs(dot.y + dot.height / 2 - (map.y + map.height / 2)) < 3;
    }""", timeout=5_000)


def detail_in_view(page):
    """Whether the top of the point's details is within the scrolled side panel."""
    return page.evaluate("""() => {
        const detail = document.querySelector("#detail").getBoundingClientRect();
        const side = document.querySelector(".side").getBoundingClientRect();
        return detail.height > 0 && detail.top >= side.top - 1 && detail.top < side.bottom;
    }""")


def test_a_chosen_point_comes_into_view_and_the_map_centres_on_it(app, desk, organiser_of_walk):
    token = join(desk)
    # 48 trees on a grid near the zone's middle (a list longer than the panel), one in its
    # south-west corner.
    grid = {(column, row): walker_sends(desk, token, f"Tilia {column}-{row}", lat=45.5630 + row * 0.0004,
                                        lon=5.9200 + column * 0.0004)
            for row in range(6) for column in range(8)}
    corner = walker_sends(desk, token, "Quercus robur", lat=45.5610, lon=5.9160)
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    expect(desk.locator("#list .item")).to_have_count(49)

    desk.locator(f'#list .item[data-id="{corner}"]').click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Quercus robur")
    centred_on_selected(desk)
    assert detail_in_view(desk)

    # Then from the map: the north-east tree of the grid, its details below the list again.
    desk.locator(".side").evaluate("side => { side.scrollTop = 0; }")
    assert not detail_in_view(desk)
    markers = desk.locator("path.point:not(.selected)")
    boxes = markers.evaluate_all("paths => paths.map((path) => path.getBoundingClientRect().toJSON())")
    target = max(range(len(boxes)), key=lambda i: (round(boxes[i]["x"]), -boxes[i]["y"]))
    markers.nth(target).dispatch_event("click")
    expect(desk.locator("#detail table.tags")).to_contain_text("Tilia 7-5")
    centred_on_selected(desk)
    assert detail_in_view(desk)
    assert desk.locator("#detail h2").text_content().endswith(f"#{grid[7, 5]}")


@pytest.fixture
def desk_in_new_york(browser, live_server, network):
    """The organiser's desktop browser, set to New York's time: the page must not follow it."""
    yield from _page(browser, live_server, network, {**DESK, "timezone_id": "America/New_York"})


def test_times_on_the_review_page_are_the_event_time_zone(app, desk_in_new_york, organiser_of_walk):
    desk = desk_in_new_york
    walker_sends(desk, join(desk), "Tilia cordata", observed_at="2026-06-13T08:15:00Z")
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    assert desk.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "America/New_York"
    desk.locator("#list .item").click()
    hint = desk.locator("#detail .hint").first
    expect(hint).to_contain_text("13 juin 2026, 10:15")  # Paris, summer time
    expect(hint).not_to_contain_text("04:15")
