"""A reference row's fields as OSM tags, and back: what pre-fills the walker's form when they
check a row, and what the export to the town writes where a walker found the row different.

Only what a survey can see on the spot crosses over. schema-dae: `acc` ↔ `indoor`, `acc_lib`
↔ `access`, `acc_etg` ↔ `level`, `acc_complt` ↔ `defibrillator:location`, `disp_j`/`disp_h`
(1.0.7) or `dispo_horaires` (1.0.8, already in opening_hours syntax) ↔ `opening_hours`.
schema-arbre (and the towns' own names for the same): `genre` ↔ `genus`, `genre` + `espece` ↔
`species` (OSM wants the binomial, the schema the epithet), `hauteur` in cm ↔ `height` in m,
`circonference` in cm ↔ `circumference` in m, `diametre` in cm ↔ `circumference` = π × d (the
schema measures at 1.50 m and OSM at 1.30 m: close enough for a survey, not for a forester).
Column names are compared as read.column_key compares them, so `GENRE_BOTA` is `genre_bota`.
"""

import math
import re

from ..presets import all_presets
from ..schemadae import FREE_ACCESS, INDOOR, availability
from .read import column_key

# The preset a kind of dataset is checked with; a GeoJSON or CSV names its own at import.
PRESET_OF_KIND = {"dae": "defibrillator", "trees": "tree"}

# The same field under the names files give it, first the schemas' own.
NAMES = {
    "acc": ("acc", "c_acc"), "acc_lib": ("acc_lib", "c_acc_lib"), "acc_etg": ("acc_etg", "c_acc_etg"),
    "acc_complt": ("acc_complt", "c_acc_complt"), "disp_j": ("disp_j", "c_disp_j"),
    "disp_h": ("disp_h", "c_disp_h"), "disp_complt": ("disp_complt", "c_disp_complt", "disp_compl"),
    "dispo_horaires": ("dispo_horaires", "c_dispo_horaires"),
    "genre": ("genre", "genre_arbre", "genre_bota"), "espece": ("espece", "espece_arbre"),
    "hauteur": ("hauteur", "hauteur_arbre"), "circonference": ("circonference", "circonference_arbre"),
    "diametre": ("diametre", "diametre_arbre", "diametrearbreaunmetre"),
}
TITLE_NAMES = ("nom", "c_nom", "nom_site", "name", "nom_vernaculaire", "libelle", "adresse")
NUMBER = re.compile(r"[+-]?\d+([.,]\d+)?")


def _plain(value):
    """A cell compared loosely: no case, no accents (nor the U+FFFD a lost accent left)."""
    text = str(value or "").strip().lower()
    return re.sub(r"[éèêë\ufffd]", "e", text)


def columns_of(fields):
    """{field as the mapping names it: the row's own column name} for the columns it has."""
    keys = {column_key(name): name for name in fields}
    found = {}
    for field, names in NAMES.items():
        name = next((keys[name] for name in names if name in keys), None)
        if name is not None:
            found[field] = name
    return found


def _number(value):
    text = str(value or "").strip()
    return float(text.replace(",", ".")) if NUMBER.fullmatch(text) else None


def _metres(value, divide=100):
    number = _number(value)
    if number is None or number <= 0:
        return None
    return format(round(number / divide, 2), "g")


def _dae_tags(get):
    tags = {}
    acc = _plain(get("acc"))
    if acc.startswith("int"):
        tags["indoor"] = "yes"
    elif acc.startswith("ext"):
        tags["indoor"] = "no"
    # "non" says the public cannot walk up to it, not who can: the walker tells on the spot.
    if _plain(get("acc_lib")) in ("oui", "true", "1", "vrai"):
        tags["access"] = "yes"
    level = _number(get("acc_etg"))
    if level is not None and level == int(level):
        tags["level"] = str(int(level))
    location = str(get("acc_complt") or "").strip()
    if location and location != "-":
        tags["defibrillator:location"] = location[:255]
    hours = str(get("dispo_horaires") or "").strip()
    if hours and _plain(hours) != "non renseigne":
        tags["opening_hours"] = hours[:255]
    elif _plain(get("disp_j")) == "7j/7" and _plain(get("disp_h")) == "24h/24":
        tags["opening_hours"] = "24/7"
    return tags


