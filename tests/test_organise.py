import io
import json
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from conftest import ZONE, make_event
from flask import g
from PIL import Image

from cartoparty.extensions import db
from cartoparty.i18n import translate
from cartoparty.models import Event, Participant, Team

SECTOR = {"type": "Polygon", "coordinates": [[
    [5.916, 45.561], [5.920, 45.561], [5.920, 45.565], [5.916, 45.565], [5.916, 45.561]]]}
# What two taps on the map then "Finish" give (static/organise/draw.js): a ring of 2 corners.
TWO_CORNERS = {"type": "Polygon", "coordinates": [[[5.916, 45.561], [5.920, 45.565], [5.916, 45.561]]]}


def says(response, code, lang="fr"):
    """Whether the page shows the catalog's text of the error `code` (its fixed parts: the
    parameters vary)."""
    page = unescape(response.get_data(as_text=True))
    parts = re.split(r"\{[a-z_]+\}", translate(lang, f"error.{code}"))
    return all(part.strip() in page for part in parts if part.strip())


def csrf(client, path):
    g.pop("csrf_token", None)
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def new_event_form(client, **values):
    form = {"csrf_token": csrf(client, "/organise/new"), "name": "Bissy à pied", "slug": "bissy",
            "description": "Arbres et bancs", "starts_at": "2026-06-13T10:00",
            "ends_at": "2026-06-13T13:00", "licence": "ODbL-1.0", "zone": json.dumps(ZONE),
            "presets": ["tree", "bench"]}
    form.update(values)
    return client.post("/organise/new", data=form)


def test_home_lists_only_the_organisers_events(client, organiser):
    make_event("someone-else", name="Not mine")
    page = client.get("/organise").get_data(as_text=True)
    assert "Cartopartie du quartier" in page
    assert "Not mine" not in page


def test_organiser_creates_an_event_with_a_drawn_zone(client, organiser):
    response = new_event_form(client)
    assert response.status_code == 302
    assert response.location == "/organise/bissy/settings"
    event = db.session.scalar(db.select(Event).filter_by(slug="bissy"))
    assert event.presets == ["tree", "bench"]
    assert event.is_organised_by(organiser)
    assert event.starts_at.utcoffset().total_seconds() == 7200  # Europe/Paris in June
    assert db.session.scalar(db.select(db.func.ST_Area(Event.zone)).filter_by(slug="bissy")) > 0


def test_zone_can_come_from_an_uploaded_geojson_file(client, organiser):
    upload = (io.BytesIO(json.dumps({"type": "Feature", "geometry": ZONE}).encode()), "zone.geojson")
    response = new_event_form(client, zone="", zone_file=upload)
    assert response.status_code == 302


@pytest.mark.parametrize(("values", "code"), [
    ({"zone": ""}, "zone_missing"),
    ({"zone": '{"type": "Polygon", "coordinates": [[[0,0],[1,1],[1,0],[0,1],[0,0]]]}'}, "zone_invalid"),
    ({"zone": json.dumps(TWO_CORNERS)}, "zone_corners"),
    ({"slug": "Bad Slug"}, "slug_format"),
    ({"slug": "party"}, "slug_taken"),
    ({"presets": []}, "no_presets_chosen"),
    ({"name": ""}, "event_name_length"),
    ({"ends_at": "2026-06-12T10:00"}, "ends_before_start"),
    ({"starts_at": "tomorrow"}, "not_a_time"),
    ({"radius_tree": "0"}, "match_radius"),
    ({"radius_bench": "501"}, "match_radius"),
    ({"radius_tree": "four"}, "match_radius"),
])
def test_bad_event_forms_say_what_is_wrong_and_create_nothing(client, organiser, values, code):
    response = new_event_form(client, **values)
    assert response.status_code == 422
    assert says(response, code)
    assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 1


def test_an_event_sets_its_own_matching_radius_per_preset(client, organiser):
    assert new_event_form(client, radius_tree="3,5", radius_bench="").status_code == 302
    event = db.session.scalar(db.select(Event).filter_by(slug="bissy"))
    assert event.match_radii == {"tree": 3.5}  # the bench keeps its preset's own
    page = client.get("/organise/bissy/settings").get_data(as_text=True)
    assert 'name="radius_tree"' in page and 'value="3.5"' in page


