"""The interface in French and English: message catalogs kept as JSON in translations/,
the language taken from ?lang=, then the walker's choice (a cookie), then the browser."""

import json
from pathlib import Path

from flask import request

LANGUAGES = ("fr", "en")
CATALOGS = {lang: json.loads((Path(__file__).parent / "translations" / f"{lang}.json")
                             .read_text(encoding="utf-8")) for lang in LANGUAGES}


def check_catalogs():
    """Every language has every message of the French catalog (the reference)."""
    reference = set(CATALOGS["fr"])
    for lang, catalog in CATALOGS.items():
        missing = reference - set(catalog)
        extra = set(catalog) - reference
        if missing or extra:
            raise ValueError(f"translations/{lang}.json: missing {sorted(missing)}, "
                             f"unknown {sorted(extra)}")


def language():
    """The language to answer in."""
    asked = request.args.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES) or "fr"


def messages(lang):
    """The catalog of a language."""
    return CATALOGS[lang]


def register(app):
    """Give every page its language and messages as `lang` and `t`."""
    check_catalogs()

    @app.context_processor
    def language_and_messages():
        lang = language()
        return {"lang": lang, "t": messages(lang)}
