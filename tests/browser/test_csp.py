"""The Content-Security-Policy in Chromium: each page with a map (the walker's, the review, the
OSM changes, the restitution, the public events, the folium export's preview) runs, draws its
map and asks for its tiles without a single violation of its policy."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from test_restitution import TREE, point, walker

from cartoparty.extensions import db
from cartoparty.models import Event
from cartoparty.osm.conflate import match

from .conftest import ORGANISER_EMAIL as EMAIL
from .conftest import ORGANISER_PASSWORD as PASSWORD
from .conftest import sign_in
from .test_walker import join

# Put in every document before its own scripts (by the browser's debugging protocol, which no
# policy applies to): what the document's policy refused, as "directive blocked-URL".
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => window.__violations.push(
    `${event.effectiveDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`));
"""


class Violations:
    """The policy violations of a page: its documents' events and the browser's console."""

    def __init__(self, page):
        self.page = page
        self.console = []
        page.context.add_init_script(LISTEN)
        page.on("console", self._console)

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def assert_none(self):
        """Fail on any violation so far in the current document or the console."""
        assert self.page.evaluate("window.__violations") == []
        assert self.console == []


@pytest.fixture
def violations(desk):
    return Violations(desk)


@pytest.fixture
def walked(app, organiser_of_walk):
    """The committed event "walk", over, listed and published, with an approved tree of Camille,
    matched (a point to create in OSM); its organiser is EMAIL, PASSWORD."""
    with app.app_context():
        event = db.session.get(Event, organiser_of_walk.id)
        event.starts_at = datetime.now(UTC) - timedelta(days=1, hours=3)
        event.ends_at = datetime.now(UTC) - timedelta(days=1)
        event.listed = True
        event.restitution_published_at = datetime.now(UTC)
        point(event, walker(event, "Camille"), "tree", "approved", "10:05", 6, TREE)
        match(event)
        db.session.commit()
    yield organiser_of_walk
    # The points go first, while their event exists (its revision counter follows them).
    with app.app_context():
        db.session.execute(db.text("DELETE FROM submission WHERE event_id = :id"),
                           {"id": organiser_of_walk.id})
        db.session.commit()


def map_drawn(page, network, selector):
    """The Leaflet map in `selector` is laid out and has asked for its tiles."""
    expect(page.locator(f"{selector}.leaflet-container")).to_be_visible()
    expect(page.locator(f"{selector} .leaflet-tile-loaded").first).to_be_attached()
    assert network.tiles


def test_the_walker_app_runs_under_its_policy(phone, network, committed_event):
    found = Violations(phone)
    join(phone)
    map_drawn(phone, network, "#map")
    phone.get_by_role("button", name="Ajouter un point").click()
    # The sheet's submit event is cancelled by the app's script now, not by an inline handler.
    phone.locator("#sheet").evaluate("form => form.requestSubmit()")
    expect(phone.locator("#sheet")).to_be_visible()
    assert phone.url.endswith("/e/walk")
    found.assert_none()


def test_the_review_page_runs_under_its_policy(desk, network, violations, walked):
    sign_in(desk, "/organise/walk", EMAIL, PASSWORD)
    expect(desk.locator("#list .item")).to_have_count(1)
    map_drawn(desk, network, "#review-map")
    desk.locator("#list .item").first.click()
    expect(desk.locator("#detail table.tags")).to_contain_text("Tilia cordata")
    # The outcome's colour comes through the CSSOM, which the policy allows (a style attribute
    # it refuses).
    outcome = desk.locator("#detail .outcome.new")
    expect(outcome).to_have_css("color", "rgb(21, 101, 192)")
    desk.locator("#filters").evaluate("form => form.requestSubmit()")
    assert desk.url.endswith("/organise/walk")
    violations.assert_none()


def test_the_osm_changes_page_runs_under_its_policy(desk, network, violations, walked):
    sign_in(desk, "/organise/walk/osm-changes", EMAIL, PASSWORD)
    desk.get_by_role("button", name="Préparer les changements").click()
    expect(desk.locator("#osm-changes")).to_have_attribute("data-map-ready", "1")
    map_drawn(desk, network, "#changes-map")
    assert desk.locator("#changes-map").bounding_box()["height"] == 320
    violations.assert_none()


def test_the_restitution_pages_run_under_their_policy(desk, network, violations, walked):
    desk.goto("/r/walk")
    map_drawn(desk, network, "#map")
    # The bars' lengths are set by the page's script: the tree is all the trees recorded.
    bar = desk.locator("#by-preset .bar.recorded").first
    track = desk.locator("#by-preset .track").first
    expect(bar).to_be_visible()
    assert bar.bounding_box()["width"] == pytest.approx(track.bounding_box()["width"], abs=1)
    violations.assert_none()
    sign_in(desk, "/organise/walk/restitution", EMAIL, PASSWORD)
    expect(desk.get_by_role("heading", level=1)).to_be_visible()
    violations.assert_none()


def test_the_public_events_page_runs_under_its_policy(desk, network, violations, walked):
    desk.goto("/events")
    map_drawn(desk, network, "#events-map")
    expect(desk.locator(".event-marker")).to_have_count(1)
    violations.assert_none()


def test_the_map_export_preview_runs_sandboxed_under_its_own_policy(desk, network, violations,
                                                                      walked):
    sign_in(desk, "/organise/walk/exports", EMAIL, PASSWORD)
    desk.get_by_role("link", name="Voir dans le navigateur").click()
    desk.wait_for_url("**/organise/walk/exports/html/preview")
    expect(desk.locator(".folium-map.leaflet-container")).to_be_visible()
    expect(desk.locator("path.leaflet-interactive")).to_have_count(1)  # the approved tree
    expect(desk.locator(".leaflet-tile-loaded").first).to_be_attached()
    assert network.tiles
    # Its scripts run in an opaque origin: nothing of the organiser's session is theirs.
    assert desk.evaluate("window.origin") == "null"
    violations.assert_none()
