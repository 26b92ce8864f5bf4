"""One rule for every text a request brings, in its query, its form or its JSON body: no NUL
(PostgreSQL cannot store it: it was a 500), no bidirectional control (U+202E and its kin make a
text read backwards, to hide what it says), and JSON no deeper than a form ever needs (Python's
parser would otherwise recurse a thousand levels and fail with a 500)."""

import re

from flask import request

from .errors import Invalid

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
MAX_DEPTH = 32


def check_text(value, field):
    """Invalid naming `field` when the text breaks the rule."""
    if "\x00" in value:
        raise Invalid("text_nul", field=field[:100], name=field[:100])
    if BIDI_CONTROLS.search(value):
        raise Invalid("text_bidi_control", field=field[:100], name=field[:100])


def check_json(value, field="", depth=0):
    """The rule for every key and string of a JSON value, and its depth."""
    if depth > MAX_DEPTH:
        raise Invalid("json_too_deep", field=field[:100] or None, max=MAX_DEPTH)
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else key
            check_text(key, name)
            check_json(item, name, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{field}[{index}]", depth + 1)


def check_request():
    """Before every request: the query's and the form's names and values."""
    forms = ("application/x-www-form-urlencoded", "multipart/form-data")
    for source in (request.args, request.form) if request.mimetype in forms else (request.args,):
        for name, values in source.lists():
            name = name or ""  # werkzeug names None a multipart part whose name holds a line break
            check_text(name, name)
            for value in values:
                check_text(value, name)
