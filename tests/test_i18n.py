"""The message catalogs: the same messages in every language, with the same placeholders."""

import re

import pytest

from cartoparty import i18n

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def test_every_message_has_the_same_placeholders_in_every_language():
    for key, french in i18n.CATALOGS["fr"].items():
        for lang, catalog in i18n.CATALOGS.items():
            assert set(PLACEHOLDER.findall(catalog[key])) == set(PLACEHOLDER.findall(french)), (lang, key)


def test_a_message_missing_from_a_language_stops_the_app(monkeypatch):
    english = {key: text for key, text in i18n.CATALOGS["en"].items() if key != "osm_check"}
    monkeypatch.setitem(i18n.CATALOGS, "en", english)
    with pytest.raises(ValueError, match=r"en\.json: missing \['osm_check'\]"):
        i18n.check_catalogs()
