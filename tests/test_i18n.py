"""The message catalogs: the same messages in every language, with the same placeholders; every
error the server can raise has its text in French and English; plurals and numbers."""

import ast
from pathlib import Path

import pytest

import cartoparty
from cartoparty import errors, i18n
from cartoparty.models import Status

PACKAGE = Path(cartoparty.__file__).parent


def test_every_message_has_the_same_placeholders_in_every_language():
    for key, french in i18n.CATALOGS["fr"].items():
        for lang, catalog in i18n.CATALOGS.items():
            assert i18n.placeholders(catalog[key]) == i18n.placeholders(french), (lang, key)


def test_a_message_missing_from_a_language_stops_the_app(monkeypatch):
    english = {key: text for key, text in i18n.CATALOGS["en"].items() if key != "osm_check"}
    monkeypatch.setitem(i18n.CATALOGS, "en", english)
    with pytest.raises(ValueError, match=r"en\.json: missing \['osm_check'\]"):
        i18n.check_catalogs()


def test_a_message_whose_placeholders_differ_stops_the_app(monkeypatch):
    english = {**i18n.CATALOGS["en"], "error.outside_zone": "Outside the zone of {slug}."}
    monkeypatch.setitem(i18n.CATALOGS, "en", english)
    with pytest.raises(ValueError, match=r"error\.outside_zone: placeholders \['slug'\]"):
        i18n.check_catalogs()


def error_classes(trees):
    """The names of CartopartyError and of every class deriving from it, in the package."""
    names = {"CartopartyError"}
    grew = True
    while grew:
        found = {node.name for tree in trees for node in ast.walk(tree)
                 if isinstance(node, ast.ClassDef)
                 and any(getattr(base, "id", getattr(base, "attr", None)) in names for base in node.bases)}
        grew = not found <= names
        names |= found
    return names


def raised_errors():
    """(code, parameter names, where) of every error the package's code builds."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in PACKAGE.rglob("*.py")}
    classes = error_classes(trees.values())
    for path, tree in trees.items():
        for node in ast.walk(tree):
            name = getattr(node, "func", None)
            name = getattr(name, "id", getattr(name, "attr", None))
            if not isinstance(node, ast.Call) or name not in classes or not node.args:
                continue
            where = f"{path.name}:{node.lineno}"
            params = {keyword.arg for keyword in node.keywords} - {"field", "status"}
            first = node.args[0]
            if isinstance(first, ast.Constant):
                yield first.value, params, where
            elif isinstance(first, ast.IfExp) and all(isinstance(branch, ast.Constant)
                                                      for branch in (first.body, first.orelse)):
                yield first.body.value, params, where
                yield first.orelse.value, params, where
            elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
                prefix = first.values[0].value  # f"point_{submission.status}"
                for status in Status:
                    if f"error.{prefix}{status}" in i18n.CATALOGS["en"]:
                        yield f"{prefix}{status}", params, where
            elif path.name != "errors.py":  # there, the framework's refusals (tested below)
                raise AssertionError(f"{where}: an error's code must be written where it is raised")


def test_every_error_the_server_raises_has_a_text_in_french_and_english():
    seen = 0
    for code, params, where in raised_errors():
        for lang, catalog in i18n.CATALOGS.items():
            assert f"error.{code}" in catalog, f"{where}: no {lang} text for {code!r}"
            missing = i18n.placeholders(catalog[f"error.{code}"]) - params
            assert not missing, f"{where}: {code!r} is raised without {sorted(missing)}"
        seen += 1
    assert seen > 100  # the scan does find the package's errors


def test_every_refusal_of_the_framework_has_a_text():
    for code in [*errors.HTTP_CODES.values(), "csrf_failed", "internal"]:
        for catalog in i18n.CATALOGS.values():
            assert f"error.{code}" in catalog


def test_an_error_has_its_english_message_and_its_text_in_each_language():
    error = errors.Invalid("number_range", field="lat", name="lat", min=-90, max=90)
    assert error.message == "lat must be a number between -90 and 90."
    assert error.text("fr") == "lat doit être un nombre entre -90 et 90."
    assert (error.status, error.field) == (422, "lat")


@pytest.mark.parametrize(("lang", "n", "text"), [
    ("fr", 0, "0 point validé"), ("fr", 1, "1 point validé"), ("fr", 2, "2 points validés"),
    ("fr", 1234, "1\u202f234 points validés"),
    ("en", 0, "0 points approved"), ("en", 1, "1 point approved"), ("en", 2, "2 points approved"),
    ("en", 1234, "1,234 points approved"),
])
def test_counts_take_the_plural_form_of_their_language(monkeypatch, lang, n, text):
    monkeypatch.setitem(i18n.CATALOGS, "fr", {"approved": {"one": "{n} point validé",
                                                           "other": "{n} points validés"}})
    monkeypatch.setitem(i18n.CATALOGS, "en", {"approved": {"one": "{n} point approved",
                                                           "other": "{n} points approved"}})
    assert i18n.translate(lang, "approved", n=n) == text


def test_plural_messages_need_both_forms(monkeypatch):
    for lang in i18n.LANGUAGES:
        monkeypatch.setitem(i18n.CATALOGS, lang, {**i18n.CATALOGS[lang], "x": {"one": "{n} x"}})
    with pytest.raises(ValueError, match="plural forms"):
        i18n.check_catalogs()


def test_times_are_written_in_the_event_time_zone_and_language():
    from datetime import UTC, datetime
    moment = datetime(2026, 6, 13, 8, 15, tzinfo=UTC)
    assert i18n.format_time(moment, "fr", "Europe/Paris") == "13 juin 2026, 10:15:00"
    assert i18n.format_time(moment, "en", "Europe/Paris").startswith("Jun 13, 2026, 10:15:00")
    assert i18n.format_time(moment, "fr", "Europe/Paris", with_date=False) == "10:15"
