import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime
from html import unescape

import folium.folium
import pytest
from conftest import make_event

from cartoparty.i18n import CATALOGS
from cartoparty.presets import ICON_DIR, LIMITS, PRESET_DIR, PresetError, load
from cartoparty.walker import LEAFLET_FILES, LEAFLET_VERSION, WALKER_ASSETS, asset_version


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
    texts = [text for catalog in CATALOGS.values() for message in catalog.values()
             for text in (message.values() if isinstance(message, dict) else [message])]
    assert all(text.strip() for text in texts)


@pytest.mark.parametrize("key", ["n_waiting", "n_refused"])
def test_counts_in_the_sync_state_have_plural_forms(key):
    assert set(CATALOGS["fr"][key]) == set(CATALOGS["en"][key]) == {"one", "other"}


def test_walker_page_fills_the_licence_into_its_texts(client, event):
    page = client.get("/e/party?lang=fr").get_data(as_text=True)
    html = unescape(re.sub(r"data-state='[^']*'", "", page))  # the catalog itself has {licence}
    assert "{licence}" not in html
    assert "la licence de l'événement (ODbL-1.0)" in html


def test_walker_page_takes_the_server_limits(client, event):
    response = client.get("/e/party")
    assert page_state(response)["event"]["limits"] == LIMITS
    assert f'<textarea id="note" maxlength="{LIMITS["note_length"]}"' in response.get_data(as_text=True)


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
    assert {"/static/walker/outbox.js", "/static/walker/i18n.js", "/static/walker/points.js"} <= set(shell)
    assert {f"/static/icons/{preset}.svg" for preset in load()} <= set(shell)
    assert not any("tile" in url for url in shell)


@pytest.mark.parametrize("preset", sorted(load()))
def test_every_preset_has_a_small_drawn_icon(preset):
    path = ICON_DIR / f"{preset}.svg"
    assert path.stat().st_size < 1024
    root = ET.fromstring(path.read_text(encoding="utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")
    # Drawn shapes only: nothing that runs, nothing fetched, no text needing a font.
    tags = {node.tag.split("}")[1] for node in root.iter()}
    assert not tags & {"script", "image", "use", "text", "foreignObject"}


def test_a_preset_without_its_icon_stops_the_app(tmp_path):
    shutil.copy(PRESET_DIR / "bench.json", tmp_path)
    (tmp_path / "icons").mkdir()
    with pytest.raises(PresetError, match=r"^bench\.json: .*icons/bench\.svg is missing"):
        load(tmp_path, icon_dir=tmp_path / "icons")
    shutil.copy(ICON_DIR / "bench.svg", tmp_path / "icons")
    assert list(load(tmp_path, icon_dir=tmp_path / "icons")) == ["bench"]


def test_a_changed_icon_makes_phones_fetch_the_app_again(app, tmp_path):
    static = tmp_path / "static"
    for name in WALKER_ASSETS:
        (static / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(app.static_folder + "/" + name, static / name)
    shutil.copytree(ICON_DIR, static / "icons")
    before = asset_version(static)
    (static / "icons" / "tree.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    assert asset_version(static) != before


def notice_text(html, element_id):
    """The text of the join page's element `element_id`, its markup as sent (not unescaped)."""
    return re.search(rf'<li id="{element_id}">(.*?)</li>', html, re.S).group(1)


@pytest.mark.parametrize(("ends_at", "day"), [
    ("2026-06-13T16:00:00+00:00", "13 juillet 2026"),
    # 23:30 in Paris: the hourly task may erase after midnight, so the notice says the next day.
    ("2026-06-13T21:30:00+00:00", "14 juillet 2026"),
])
def test_join_page_says_by_when_personal_data_is_erased(client, ends_at, day):
    make_event("kept", starts_at=datetime.fromisoformat("2026-06-13T08:00:00+00:00"),
               ends_at=datetime.fromisoformat(ends_at), retention_days=30)
    html = client.get("/e/kept?lang=fr").get_data(as_text=True)
    assert f"au plus tard le {day}, 30 jours après" in unescape(notice_text(html, "privacy-kept"))
    assert "contributions anonymes" in unescape(notice_text(html, "privacy-kept"))


def test_join_page_counts_retention_from_the_start_without_an_end(client):
    make_event("started", starts_at=datetime.fromisoformat("2026-06-13T08:00:00+00:00"),
               retention_days=1)
    html = client.get("/e/started?lang=en").get_data(as_text=True)
    assert "by June 14, 2026, 1 day after the event" in unescape(notice_text(html, "privacy-kept"))


def test_join_page_names_the_organisers_when_the_event_has_no_contact(client, event):
    html = client.get("/e/party?lang=fr").get_data(as_text=True)
    assert unescape(notice_text(html, "privacy-contact")) == (
        "Contact pour vos données : les organisateurs de l'événement.")


def test_join_page_shows_the_event_contact_escaped(client):
    make_event("contact", privacy_contact='<img src=x onerror=alert(1)> "dpo@example.org"')
    html = client.get("/e/contact?lang=en").get_data(as_text=True)
    contact = notice_text(html, "privacy-contact")
    assert "<img" not in html
    assert contact == ("Contact about your data: &lt;img src=x onerror=alert(1)&gt; "
                       "&#34;dpo@example.org&#34;.")


def test_join_page_names_the_map_tile_server(app, client, event, monkeypatch):
    monkeypatch.setitem(app.config, "TILE_URL", "https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    html = unescape(client.get("/e/party?lang=en").get_data(as_text=True))
    assert "The map's images come from tiles.example.org, which sees your IP address" in html