def test_a_taken_address_is_said_in_english_too(client, organiser):
    form = {"csrf_token": csrf(client, "/organise/new"), "name": "Bissy", "slug": "party",
            "zone": json.dumps(ZONE), "presets": ["tree"]}
    response = client.post("/organise/new?lang=en", data=form)
    assert response.status_code == 422
    assert "An event already has this short address" in unescape(response.get_data(as_text=True))


def listed_slugs(client):
    """The slugs on the public map of events, as its page and its GeoJSON give them."""
    api = {feature["properties"]["slug"] for feature in client.get("/api/events").json["features"]}
    page = set(re.findall(r'<li data-slug="([^"]+)"', client.get("/events").get_data(as_text=True)))
    assert api == page
    return api


def test_a_new_event_is_not_public_until_its_organiser_lists_it(client, organiser):
    assert new_event_form(client).status_code == 302
    event = db.session.scalar(db.select(Event).filter_by(slug="bissy"))
    assert event.listed is False
    assert "bissy" not in listed_slugs(client)
    settings = client.get("/organise/bissy/settings").get_data(as_text=True)
    assert re.search(r'<input type="checkbox" name="listed"[^>]*>', settings).group(0).count("checked") == 0

    form = {"csrf_token": csrf(client, "/organise/bissy/settings"), "name": "Bissy à pied",
            "presets": ["tree"], "zone": "", "listed": "on"}
    assert client.post("/organise/bissy/settings", data=form).status_code == 302
    assert "bissy" in listed_slugs(client)
    settings = client.get("/organise/bissy/settings").get_data(as_text=True)
    assert "checked" in re.search(r'<input type="checkbox" name="listed"[^>]*>', settings).group(0)

    # The restitution page's switch still takes it off the map, and back.
    token = csrf(client, "/organise/bissy/restitution")
    client.post("/organise/bissy/restitution", data={"csrf_token": token, "action": "unlist"})
    assert "bissy" not in listed_slugs(client)


def test_an_event_created_with_the_box_ticked_is_listed(client, organiser):
    assert new_event_form(client, listed="on").status_code == 302
    assert "bissy" in listed_slugs(client)


def test_home_shows_times_in_the_event_time_zone(client, organiser):
    event = db.session.scalar(db.select(Event).filter_by(slug="party"))
    event.starts_at = datetime(2026, 6, 13, 8, 0, tzinfo=UTC)  # 10:00 in Paris (summer time)
    db.session.commit()
    page = client.get("/organise").get_data(as_text=True)
    assert re.findall(r"<time [^>]*>([^<]*)</time>", page) == ["13 juin 2026, 10:00:00"]
    assert "· 0 point</span>" in page  # a count in words, singular in French
    english = client.get("/organise?lang=en").get_data(as_text=True)
    assert re.findall(r"<time [^>]*>([^<]*)</time>", english) == ["Jun 13, 2026, 10:00:00\u202fAM"]


def test_organiser_edits_the_event(client, organiser):
    form = {"csrf_token": csrf(client, "/organise/party/settings"), "name": "Nouveau nom",
            "description": "", "presets": ["tree"], "zone": ""}
    response = client.post("/organise/party/settings", data=form)
    assert response.status_code == 302
    event = db.session.scalar(db.select(Event).filter_by(slug="party"))
    assert (event.name, event.presets) == ("Nouveau nom", ["tree"])


def add_team(client, **values):
    form = {"csrf_token": csrf(client, "/organise/party/settings"), "name": "Les arbres",
            "presets": ["tree"], "sector": json.dumps(SECTOR)}
    form.update(values)
    return client.post("/organise/party/teams", data=form)


