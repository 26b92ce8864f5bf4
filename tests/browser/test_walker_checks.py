"""Checks where the walker stands: what the server would refuse is refused in the form, in the
walker's language, with the server's rules and texts, before anything goes into the outbox."""

import json
import shutil

import pytest
from conftest import ZONE
from playwright.sync_api import expect

from cartoparty import create_app
from cartoparty.errors import Invalid
from cartoparty.extensions import db, upgrade_schema
from cartoparty.i18n import translate
from cartoparty.models import Team
from cartoparty.presets import LIMITS, PRESET_DIR, check_tags
from cartoparty.zones import read_zone

from .test_walker import ALL_SENT, join, outbox_count, submissions

WHERE = "Où se trouve-t-il exactement ?"
# The west half of the event's zone (tests/conftest.py ZONE: 5.915-5.930 E, 45.560-45.570 N).
WEST_HALF = {"type": "Polygon", "coordinates": [[
    [5.915, 45.560], [5.9225, 45.560], [5.9225, 45.570], [5.915, 45.570], [5.915, 45.560]]]}


@pytest.fixture(scope="module")
def app(database_url, tmp_path_factory):
    """The app with the shipped presets, except that the defibrillator's location is required."""
    presets = tmp_path_factory.mktemp("presets")
    for path in PRESET_DIR.glob("*.json"):
        shutil.copy(path, presets)
    defibrillator = json.loads((presets / "defibrillator.json").read_text(encoding="utf-8"))
    for field in defibrillator["fields"]:
        field["required"] = field["key"] == "defibrillator:location"
    (presets / "defibrillator.json").write_text(json.dumps(defibrillator), encoding="utf-8")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      "PHOTO_DIR": str(tmp_path_factory.mktemp("photos")), "PRESET_DIR": presets})
    with app.app_context():
        upgrade_schema()
    return app


def open_form(phone, preset):
    phone.get_by_role("button", name="Ajouter un point").click()
    phone.locator(f'[data-preset="{preset}"]').click()


def save(phone):
    phone.get_by_role("button", name="Enregistrer").click()


def nothing_was_saved(app, phone, event):
    expect(phone.locator("#sheet")).to_be_visible()
    assert outbox_count(phone) == 0
    assert submissions(app, event) == []


def test_a_point_outside_the_zone_is_refused_in_french_before_it_is_saved(app, phone, committed_event):
    phone.context.set_geolocation({"latitude": 45.575, "longitude": 5.92, "accuracy": 8})
    join(phone)
    open_form(phone, "tree")
    save(phone)
    expect(phone.locator("#position-error")).to_have_text(translate("fr", "error.outside_zone"))
    expect(phone.locator("#position-error")).to_be_in_viewport()
    nothing_was_saved(app, phone, committed_event)


def test_a_number_out_of_bounds_is_refused_in_french_beside_its_question(app, phone, committed_event):
    join(phone)
    open_form(phone, "tree")
    height = phone.get_by_label("Hauteur (estimation)", exact=True)
    height.fill("200")
    save(phone)
    expect(phone.locator('[data-error-for="height"]')).to_have_text(translate(
        "fr", "error.tag_out_of_range", key="Hauteur (estimation)", min=0, max=150))
    expect(height).to_have_attribute("aria-invalid", "true")
    nothing_was_saved(app, phone, committed_event)

    height.fill("12")
    save(phone)
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    assert [row.tags["height"] for row in submissions(app, committed_event)] == ["12"]


def test_a_required_question_left_unanswered_is_refused_in_french(app, phone, committed_event):
    join(phone)
    open_form(phone, "defibrillator")
    save(phone)
    expect(phone.locator('[data-error-for="defibrillator:location"]')).to_have_text(
        translate("fr", "error.tag_required", key=WHERE))
    nothing_was_saved(app, phone, committed_event)

    phone.get_by_label(WHERE, exact=True).fill("Dans le hall")
    save(phone)
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    assert [row.tags["defibrillator:location"] for row in submissions(app, committed_event)] \
        == ["Dans le hall"]


@pytest.fixture
def west_team(app, committed_event):
    """A team of the event whose sector is the zone's west half; deleted with the event."""
    with app.app_context():
        team = Team(event_id=committed_event.id, name="Ouest", presets=[],
                    sector=read_zone(WEST_HALF))
        db.session.add(team)
        db.session.commit()
        return team.join_code


