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
SCHEMA = json.loads((Path(__file__).parent / "preset.schema.json").read_text())
KEY_PATTERN = re.compile(SCHEMA["$defs"]["osm_key"]["pattern"])
MAX_TAGS = 100
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class PresetError(Exception):
    """A preset file is not valid; the message names the file and the field."""


def _field_path(error):
    return "/".join(str(part) for part in error.absolute_path) or "(top level)"


def load(directory=PRESET_DIR):
    """Read and check every preset file; return them by id, in file-name order."""
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
        presets[preset["id"]] = preset
    if not presets:
        raise PresetError(f"no preset files in {directory}")
    return presets


def all_presets():
    """The app's presets by id."""
    return current_app.extensions["cartoparty.presets"]


def _check_value(field, value):
    """Why a value does not fit a preset field, or None when it does."""
    kind = field["type"]
    if kind == "yes-no" and value not in ("yes", "no"):
        return "must be 'yes' or 'no'"
    if kind == "select" and value not in [option["value"] for option in field["options"]]:
        return "must be one of " + ", ".join(option["value"] for option in field["options"])
    if kind == "number":
        if not NUMBER.fullmatch(value):
            return "must be a number such as 12 or 4.5"
        number = float(value)
        if "min" in field and number < field["min"] or "max" in field and number > field["max"]:
            return f"must be between {field.get('min', '-∞')} and {field.get('max', '∞')}"
    return None


def check_tags(preset, tags):
    """The OSM tags to store for a submission of `preset`: the walker's, checked, plus the
    preset's identifying tags. Raises Invalid naming the first bad tag."""
    if not isinstance(tags, dict):
        raise Invalid("tags must be an object of OSM keys to values", field="tags")
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags", field="tags")
    fields = {field["key"]: field for field in preset["fields"]}
    checked = {}
    for key, value in tags.items():
        if not (isinstance(key, str) and len(key) <= 255 and KEY_PATTERN.fullmatch(key)):
            raise Invalid("tag keys are 1 to 255 letters, digits, '_', ':', '.', '-'",
                          field=f"tags.{str(key)[:60]}")
        if not isinstance(value, str) or not value.strip() or len(value) > 255:
            raise Invalid("tag values are non-empty text of at most 255 characters",
                          field=f"tags.{key}")
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise Invalid("tag values cannot hold control characters", field=f"tags.{key}")
        value = value.strip()
        if key in preset["tags"] and value != preset["tags"][key]:
            raise Invalid(f"a {preset['name']['en']} has {key}={preset['tags'][key]}",
                          field=f"tags.{key}")
        problem = _check_value(fields[key], value) if key in fields else None
        if problem:
            raise Invalid(f"{key} {problem}", field=f"tags.{key}")
        checked[key] = value
    return {**checked, **preset["tags"]}
