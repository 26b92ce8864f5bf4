import json
import re
from html import unescape

import folium.folium
import pytest
from conftest import make_event

from cartoparty.i18n import CATALOGS
from cartoparty.walker import LEAFLET_FILES, LEAFLET_VERSION


def page_state(response):
    match = re.search(r"data-state='([^']*)'", response.get_data(as_text=True))
    return json.loads(unescape(match.group(1)))


def test_walker_page_carries_the_event_and_its_presets(client, event):
    response = client.get("/e/party", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert response.status_code == 200
    state = page_state(response)
    assert state["event"]["slug"] == "party"
    assert [p["id"] for p in state["event"]["presets"]] == ["tree", "bench", "defibrillator"]
    assert state["lang"] == "fr"
    assert state["messages"]["add_point"] == "Ajouter un point"
    assert "tile.openstreetmap.org" in state["tiles"]["url"]
    assert "OpenStreetMap" in state["tiles"]["attribution"]
    assert "ODbL" in response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "accept", "lang"), [
    ("", "en-GB,en;q=0.9", "en"), ("", "de-DE", "fr"), ("?lang=en", "fr-FR", "en"),
    ("?lang=xx", "en", "en"),
])
def test_language_comes_from_the_choice_then_the_browser(client, event, query, accept, lang):
    response = client.get(f"/e/party{query}", headers={"Accept-Language": accept})
    assert page_state(response)["lang"] == lang
    assert f'<html lang="{lang}">' in response.get_data(as_text=True)


def test_chosen_language_is_remembered(client, event):
    client.get("/e/party?lang=en")
    response = client.get("/e/party", headers={"Accept-Language": "fr"})
    assert page_state(response)["lang"] == "en"


def test_every_message_is_translated():
    assert set(CATALOGS["fr"]) == set(CATALOGS["en"])
    assert all(value.strip() for catalog in CATALOGS.values() for value in catalog.values())


def test_what_organisers_typed_is_escaped_in_the_page(client):
    make_event("xss", name="<script>alert(1)</script>", description="<img src=x onerror=alert(2)>")
    html = client.get("/e/xss").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert page_state(client.get("/e/xss"))["event"]["name"] == "<script>alert(1)</script>"


def test_unknown_event_page_is_a_404_page(client):
    response = client.get("/e/nowhere")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "nowhere" in response.get_data(as_text=True)


def test_leaflet_is_served_by_the_app_in_the_version_folium_pins():
    pinned = dict(folium.folium._default_js)["leaflet"]
    assert f"leaflet@{LEAFLET_VERSION}/" in pinned


@pytest.mark.parametrize("name", LEAFLET_FILES)
def test_leaflet_files_are_served(client, name):
    response = client.get(f"/vendor/leaflet/{LEAFLET_VERSION}/{name}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("public, max-age=")


@pytest.mark.parametrize("path", [f"/vendor/leaflet/{LEAFLET_VERSION}/../../../etc/passwd",
                                  f"/vendor/leaflet/{LEAFLET_VERSION}/leaflet-src.js.map",
                                  "/vendor/leaflet/0.7/leaflet.js"])
def test_nothing_else_is_served_from_vendor(client, path):
    assert client.get(path).status_code == 404


def test_service_worker_keeps_the_app_shell(client, app):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    assert app.config["ASSET_VERSION"] in body
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", body).group(1))
    for url in shell:
        assert client.get(url).status_code == 200, url
    assert "/static/walker/outbox.js" in shell
    assert not any("tile" in url for url in shell)
