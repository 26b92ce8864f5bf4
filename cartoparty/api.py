"""The API's shared parts: its OpenAPI description (against which every request is checked,
apispec.py), the presets, and reading JSON bodies."""

import json
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request

from . import apispec
from .errors import CartopartyError, Invalid
from .i18n import CATALOGS
from .inputs import MAX_DEPTH, check_json
from .presets import all_presets

bp = Blueprint("api", __name__, url_prefix="/api")
OPENAPI = json.loads((Path(__file__).parent / "openapi.json").read_text(encoding="utf-8"))
# The error codes are those the catalogs have texts for: written once, in translations/.
OPENAPI["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"] = \
    sorted(key.removeprefix("error.") for key in CATALOGS["en"] if key.startswith("error."))

bp.record_once(lambda state: apispec.register(state.app, OPENAPI))
bp.before_app_request(apispec.check_request)
bp.after_app_request(apispec.refuse_answer)


def json_body(max_bytes=None):
    """The request's JSON object (of at most `max_bytes`, MAX_JSON_BYTES unless given), or a
    4xx naming what is wrong with it."""
    raw = request.get_data(cache=True)
    if len(raw) > (max_bytes or current_app.config["MAX_JSON_BYTES"]):
        raise CartopartyError("too_large", status=413)
    if request.mimetype != "application/json":
        raise CartopartyError("json_media_type", field="Content-Type", status=415)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CartopartyError("json_invalid", detail=str(error)) from None
    except RecursionError:
        raise Invalid("json_too_deep", max=MAX_DEPTH) from None
    if not isinstance(body, dict):
        raise CartopartyError("json_not_object")
    check_json(body)
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CartopartyError("json_unicode") from None
    apispec.check_body()
    return body


def refuse_unknown_fields(body, known):
    """Refuse fields the API does not know (a misspelt field would otherwise be lost)."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise CartopartyError("unknown_field", field=unknown[0], status=422, name=unknown[0][:60])


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)


@bp.get("/presets")
def presets():
    return jsonify(list(all_presets().values()))