def _tree_tags(get):
    tags = {}
    genus = str(get("genre") or "").strip()
    epithet = str(get("espece") or "").strip()
    if genus and genus != "-":
        tags["genus"] = genus[:1].upper() + genus[1:]
        if epithet and epithet != "-":
            species = epithet if epithet.split()[0].lower() == genus.lower() else f"{tags['genus']} {epithet}"
            tags["species"] = species[:255]
    height = _metres(get("hauteur"))
    if height:
        tags["height"] = height
    circumference = _metres(get("circonference"))
    diameter = _number(get("diametre"))
    if circumference:
        tags["circumference"] = circumference
    elif diameter and diameter > 0:
        tags["circumference"] = format(round(math.pi * diameter / 100, 2), "g")
    return tags


def row_tags(preset_id, fields):
    """The OSM tags a row's fields say, for the preset it is checked with: the preset's own
    tags, then those of its questions the fields answer with a value the question accepts."""
    preset = all_presets().get(preset_id)
    if preset is None:
        return {}
    columns = columns_of(fields)

    def get(name):
        return fields.get(columns[name]) if name in columns else None

    mapped = {"defibrillator": _dae_tags, "tree": _tree_tags}.get(preset_id, lambda get: {})(get)
    asked = {field["key"]: field for field in preset["fields"]}
    tags = dict(preset["tags"])
    for key, value in mapped.items():
        field = asked.get(key)
        if field is None:
            continue
        if field["type"] == "number":
            number = _number(value)
            if number is None or not field.get("min", -math.inf) <= number <= field.get("max", math.inf):
                continue
        if field["type"] == "select" and value not in [option["value"] for option in field["options"]]:
            continue
        tags[key] = value
    return tags


def title(fields, source_id):
    """What a walker reads on a row's marker: its name, else its species, else its identifier."""
    keys = {column_key(name): name for name in fields}
    for name in TITLE_NAMES:
        value = str(fields.get(keys.get(name, ""), "") or "").strip()
        if value and value != "-":
            return value[:120]
    tags = _tree_tags(lambda name: fields.get(columns_of(fields).get(name, ""), None))
    return tags.get("species") or tags.get("genus") or str(source_id)


def _centimetres(metres):
    number = _number(metres)
    return None if number is None else format(round(number * 100), "d")


def corrected_fields(fields, before, after):
    """{column: new value} for the row's columns a survey can know, where the tags a walker
    left (`after`) differ from those the row said (`before`, from row_tags)."""
    columns = columns_of(fields)
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    values = {}

    def put(name, value):
        if name in columns and value is not None and str(fields.get(columns[name], "")) != value:
            values[columns[name]] = value

    if "indoor" in changed:
        put("acc", INDOOR.get(after.get("indoor"), ""))
    if "access" in changed:
        put("acc_lib", FREE_ACCESS.get(after.get("access"), ""))
    if "level" in changed:
        put("acc_etg", after.get("level", ""))
    if "defibrillator:location" in changed:
        put("acc_complt", after.get("defibrillator:location", ""))
    if "opening_hours" in changed:
        if "dispo_horaires" in columns:
            put("dispo_horaires", after.get("opening_hours", ""))
        else:
            disp_j, disp_h, disp_complt = availability(after.get("opening_hours"))
            put("disp_j", disp_j)
            put("disp_h", disp_h)
            put("disp_complt", disp_complt)
    if "genus" in changed:
        put("genre", after.get("genus", ""))
    if "species" in changed:
        species = after.get("species", "")
        old = str(fields.get(columns.get("espece", ""), "") or "")
        # The file held the epithet alone ("campestre"): it gets the epithet back.
        epithet = species.split(" ", 1)[1] if " " in species and " " not in old.strip() else species
        put("espece", epithet)
    if "height" in changed:
        put("hauteur", _centimetres(after.get("height")) or "")
    if "circumference" in changed:
        put("circonference", _centimetres(after.get("circumference")) or "")
        circumference = _number(after.get("circumference"))
        put("diametre", "" if circumference is None else format(round(circumference * 100 / math.pi), "d"))
    return values
