import json

import pytest
from conftest import a_submission

from cartoparty import create_app
from cartoparty.errors import Invalid
from cartoparty.presets import PRESET_DIR, PresetError, check_tags, load

REQUIRED = {"defibrillator", "tree", "bench", "drinking_water", "toilets", "waste_basket",
            "recycling", "post_box", "pharmacy", "bakery", "bicycle_parking"}


def test_shipped_presets_are_valid_and_complete():
    presets = load()
    assert REQUIRED <= set(presets)
    assert presets["defibrillator"]["tags"] == {"emergency": "defibrillator"}
    keys = {field["key"] for field in presets["defibrillator"]["fields"]}
    assert {"defibrillator:location", "indoor", "access", "opening_hours", "level", "phone",
            "operator"} <= keys
    tree_keys = {field["key"] for field in presets["tree"]["fields"]}
    assert {"species", "genus", "leaf_type", "leaf_cycle", "height", "circumference",
            "denotation"} <= tree_keys


def _write(directory, preset):
    (directory / f"{preset['id']}.json").write_text(json.dumps(preset), encoding="utf-8")


def _valid_preset():
    return json.loads((PRESET_DIR / "bench.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.pop("tags"), "field (top level): 'tags' is a required property"),
    (lambda p: p["name"].pop("fr"), "field name: 'fr' is a required property"),
    (lambda p: p.update(match_radius=-3), "field match_radius"),
    (lambda p: p["fields"][0].update(type="colour"), "field fields/0/type"),
    (lambda p: p["tags"].update({"bad key": "x"}), "field tags"),
    (lambda p: p["fields"].append(dict(p["fields"][0])), "is asked twice"),
    (lambda p: p["fields"][0].update(type="select"), "field fields/0"),
])
def test_broken_preset_is_refused_naming_file_and_field(tmp_path, change, message):
    preset = _valid_preset()
    change(preset)
    _write(tmp_path, preset)
    with pytest.raises(PresetError) as error:
        load(tmp_path)
    assert str(error.value).startswith("bench.json: ")
    assert message in str(error.value)


def test_preset_id_must_match_file_name(tmp_path):
    preset = _valid_preset()
    (tmp_path / "seat.json").write_text(json.dumps(preset))
    with pytest.raises(PresetError, match="seat.json: field id"):
        load(tmp_path)


def test_preset_that_is_not_json_is_refused(tmp_path):
    (tmp_path / "bench.json").write_text("{'id': 'bench'")
    with pytest.raises(PresetError, match="bench.json: not valid JSON"):
        load(tmp_path)


def test_app_does_not_start_with_a_broken_preset(tmp_path, database_url):
    preset = _valid_preset()
    preset["icon"] = ""
    _write(tmp_path, preset)
    with pytest.raises(PresetError, match="bench.json: field icon"):
        create_app({"PRESET_DIR": tmp_path, "SQLALCHEMY_DATABASE_URI": database_url})


def test_tags_keep_walker_values_and_add_identifying_tags():
    tree = load()["tree"]
    tags = check_tags(tree, {"species": " Tilia cordata ", "height": "12.5"})
    assert tags == {"species": "Tilia cordata", "height": "12.5", "natural": "tree"}


@pytest.mark.parametrize(("tags", "field"), [
    ({"height": "tall"}, "tags.height"),
    ({"height": "nan"}, "tags.height"),
    ({"leaf_type": "spiky"}, "tags.leaf_type"),
    ({"natural": "wood"}, "tags.natural"),
    ({"bad key": "x"}, "tags.bad key"),
    ({"note": "x" * 256}, "tags.note"),
    ({"note": ""}, "tags.note"),
    ({"note": 5}, "tags.note"),
    ({"note": "line\nbreak"}, "tags.note"),
    ({"k" * 256: "x"}, "tags." + "k" * 60),
    ({f"k{i}": "v" for i in range(101)}, "tags"),
    (["natural", "tree"], "tags"),
])
def test_bad_tags_are_refused_naming_the_tag(tags, field):
    with pytest.raises(Invalid) as error:
        check_tags(load()["tree"], tags)
    assert error.value.field == field


def test_presets_route_lists_every_preset(client):
    response = client.get("/api/presets")
    assert response.status_code == 200
    assert {preset["id"] for preset in response.json} >= REQUIRED
    assert a_submission()["preset"] in {preset["id"] for preset in response.json}
