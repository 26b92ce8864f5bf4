"""The points a walker sees come from the server once, then only what changed: the page keeps
the server's cursor beside the points and sends it as `since`."""

import uuid
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from .test_walker import eventually, join, record, submissions

MINE_PENDING, OTHERS_APPROVED, MINE_REJECTED, OTHERS_NEW = (str(uuid.uuid4()) for _ in range(4))


def feature(client_id, status, mine, lon, **properties):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, 45.565]},
            "properties": {"client_id": client_id, "preset": "bench", "tags": {"amenity": "bench"},
                           "status": status, "mine": mine, **properties}}


FIRST = {"type": "FeatureCollection", "cursor": "c1", "removed": [], "complete": True, "features": [
    feature(MINE_PENDING, "pending", True, 5.918, note=""),
    feature(OTHERS_APPROVED, "approved", False, 5.920),
    feature(MINE_REJECTED, "rejected", True, 5.922, review_reason="Doublon du banc voisin"),
]}
CHANGES = {"c1": {"type": "FeatureCollection", "cursor": "c2", "removed": [MINE_PENDING],
                  "complete": False, "features": [feature(OTHERS_NEW, "approved", False, 5.924)]},
           "c2": {"type": "FeatureCollection", "cursor": "c2", "removed": [], "complete": False,
                  "features": []}}
# What the server answers until it knows `since`: every point, no cursor, no `complete`.
OLD_SERVER = {"type": "FeatureCollection", "features": [feature(OTHERS_APPROVED, "approved", False, 5.920)]}


def shown(phone):
    """The client_ids of the markers on the map."""
    return set(phone.locator(".point").evaluate_all("nodes => nodes.map((n) => n.dataset.clientId)"))


def test_walker_asks_only_for_what_changed_since_the_last_answer(app, phone, committed_event):
    asked = []
    answers = {"current": lambda since: CHANGES.get(since, FIRST)}

    def fake_points(route):
        since = parse_qs(urlsplit(route.request.url).query).get("since", [None])[0]
        asked.append(since)
        route.fulfill(content_type="application/geo+json", json=answers["current"](since))

    phone.route("**/api/events/walk/submissions.geojson*", fake_points)
    join(phone)
    expect(phone.locator(".point")).to_have_count(3)
    phone.locator(f'[data-client-id="{MINE_REJECTED}"]').click()
    expect(phone.locator(".popup .reason")).to_have_text("Raison : Doublon du banc voisin")
    expect(phone.locator(".popup .state")).to_have_text("Écarté par les organisateurs")

    phone.reload()  # the kept cursor is sent: only the changes come back
    expect(phone.locator(f'[data-client-id="{OTHERS_NEW}"]')).to_have_count(1)
    assert shown(phone) == {OTHERS_APPROVED, MINE_REJECTED, OTHERS_NEW}
    assert phone.evaluate("localStorage.getItem('cartoparty:walk:cursor')") == "c2"

    before = len(asked)
    record(phone, "tree")  # sent: shown from the server's answer, then only changes are asked
    eventually(phone, lambda: len(submissions(app, committed_event)) == 1 and len(asked) > before)
    [row] = submissions(app, committed_event)
    expect(phone.locator(f'.point-pending[data-client-id="{row.client_id}"]')).to_have_count(1)
    assert asked[0] is None and "c1" in asked
    assert set(asked[before:]) == {"c2"}, "the whole event was downloaded again"

    answers["current"] = lambda since: OLD_SERVER
    phone.reload()
    expect(phone.locator(".point")).to_have_count(1)
    assert shown(phone) == {OTHERS_APPROVED}
    assert phone.evaluate("localStorage.getItem('cartoparty:walk:cursor')") is None
