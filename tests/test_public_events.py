"""The public map of events: listed events only, upcoming and past, each leading to its join
page or its published restitution, as a page and as GeoJSON."""

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from conftest import make_event
from test_api import assert_conforms

from cartoparty.demo import load_demo

NOW = datetime.now(UTC)
# A crescent-like zone whose centroid falls outside it: the event's point must stay inside.
HOOK = {"type": "Polygon", "coordinates": [[
    [5.90, 45.50], [5.96, 45.50], [5.96, 45.51], [5.91, 45.51], [5.91, 45.55], [5.96, 45.55],
    [5.96, 45.56], [5.90, 45.56], [5.90, 45.50]]]}


@pytest.fixture
def events():
    """One listed event of each kind, plus an unlisted one."""
    day = timedelta(days=1)
    make_event("soon", name="Bientôt", starts_at=NOW + 7 * day, ends_at=NOW + 7 * day + timedelta(hours=3),
               listed=True)
    make_event("now", name="Maintenant", starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=2),
               listed=True)
    make_event("done", name="Terminée", starts_at=NOW - 30 * day, ends_at=NOW - 30 * day + timedelta(hours=3),
               restitution_published_at=NOW - 20 * day, zone=HOOK, listed=True)
    make_event("done-quiet", name="Sans restitution", starts_at=NOW - 60 * day,
               ends_at=NOW - 60 * day + timedelta(hours=3), listed=True)
    make_event("undated", name="Sans date", listed=True)
    make_event("hidden", name="Cachée", listed=False, restitution_published_at=NOW)


def by_slug(collection):
    return {feature["properties"]["slug"]: feature for feature in collection["features"]}


def test_api_lists_the_listed_events_with_their_links(client, events):
    response = client.get("/api/events")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    assert_conforms(response, "/api/events", "get")
    features = by_slug(response.json)
    assert set(features) == {"soon", "now", "done", "done-quiet", "undated"}
    assert {slug: f["properties"]["status"] for slug, f in features.items()} == {
        "soon": "upcoming", "now": "ongoing", "done": "past", "done-quiet": "past", "undated": "upcoming"}
    links = {slug: (f["properties"]["join_url"], f["properties"]["restitution_url"])
             for slug, f in features.items()}
    assert links == {"soon": ("http://localhost/e/soon", None), "now": ("http://localhost/e/now", None),
                     "done": (None, "http://localhost/r/done"), "done-quiet": (None, None),
                     "undated": ("http://localhost/e/undated", None)}
    assert [f["properties"]["slug"] for f in response.json["features"]][:4] == [
        "done-quiet", "done", "now", "soon"]  # in date order, the undated last


def test_each_event_is_placed_inside_its_zone(client, events):
    features = by_slug(client.get("/api/events").json)
    lon, lat = features["done"]["geometry"]["coordinates"]
    inside_hook = (5.90 <= lon <= 5.91 and 45.50 <= lat <= 45.56) or (45.50 <= lat <= 45.51) \
        or (45.55 <= lat <= 45.56)
    assert inside_hook, (lon, lat)
    lon, lat = features["soon"]["geometry"]["coordinates"]
    assert 5.915 <= lon <= 5.930 and 45.560 <= lat <= 45.570


def test_api_answers_an_empty_collection_when_nothing_is_listed(client):
    make_event("hidden", listed=False)
    response = client.get("/api/events")
    assert response.json == {"type": "FeatureCollection", "features": []}
    assert_conforms(response, "/api/events", "get")


def test_page_lists_upcoming_and_past_events_with_their_links(client, events):
    response = client.get("/events")
    assert response.status_code == 200
    page = unescape(response.get_data(as_text=True))
    upcoming = page[page.index('id="upcoming"'):page.index('id="past"')]
    past = page[page.index('id="past"'):]
    for name, link in (("Bientôt", "/e/soon"), ("Maintenant", "/e/now"), ("Sans date", "/e/undated")):
        assert name in upcoming and f'href="http://localhost{link}"' in upcoming
    assert "Terminée" in past and 'href="http://localhost/r/done"' in past
    assert "Sans restitution" in past and "Restitution pas encore publiée" in past
    assert past.index("Terminée") < past.index("Sans restitution")  # the latest first
    assert "Cachée" not in page
    assert "/vendor/leaflet/" in page and "unpkg" not in page and "cdn" not in page.lower()
    state = json.loads(unescape(re.search(r"data-state='([^']*)'", response.get_data(as_text=True)).group(1)))
    assert len(state["features"]) == 5
    assert state["messages"]["ev_join"] == "Rejoindre"


def test_page_says_so_when_there_is_no_event(client):
    page = unescape(client.get("/events?lang=en").get_data(as_text=True))
    assert "No upcoming party for now." in page and "No past party." in page


def test_event_names_are_shown_as_text(client):
    make_event("evil", name='<script>alert("x")</script>', starts_at=NOW + timedelta(days=1), listed=True)
    response = client.get("/events")
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    api = client.get("/api/events")
    assert api.json["features"][0]["properties"]["name"] == '<script>alert("x")</script>'


def test_an_event_is_not_listed_unless_asked(client):
    make_event("quiet", name="Discrète", starts_at=NOW + timedelta(days=1))
    assert client.get("/api/events").json["features"] == []
    assert "Discrète" not in client.get("/events").get_data(as_text=True)


def test_the_demo_event_is_listed(client):
    load_demo()
    assert [f["properties"]["slug"] for f in client.get("/api/events").json["features"]] == ["demo"]


def test_page_gives_dates_in_the_event_time_zone_and_the_reader_language(client):
    make_event("summer", name="En été", listed=True, starts_at=datetime(2027, 6, 12, 8, 0, tzinfo=UTC),
               ends_at=datetime(2027, 6, 12, 11, 30, tzinfo=UTC))
    when = re.compile(r'<span class="when">([^<]*)</span>')
    french = when.findall(client.get("/events").get_data(as_text=True))
    assert french == ["12 juin 2027, 10:00:00 – 12 juin 2027, 13:30:00"]  # Paris, summer time
    english = when.findall(unescape(client.get("/events?lang=en").get_data(as_text=True)))
    assert english == ["Jun 12, 2027, 10:00:00\u202fAM – Jun 12, 2027, 1:30:00\u202fPM"]
