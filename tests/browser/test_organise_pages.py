"""Preparing a party in Chromium, as a new organiser tries it: a team's sector drawn with too
few corners, deleting a team, the times of the home page, and an event kept off the public
map of events until its organiser lists it."""

import json
from datetime import UTC, datetime

import pytest
from conftest import ZONE
from playwright.sync_api import expect

from cartoparty.extensions import db
from cartoparty.models import Event, Team

from .conftest import ORGANISER_EMAIL as EMAIL
from .conftest import ORGANISER_PASSWORD as PASSWORD
from .conftest import db_rows, sign_in

NEW_SLUG = "listed-later"


@pytest.fixture
def organiser(organiser_of_walk):
    return organiser_of_walk


def teams(app, event):
    return db_rows(app, "SELECT name, sector IS NOT NULL AS has_sector FROM team WHERE event_id = :id",
                   id=event.id)


def draw_sector(page, corners):
    """Draw a team's sector on the settings page's map: "Dessiner", a click per corner (as
    fractions of the map's box), "Terminer"."""
    sector_map = page.locator("#sector-map")
    sector_map.scroll_into_view_if_needed()
    page.locator('[data-for="sector"] [data-draw="start"]').click()
    box = sector_map.bounding_box()
    for x, y in corners:
        page.mouse.click(box["x"] + box["width"] * x, box["y"] + box["height"] * y)
    page.locator('[data-for="sector"] [data-draw="finish"]').click()


def test_a_sector_of_two_corners_is_refused_and_no_team_is_made(app, desk, organiser):
    sign_in(desk, "/organise/walk/settings", EMAIL, PASSWORD)
    desk.get_by_label("Nom de l'équipe").fill("Les arbres")
    draw_sector(desk, [(0.4, 0.4), (0.6, 0.6)])
    desk.get_by_role("button", name="Ajouter l'équipe").click()
    expect(desk.get_by_role("alert")).to_contain_text("Un secteur a au moins 3 coins")
    assert teams(app, organiser) == []

    # Three corners make a sector: the refusal was about the corners, nothing else.
    desk.get_by_label("Nom de l'équipe").fill("Les arbres")
    draw_sector(desk, [(0.4, 0.4), (0.6, 0.4), (0.6, 0.6)])
    desk.get_by_role("button", name="Ajouter l'équipe").click()
    expect(desk.locator("ul.teams li")).to_contain_text("Les arbres")
    assert [tuple(row) for row in teams(app, organiser)] == [("Les arbres", True)]


def test_a_team_is_deleted_only_once_confirmed(app, desk, organiser):
    with app.app_context():
        db.session.add(Team(event_id=organiser.id, name="Les bancs", presets=["bench"]))
        db.session.commit()
    sign_in(desk, "/organise/walk/settings", EMAIL, PASSWORD)
    team = desk.locator("ul.teams li", has_text="Les bancs")
    confirm = team.get_by_role("button", name="Oui, supprimer l'équipe")
    expect(confirm).to_be_hidden()
    team.locator("summary", has_text="Supprimer").click()
    expect(team).to_contain_text("Supprimer l'équipe « Les bancs » ? Ses participants restent")
    expect(confirm).to_be_visible()
    assert [row.name for row in teams(app, organiser)] == ["Les bancs"]
    confirm.click()
    expect(desk.locator("#teams")).to_contain_text("Pas d'équipe")
    assert teams(app, organiser) == []


def test_home_page_times_are_the_event_time_zone(app, desk, organiser):
    with app.app_context():
        event = db.session.get(Event, organiser.id)
        event.starts_at = datetime(2026, 6, 13, 8, 0, tzinfo=UTC)  # 10:00 in Paris (summer time)
        db.session.commit()
    sign_in(desk, "/organise", EMAIL, PASSWORD)
    expect(desk.locator("ul.events li time")).to_have_text("13 juin 2026, 10:00:00")


def listed_on_the_public_map(page):
    """Whether the new event is on /events (its page) and in /api/events."""
    page.goto("/events")
    on_page = page.locator(f'li[data-slug="{NEW_SLUG}"]').count() > 0
    in_api = NEW_SLUG in {feature["properties"]["slug"]
                          for feature in page.request.get("/api/events").json()["features"]}
    assert on_page == in_api
    return on_page


def test_a_new_event_is_not_on_the_public_map_until_listed(app, desk, organiser):
    sign_in(desk, "/organise/new", EMAIL, PASSWORD)
    desk.get_by_label("Nom", exact=True).fill("Cartopartie discrète")
    desk.get_by_label("Adresse courte").fill(NEW_SLUG)
    desk.locator("#zone").evaluate("(input, zone) => { input.value = zone; }", json.dumps(ZONE))
    box = desk.get_by_label("Afficher cette cartopartie sur la carte publique des cartoparties")
    expect(box).not_to_be_checked()
    desk.get_by_role("button", name="Enregistrer").click()
    desk.wait_for_url(f"**/organise/{NEW_SLUG}/settings")
    assert not listed_on_the_public_map(desk)

    desk.goto(f"/organise/{NEW_SLUG}/settings")
    box.check()
    desk.get_by_role("button", name="Enregistrer").click()
    expect(desk.get_by_role("status")).to_have_text("Enregistré.")
    assert listed_on_the_public_map(desk)
    expect(desk.locator(f'#upcoming li[data-slug="{NEW_SLUG}"]')).to_contain_text("Cartopartie discrète")

    # The restitution page's switch keeps working.
    desk.goto(f"/organise/{NEW_SLUG}/restitution")
    desk.get_by_role("button", name="La retirer de la carte publique").click()
    expect(desk.get_by_role("button", name="L'afficher sur la carte publique")).to_be_visible()
    assert not listed_on_the_public_map(desk)
