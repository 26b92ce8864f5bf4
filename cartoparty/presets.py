"""Presets: the kinds of feature walkers can record, kept as JSON files in presets/.

Each file is checked against preset.schema.json when the app starts; a broken
file stops the app with a message naming the file and the field.
"""

import json
import re
from pathlib import Path

import jsonschema
from flask import current_app

from .errors import Invalid

PRESET_DIR = Path(__file__).parent / "presets"
# One SVG per preset, static/icons/<id>.svg, drawn for the walker's buttons and markers.
ICON_DIR = Path(__file__).parent.parent / "static" / "icons"
SCHEMA = json.loads((Path(__file__).parent / "preset.schema.json").read_text())
KEY_PATTERN = re.compile(SCHEMA["$defs"]["osm_key"]["pattern"])
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# What a submission may hold; the walker's page checks the same limits before saving (it gets
# them with the event), the server checks them again.
LIMITS = {"tags": 100, "key_length": 255, "value_length": 255, "note_length": 2000,
          "key_pattern": KEY_PATTERN.pattern, "number_pattern": NUMBER.pattern}


class PresetError(Exception):
    """A preset file is not valid; the message names the file and the field."""


def _field_path(error):
    return "/".join(str(part) for part in error.absolute_path) or "(top level)"


def _check_icon(path, preset, icon_dir):
    """Every preset has its drawn icon: phones may lack an emoji font."""
    icon = Path(icon_dir) / f"{preset['id']}.svg"
    if not icon.is_file():
        raise PresetError(f"{path.name}: field id: the icon file {icon} is missing")


def load(directory=PRESET_DIR, icon_dir=ICON_DIR):
    """Read and check every preset file, and that each has its icon in `icon_dir`; return
    them by id, in file-name order."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    presets = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            preset = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PresetError(f"{path.name}: not valid JSON ({error})") from None
        error = jsonschema.exceptions.best_match(validator.iter_errors(preset))
        if error is not None:
            raise PresetError(f"{path.name}: field {_field_path(error)}: {error.message}")
        if preset["id"] != path.stem:
            raise PresetError(f"{path.name}: field id: {preset['id']!r} must match the file name")
        keys = [field["key"] for field in preset["fields"]]
        for key in keys:
            if keys.count(key) > 1:
                raise PresetError(f"{path.name}: field fields: key {key!r} is asked twice")
        _check_icon(path, preset, icon_dir)
        presets[preset["id"]] = preset
    if not presets:
        raise PresetError(f"no preset files in {directory}")
    return presets


def all_presets():
    """The app's presets by id."""
    return current_app.extensions["cartoparty.presets"]


def _check_value(field, key, value):
    """Raise Invalid when a value does not fit its preset field."""
    kind, where = field["type"], f"tags.{key}"
    if kind == "yes-no" and value not in ("yes", "no"):
        raise Invalid("tag_not_yes_no", field=where, key=key)
    options = [option["value"] for option in field.get("options", [])]
    if kind == "select" and value not in options:
        raise Invalid("tag_not_option", field=where, key=key, options=", ".join(options))
    if kind == "number":
        if not NUMBER.fullmatch(value):
            raise Invalid("tag_not_number", field=where, key=key)
        number = float(value)
        if "min" in field and number < field["min"] or "max" in field and number > field["max"]:
            raise Invalid("tag_out_of_range", field=where, key=key, min=field.get("min", "-∞"),
                          max=field.get("max", "∞"))


def check_tags(preset, tags):
    """The OSM tags to store for a submission of `preset`: the walker's, checked, plus the
    preset's identifying tags. Raises Invalid naming the first bad tag."""
    if not isinstance(tags, dict):
        raise Invalid("tags_not_object", field="tags")
    if len(tags) > LIMITS["tags"]:
        raise Invalid("too_many_tags", field="tags", max=LIMITS["tags"])
    fields = {field["key"]: field for field in preset["fields"]}
    checked = {}
    for key, value in tags.items():
        if not (isinstance(key, str) and len(key) <= LIMITS["key_length"]
                and KEY_PATTERN.fullmatch(key)):
            raise Invalid("tag_key_invalid", field=f"tags.{str(key)[:60]}",
                          max=LIMITS["key_length"])
        if not isinstance(value, str) or not value.strip() or len(value) > LIMITS["value_length"]:
            raise Invalid("tag_value_invalid", field=f"tags.{key}", key=key,
                          max=LIMITS["value_length"])
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise Invalid("tag_control_characters", field=f"tags.{key}", key=key)
        value = value.strip()
        if key in preset["tags"] and value != preset["tags"][key]:
            raise Invalid("tag_fixed_by_preset", field=f"tags.{key}", key=key,
                          value=preset["tags"][key], preset=preset["id"])
        if key in fields:
            _check_value(fields[key], key, value)
        checked[key] = value
    for field in preset["fields"]:
        if field.get("required") and field["key"] not in checked:
            raise Invalid("tag_required", field=f"tags.{field['key']}", key=field["key"])
    return {**checked, **preset["tags"]}
