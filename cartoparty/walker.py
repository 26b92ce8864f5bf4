"""The walker app: the page behind the link organisers hand out, its service worker and
the map library it runs on, all served by the app itself so that it works offline."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import xstatic.pkg.leaflet as leaflet
from babel.dates import format_date
from flask import Blueprint, current_app, render_template, request, send_from_directory

from .auth import load_event
from .events import event_json, find_team, team_json
from .i18n import LANGUAGES, language, messages
from .privacy import erase_after

bp = Blueprint("walker", __name__)

LEAFLET_VERSION = leaflet.VERSION
LEAFLET_FILES = ["leaflet.js", "leaflet.css", "images/marker-icon.png",
                 "images/marker-icon-2x.png", "images/marker-shadow.png",
                 "images/layers.png", "images/layers-2x.png"]
WALKER_ASSETS = ["walker/app.js", "walker/outbox.js", "walker/form.js", "walker/map.js",
                 "walker/i18n.js", "walker/points.js", "walker/feedback.js", "walker/mydata.js",
                 "walker/reference.js",
                 "walker/walker.css",
                 "walker/icon.svg"]


def walker_assets(static_folder):
    """The walker app's files under `static_folder`: its code and every preset's icon
    (presets.load() made sure each preset has one)."""
    icons = sorted(path.name for path in (Path(static_folder) / "icons").glob("*.svg"))
    return WALKER_ASSETS + [f"icons/{name}" for name in icons]


def asset_version(static_folder):
    """A fingerprint of the walker's files: a new one makes phones fetch the new app."""
    digest = hashlib.sha256(LEAFLET_VERSION.encode())
    for name in walker_assets(static_folder):
        digest.update(name.encode())
        digest.update((Path(static_folder) / name).read_bytes())
    for lang in LANGUAGES:
        digest.update(json.dumps(messages(lang), sort_keys=True).encode())
    return digest.hexdigest()[:12]


def shell_urls():
    """What the service worker keeps for offline use (besides each event's own page)."""
    return ([f"/static/{name}" for name in walker_assets(current_app.static_folder)]
            + [f"/vendor/leaflet/{LEAFLET_VERSION}/{name}" for name in LEAFLET_FILES])


# The retention task runs every hour (privacy.RETENTION_CRON): personal data goes at most this
# long after privacy.erase_after(), which may fall on the next day.
RETENTION_LAG = timedelta(hours=1)


def privacy_notice(event, lang):
    """What the join page and "My data" say of the walker's data beyond the catalogs: the day by
    which their personal data is erased (in the event's time zone), after how many days of the
    event, whom to ask (the event's contact, '' for its organisers), and which host serves the
    map's tiles (it sees the phone's address)."""
    by = (erase_after(event) + RETENTION_LAG).astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
    tiles = urlsplit(current_app.config["TILE_URL"]).hostname or ""
    return {"erase_by": format_date(by, "long", locale=lang), "days": event.retention_days,
            "contact": event.privacy_contact, "tiles": tiles.removeprefix("{s}.")}


@bp.get("/e/<slug>")
def page(slug):
    event = load_event(slug)
    lang = language()
    team = find_team(event, request.args.get("team"))
    state = {
        "event": event_json(event),
        "team": team_json(team) if team else None,
        "lang": lang,
        "messages": messages(lang),
        "tiles": {"url": current_app.config["TILE_URL"],
                  "attribution": current_app.config["TILE_ATTRIBUTION"]},
        "version": current_app.config["ASSET_VERSION"],
    }
    response = current_app.make_response(render_template(
        "walker.html", state=state, event=event, lang=lang, version=state["version"],
        privacy=privacy_notice(event, lang),
        leaflet=f"/vendor/leaflet/{LEAFLET_VERSION}"))
    if request.args.get("lang") in LANGUAGES:
        response.set_cookie("lang", request.args["lang"], max_age=365 * 86400, samesite="Lax")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker():
    version = current_app.config["ASSET_VERSION"]
    body = render_template("sw.js", version=version, shell=json.dumps(shell_urls()))
    return current_app.response_class(body, mimetype="text/javascript",
                                      headers={"Cache-Control": "no-cache"})


@bp.get("/vendor/leaflet/<version>/<path:name>")
def leaflet_file(version, name):
    if version != LEAFLET_VERSION or name not in LEAFLET_FILES:
        return "not found", 404
    return send_from_directory(leaflet.BASE_DIR, name, max_age=365 * 86400)