def test_a_point_outside_the_team_sector_is_only_a_warning(app, phone, committed_event, west_team):
    phone.context.set_geolocation({"latitude": 45.565, "longitude": 5.927, "accuracy": 8})
    join(phone, path=f"/e/walk?team={west_team}")
    open_form(phone, "bench")
    expect(phone.locator("#accuracy-warning")).to_be_hidden()  # placed at the GPS fix
    expect(phone.locator("#sector-warning")).to_have_text(translate("fr", "outside_sector"))
    save(phone)
    expect(phone.locator("#sheet")).to_be_hidden()
    expect(phone.locator("#sync")).to_have_text(ALL_SENT)
    assert len(submissions(app, committed_event)) == 1

    phone.context.set_geolocation({"latitude": 45.565, "longitude": 5.918, "accuracy": 8})
    phone.reload()
    open_form(phone, "bench")
    expect(phone.locator("#accuracy-warning")).to_be_hidden()
    expect(phone.locator("#sector-warning")).to_be_hidden()


COVERS = [
    ("inside", [5.92, 45.565], True),
    ("outside", [5.94, 45.565], False),
    ("on an edge", [5.92, 45.56], True),
    ("on a corner", [5.93, 45.57], True),
    ("in a hole", [5.9225, 45.565], False),
    ("on a hole's edge", [5.921, 45.565], True),
    ("in a multipolygon's second part", [5.95, 45.565], True),
]
HOLED = {"type": "MultiPolygon", "coordinates": [
    [ZONE["coordinates"][0],
     [[5.921, 45.564], [5.924, 45.564], [5.924, 45.566], [5.921, 45.566], [5.921, 45.564]]],
    [[[5.945, 45.56], [5.955, 45.56], [5.955, 45.57], [5.945, 45.57], [5.945, 45.56]]],
]}


def test_zone_check_counts_the_boundary_as_inside_as_the_server_does(app, phone, committed_event):
    phone.goto("/e/walk")
    found = phone.evaluate("""async ([zone, cases]) => {
        const { covers } = await import("/static/walker/map.js");
        return cases.map(([, [lon, lat]]) => covers(zone, lat, lon));
    }""", [HOLED, COVERS])
    with app.app_context():
        on_server = [db.session.scalar(db.select(db.func.ST_Covers(
            db.func.ST_GeomFromGeoJSON(json.dumps(HOLED)),
            db.func.ST_SetSRID(db.func.ST_MakePoint(*where), 4326)))) for _, where, _ in COVERS]
    assert found == on_server == [expected for *_, expected in COVERS]


TAG_CASES = [
    ("tree", {"species": "Tilia cordata", "height": "12.5"}),
    ("tree", {"height": "200"}),
    ("tree", {"height": "-1"}),
    ("tree", {"height": "1e3"}),
    ("tree", {"height": "tall"}),
    ("tree", {"leaf_type": "spiky"}),
    ("tree", {"natural": "wood"}),
    ("tree", {"bad key": "x"}),
    ("tree", {"k" * 256: "x"}),
    ("tree", {"species": "x" * 256}),
    ("tree", {"species": "é" * 255}),
    ("tree", {"species": ""}),
    ("tree", {"species": "line\nbreak"}),
    ("tree", {f"k{i}": "v" for i in range(101)}),
    ("bench", {"backrest": "maybe"}),
    ("defibrillator", {"indoor": "yes"}),
    ("defibrillator", {"defibrillator:location": "Dans le hall"}),
]


def server_code(preset, tags):
    try:
        check_tags(preset, tags)
    except Invalid as error:
        return error.code
    return None


def test_tag_checks_refuse_what_the_server_refuses(app, phone, committed_event):
    presets = app.extensions["cartoparty.presets"]
    phone.goto("/e/walk")
    found = phone.evaluate("""async ([cases, limits]) => {
        const { checkTags } = await import("/static/walker/form.js");
        return cases.map(([preset, tags]) => {
            const problems = checkTags(preset, tags, limits, "fr");
            return problems.length ? problems[0].code : null;
        });
    }""", [[[presets[preset], tags] for preset, tags in TAG_CASES], LIMITS])
    assert found == [server_code(presets[preset], tags) for preset, tags in TAG_CASES]
    assert found.count(None) == 3
