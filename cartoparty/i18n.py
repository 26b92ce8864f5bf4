"""The interface in French and English: message catalogs kept as JSON in translations/,
the language taken from ?lang=, then the walker's choice (a cookie), then the browser.

A message is a text with `{name}` placeholders, or for counts an object of CLDR plural forms
(`{"one": "{n} point validé", "other": "{n} points validés"}`) chosen by the parameter `n`.
The same catalogs and the same rules serve the pages' scripts (static/walker/i18n.js), so a
message is written once for the server and the browser.
"""

import json
import re
from datetime import datetime
from numbers import Number
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_decimal
from flask import request

LANGUAGES = ("fr", "en")
CATALOGS = {lang: json.loads((Path(__file__).parent / "translations" / f"{lang}.json")
                             .read_text(encoding="utf-8")) for lang in LANGUAGES}
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
PLURAL_FORMS = {"one", "other"}


def check_catalogs():
    """Every language has every message of the French catalog (the reference), in the same
    shape (text or plural forms) and with the same placeholders."""
    reference = CATALOGS["fr"]
    for lang, catalog in CATALOGS.items():
        missing = set(reference) - set(catalog)
        extra = set(catalog) - set(reference)
        if missing or extra:
            raise ValueError(f"translations/{lang}.json: missing {sorted(missing)}, "
                             f"unknown {sorted(extra)}")
        for key, message in catalog.items():
            if isinstance(message, dict) and set(message) != PLURAL_FORMS:
                raise ValueError(f"translations/{lang}.json: {key}: plural forms are "
                                 f"{sorted(PLURAL_FORMS)}")
            if placeholders(message) != placeholders(reference[key]):
                raise ValueError(f"translations/{lang}.json: {key}: placeholders "
                                 f"{sorted(placeholders(message))} differ from French's "
                                 f"{sorted(placeholders(reference[key]))}")


def placeholders(message):
    """The names a message takes as parameters."""
    texts = message.values() if isinstance(message, dict) else [message]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def plural_form(lang, n):
    """CLDR's plural category of a count: French says "1 point", "0 point", "1,5 point"
    (i = 0 or 1 is `one`); English only says "1 point"."""
    if lang == "fr":
        return "one" if 0 <= abs(n) < 2 else "other"
    return "one" if n == 1 else "other"


def format_number(value, lang):
    """A number written for the language: 1 234,5 in French, 1,234.5 in English."""
    return format_decimal(value, locale=lang, decimal_quantization=False)


def format_time(moment, lang, timezone, with_date=True):
    """A time as the people of the event read it: in the event's time zone, in their words."""
    if moment is None:
        return ""
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    pattern = "medium" if with_date else "HH:mm"
    return babel_datetime(moment.astimezone(zone), pattern, tzinfo=zone, locale=lang)


def translate(lang, key, /, **params):
    """The message `key` in `lang`, its placeholders filled (numbers formatted for the
    language), its plural form chosen by `n`. An unknown key gives the key itself."""
    message = CATALOGS[lang].get(key, key)
    if isinstance(message, dict):
        message = message[plural_form(lang, params.get("n", 0))]

    def value(found):
        name = found.group(1)
        if name not in params:
            return found.group(0)
        param = params[name]
        if isinstance(param, Number) and not isinstance(param, bool):
            return format_number(param, lang)
        if isinstance(param, datetime):
            return format_time(param, lang, param.tzinfo)
        return str(param)

    return PLACEHOLDER.sub(value, message)


class Messages(dict):
    """A language's catalog for templates: `t.key` for a plain text, `t("key", n=3)` for one
    with parameters or plural forms."""

    def __init__(self, lang):
        super().__init__(CATALOGS[lang])
        self.lang = lang

    def __call__(self, key, /, **params):
        return translate(self.lang, key, **params)


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
    """Give every page its language and messages as `lang` and `t`, and filters that write
    numbers and times for that language."""
    check_catalogs()

    @app.context_processor
    def language_and_messages():
        lang = language()
        return {"lang": lang, "t": Messages(lang)}

    @app.template_filter("number")
    def number_filter(value):
        return format_number(value, language())

    @app.template_filter("localtime")
    def localtime_filter(moment, timezone=None, with_date=True):
        return format_time(moment, language(), timezone or app.config["TIMEZONE"], with_date)