def test_teams_with_theme_sector_and_their_own_join_link(client, organiser):
    assert add_team(client).status_code == 302
    assert add_team(client, name="Les bancs", presets=["bench"], sector="").status_code == 302
    teams = db.session.scalars(db.select(Team).order_by(Team.name)).all()
    assert [(t.name, t.presets, t.sector is not None) for t in teams] == [
        ("Les arbres", ["tree"], True), ("Les bancs", ["bench"], False)]
    page = client.get("/organise/party/settings").get_data(as_text=True)
    assert f"/e/party?team={teams[0].join_code}" in page

    walker_page = client.get(f"/e/party?team={teams[0].join_code}").get_data(as_text=True)
    assert "Les arbres" in walker_page
    joined = client.post("/api/events/party/participants", json={
        "pseudonym": "Noor", "consent": True, "team": teams[0].join_code})
    assert joined.status_code == 201
    assert joined.json["team"]["presets"] == ["tree"]
    assert joined.json["team"]["sector"]["type"] == "MultiPolygon"
    assert db.session.scalar(db.select(Participant.team_id)) == teams[0].id


def test_sector_outside_the_zone_and_duplicate_names_are_refused(client, organiser):
    far = {"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.8]]]}
    response = add_team(client, sector=json.dumps(far))
    assert response.status_code == 422
    assert says(response, "sector_outside_zone")
    add_team(client)
    taken = add_team(client)
    assert taken.status_code == 422
    assert "Une équipe s'appelle déjà « Les arbres »" in unescape(taken.get_data(as_text=True))
    assert db.session.scalar(db.select(db.func.count()).select_from(Team)) == 1


def team_count():
    return db.session.scalar(db.select(db.func.count()).select_from(Team))


@pytest.mark.parametrize("sector", [
    TWO_CORNERS,
    {"type": "Feature", "geometry": TWO_CORNERS},
    {"type": "MultiPolygon", "coordinates": [SECTOR["coordinates"], TWO_CORNERS["coordinates"]]},
    {"type": "Polygon", "coordinates": [[[5.916, 45.561], [5.916, 45.561]]]},  # one tap
])
def test_a_sector_of_fewer_than_three_corners_is_refused(client, organiser, sector):
    response = add_team(client, sector=json.dumps(sector))
    assert response.status_code == 422
    assert "Un secteur a au moins 3 coins" in unescape(response.get_data(as_text=True))
    assert team_count() == 0


def test_an_uploaded_sector_of_two_corners_is_refused_in_english_too(client, organiser):
    upload = (io.BytesIO(json.dumps(TWO_CORNERS).encode()), "sector.geojson")
    form = {"csrf_token": csrf(client, "/organise/party/settings"), "name": "Les arbres",
            "sector": "", "sector_file": upload}
    response = client.post("/organise/party/teams?lang=en", data=form)
    assert response.status_code == 422
    assert "A sector has at least 3 corners" in unescape(response.get_data(as_text=True))
    assert team_count() == 0


def test_join_with_a_team_code_of_another_event_is_refused(client, organiser):
    add_team(client)
    make_event("other")
    code = db.session.scalar(db.select(Team.join_code))
    response = client.post("/api/events/other/participants",
                           json={"pseudonym": "Noor", "consent": True, "team": code})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "team"


def test_team_can_be_deleted_and_its_walkers_stay(client, organiser):
    add_team(client)
    team = db.session.scalar(db.select(Team))
    client.post("/api/events/party/participants",
                json={"pseudonym": "Noor", "consent": True, "team": team.join_code})
    token = csrf(client, "/organise/party/settings")
    assert client.post(f"/organise/party/teams/{team.id}/delete",
                       data={"csrf_token": token, "confirm": "yes"}).status_code == 302
    assert team_count() == 0
    assert db.session.scalar(db.select(Participant.team_id)) is None


@pytest.mark.parametrize("confirm", [None, "", "no", "on"])
def test_a_team_is_not_deleted_without_confirmation(client, organiser, confirm):
    add_team(client)
    team = db.session.scalar(db.select(Team))
    form = {"csrf_token": csrf(client, "/organise/party/settings")}
    if confirm is not None:
        form["confirm"] = confirm
    response = client.post(f"/organise/party/teams/{team.id}/delete", data=form)
    assert response.status_code == 422
    assert "L'équipe « Les arbres » n'est pas supprimée" in unescape(response.get_data(as_text=True))
    assert team_count() == 1


def test_the_settings_page_asks_before_deleting_a_team(client, organiser):
    add_team(client)
    page = unescape(client.get("/organise/party/settings").get_data(as_text=True))
    step = page[page.index('<details class="confirm-delete">'):]
    step = step[:step.index("</details>")]
    assert "Supprimer l'équipe « Les arbres » ?" in step
    assert '<button type="submit" name="confirm" value="yes"' in step


def test_qr_codes_for_the_event_and_each_team(client, organiser):
    add_team(client)
    team = db.session.scalar(db.select(Team))
    png = client.get("/organise/party/qr.png")
    assert png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size[0] >= 300
    svg = client.get(f"/organise/party/teams/{team.id}/qr.svg")
    assert svg.mimetype == "image/svg+xml"
    assert f"/e/party?team={team.join_code}" in svg.get_data(as_text=True)
    sheet = client.get("/organise/party/print").get_data(as_text=True)
    assert sheet.count('class="qr-card"') == 2
    assert client.get("/organise/party/teams/999/qr.png").status_code == 404


def test_what_organisers_typed_is_escaped(client, organiser):
    add_team(client, name="<script>alert(1)</script>")
    page = client.get("/organise/party/settings").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_forms_without_csrf_token_are_refused(client, organiser):
    response = client.post("/organise/party/teams", data={"name": "x"})
    assert response.status_code == 400
    assert db.session.scalar(db.select(db.func.count()).select_from(Team)) == 0


def settings_form(client, **values):
    form = {"csrf_token": csrf(client, "/organise/party/settings"), "name": "Cartopartie",
            "presets": ["tree"], "zone": "", **values}
    return client.post("/organise/party/settings", data=form)


def test_organiser_sets_the_retention_period_and_the_privacy_contact(client, organiser):
    page = client.get("/organise/party/settings").get_data(as_text=True)
    assert re.search(r'<input id="retention_days"[^>]*value="90"', page)  # the default
    contact = '<b>Mairie</b>, 1 place de l\'Hôtel de Ville'
    response = settings_form(client, retention_days="30", privacy_contact=f"  {contact} ")
    assert response.status_code == 302
    event = db.session.scalar(db.select(Event).filter_by(slug="party"))
    assert (event.retention_days, event.privacy_contact) == (30, contact)
    page = client.get("/organise/party/settings").get_data(as_text=True)
    assert "&lt;b&gt;Mairie&lt;/b&gt;" in page and "<b>Mairie" not in page
    assert re.search(r'<input id="retention_days"[^>]*value="30"', page)


def test_an_empty_retention_period_is_the_default(client, organiser):
    assert settings_form(client, retention_days="", privacy_contact="").status_code == 302
    assert db.session.scalar(db.select(Event.retention_days).filter_by(slug="party")) == 90


@pytest.mark.parametrize(("values", "code"), [
    ({"retention_days": "0"}, "retention_days_range"),
    ({"retention_days": "3651"}, "retention_days_range"),
    ({"retention_days": "three months"}, "retention_days_range"),
    ({"retention_days": "1.5"}, "retention_days_range"),
    ({"privacy_contact": "x" * 201}, "privacy_contact_too_long"),
    ({"privacy_contact": "dpo@example.org\u202e"}, "text_bidi_control"),
])
def test_bad_privacy_settings_are_refused_and_change_nothing(client, organiser, values, code):
    response = settings_form(client, **values)
    assert response.status_code == 422
    assert says(response, code)
    event = db.session.scalar(db.select(Event).filter_by(slug="party"))
    assert (event.retention_days, event.privacy_contact, event.name) == (90, "", "Cartopartie du quartier")


def test_a_new_event_takes_its_privacy_settings_from_the_form(client, organiser):
    assert new_event_form(client, retention_days="365", privacy_contact="dpo@example.org").status_code == 302
    event = db.session.scalar(db.select(Event).filter_by(slug="bissy"))
    assert (event.retention_days, event.privacy_contact) == (365, "dpo@example.org")
