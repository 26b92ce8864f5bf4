"""The headers of every answer (CSP, nosniff, no framing, Referrer-Policy, HSTS, Cache-Control) and
the absolute links the app hands out, built on PUBLIC_URL whatever Host header a request brings."""

import base64
import io
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import a_submission, make_event, make_organiser
from PIL import Image

from cartoparty import config, create_app
from cartoparty.extensions import db
from cartoparty.headers import content_security_policy, tile_sources
from cartoparty.models import Team
from cartoparty.osm.changes_page import josm_url
from cartoparty.walker import LEAFLET_VERSION

PUBLIC = "https://carto.example.org/party-app"
EVIL = "evil.example"


def directives(response):
    """The response's CSP as {directive: [sources]}."""
    policy = response.headers["Content-Security-Policy"]
    return {name: sources for name, *sources in
            (part.split() for part in policy.split(";") if part.strip())}


def basic(email="alice@example.org", password="correct horse"):
    """HTTP Basic credentials of make_organiser()'s organiser: a sign-in on whatever host."""
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def png():
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 120, 40)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def answers(client, event, walker):
    """One answer of each kind the app gives, by name."""
    body = a_submission()
    assert client.post("/api/events/party/submissions", json=body, headers=walker).status_code == 201
    photo = client.post(f"/api/events/party/submissions/{body['client_id']}/photos", headers=walker,
                        data={"photo": (io.BytesIO(png()), "p.png")},
                        content_type="multipart/form-data").json
    make_organiser(events=[event])
    return {
        "walker page": client.get("/e/party"),
        "organiser page": client.get("/organise/party", headers=basic()),
        "public page": client.get("/events"),
        "public JSON": client.get("/api/presets"),
        "walker JSON": client.get("/api/events/party", headers=walker),
        "organiser JSON": client.get("/api/organise/party/submissions", headers=basic()),
        "error JSON": client.get("/api/events/no-such-event"),
        "404 page": client.get("/no-such-page"),
        "redirect": client.get("/organise/party/osm-account/link", headers=basic()),
        "static file": client.get("/static/walker/app.js"),
        "leaflet": client.get(f"/vendor/leaflet/{LEAFLET_VERSION}/leaflet.js"),
        "service worker": client.get("/sw.js"),
        "photo": client.get(photo["url"], headers=walker),
    }


def test_every_kind_of_answer_carries_the_security_headers(answers):
    for name, answer in answers.items():
        assert answer.status_code < 500, name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        assert answer.headers["X-Frame-Options"] == "DENY", name
        assert answer.headers["Referrer-Policy"] == "strict-origin-when-cross-origin", name
        policy = directives(answer)
        assert policy["frame-ancestors"] == ["'none'"], name
        assert policy["script-src"] == ["'self'"], name
        assert "Cache-Control" in answer.headers, name


def test_the_policy_runs_only_the_apps_own_scripts_and_styles(client, event):
    answer = client.get("/e/party")
    policy, text = directives(answer), answer.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in text and "'unsafe-eval'" not in text
    assert policy["default-src"] == policy["style-src"] == policy["connect-src"] == ["'self'"]
    assert policy["worker-src"] == policy["manifest-src"] == policy["form-action"] == ["'self'"]
    assert policy["object-src"] == policy["base-uri"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://tile.openstreetmap.org"]


def test_the_configured_tile_server_is_allowed_for_images(app, client, event, monkeypatch):
    monkeypatch.setitem(app.config, "TILE_URL", "https://{s}.tiles.example.net/base/{z}/{x}/{y}{r}.png")
    images = directives(client.get("/e/party"))["img-src"]
    assert "https://*.tiles.example.net" in images and "https://tile.openstreetmap.org" not in images


@pytest.mark.parametrize(("tile_url", "sources"), [
    ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", ["https://tile.openstreetmap.org"]),
    ("https://{s}.tile.example.org/{z}/{x}/{y}.png", ["https://*.tile.example.org"]),
    ("https://tiles{s}.a.example.org/{z}/{x}/{y}.png", ["https://*.a.example.org"]),
    ("http://localhost:8080/tiles/{z}/{x}/{y}.png?key=secret", ["http://localhost:8080"]),
    ("//tiles.example.org/{z}/{x}/{y}.png", ["tiles.example.org"]),
    ("/tiles/{z}/{x}/{y}.png", []),
])
def test_tile_sources_are_the_tile_servers_origins(tile_url, sources):
    assert tile_sources(tile_url) == sources
    assert all(source in content_security_policy(tile_url) for source in sources)


def test_hsts_only_over_https(client, event):
    assert "Strict-Transport-Security" not in client.get("/e/party").headers
    secure = client.get("/e/party", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_hsts_when_the_public_url_is_https(app, client, event, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", PUBLIC)
    assert client.get("/api/presets").headers["Strict-Transport-Security"].startswith("max-age=")


def test_hsts_behind_a_trusted_proxy_that_says_https(database_url, tmp_path):
    settings = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "PHOTO_DIR": str(tmp_path)}
    proxied = create_app({**settings, "FORWARDED_PROXIES": 1}).test_client()
    direct = create_app({**settings, "FORWARDED_PROXIES": 0}).test_client()
    forwarded = {"X-Forwarded-Proto": "https"}
    assert "Strict-Transport-Security" in proxied.get("/api/presets", headers=forwarded).headers
    # Without a proxy in front, anyone can send the header: it says nothing.
    assert "Strict-Transport-Security" not in direct.get("/api/presets", headers=forwarded).headers


@pytest.mark.parametrize("path", ["/api/presets", "/api/openapi.json", "/api/events"])
def test_public_json_may_be_kept_by_caches(client, event, path):
    answer = client.get(path)
    assert answer.status_code == 200
    assert re.fullmatch(r"public, max-age=\d+", answer.headers["Cache-Control"])


def test_what_depends_on_who_asks_is_not_kept(answers):
    for name in ("organiser page", "walker JSON", "organiser JSON", "error JSON", "404 page",
                 "redirect", "public page"):
        assert answers[name].headers["Cache-Control"] == "no-store", name


def test_answers_that_choose_their_caching_keep_it(answers):
    assert answers["walker page"].headers["Cache-Control"] == "no-cache"
    assert answers["service worker"].headers["Cache-Control"] == "no-cache"
    assert answers["leaflet"].headers["Cache-Control"].startswith("public, max-age=")
    assert "private" in answers["photo"].headers["Cache-Control"]
    assert "no-store" not in answers["static file"].headers["Cache-Control"]
    assert answers["static file"].headers["ETag"]


def test_a_public_answer_that_fails_is_not_kept(app, client, monkeypatch):
    from sqlalchemy.orm import Session

    def broken(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(Session, "_execute_internal", broken)
    answer = client.get("/api/events")
    assert answer.status_code == 500 and answer.headers["Cache-Control"] == "no-store"


# ---- Links from PUBLIC_URL ---------------------------------------------------------------------

@pytest.fixture
def public_url(app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", PUBLIC)
    return PUBLIC


@pytest.fixture
def listed_party():
    event = make_event("fete", name="Fête", listed=True, starts_at=datetime(2030, 6, 13, tzinfo=UTC),
                       ends_at=datetime(2030, 6, 14, tzinfo=UTC),
                       restitution_published_at=datetime.now(UTC))
    db.session.add(Team(event_id=event.id, name="Arbres", presets=["tree"]))
    db.session.commit()
    return event


def hostile(client, path):
    """GET `path` as an organiser, with a Host header of the attacker's choosing."""
    answer = client.get(path, headers={"Host": EVIL, **basic()})
    assert answer.status_code < 400, (path, answer.status_code)
    return answer


def test_the_hostile_host_really_reaches_the_app(client, listed_party):
    # Without PUBLIC_URL (development) links follow the request: the header is what a test sends.
    features = hostile(client, "/api/events").json["features"]
    assert features[0]["properties"]["join_url"] == "http://evil.example/e/fete"


def test_public_listing_links_are_on_the_public_url(client, listed_party, public_url):
    features = hostile(client, "/api/events").json["features"]
    assert features[0]["properties"]["join_url"] == f"{PUBLIC}/e/fete"
    assert features[0]["properties"]["restitution_url"] == f"{PUBLIC}/r/fete"
    page = hostile(client, "/events").get_data(as_text=True)
    assert f"{PUBLIC}/e/fete" in page and EVIL not in page


def test_organiser_links_and_qr_codes_are_on_the_public_url(client, listed_party, public_url):
    make_organiser(events=[listed_party])
    team = listed_party.teams[0]
    for path in ("/organise/fete/settings", "/organise/fete/print", "/organise/fete/qr.svg",
                 f"/organise/fete/teams/{team.id}/qr.svg", "/organise/fete/restitution"):
        body = hostile(client, path).get_data(as_text=True)
        assert EVIL not in body, path
        assert PUBLIC in body, path
    settings = hostile(client, "/organise/fete/settings").get_data(as_text=True)
    assert f'href="{PUBLIC}/e/fete?team={team.join_code}"' in settings


def test_the_josm_link_and_oauth_callback_are_on_the_public_url(app, client, listed_party,
                                                                 public_url, monkeypatch):
    plan = SimpleNamespace(built_at=datetime(2030, 6, 14, tzinfo=UTC))
    with app.test_request_context("/", headers={"Host": EVIL}):
        link = josm_url(listed_party, plan, 1)
    file_url = parse_qs(urlsplit(link).query)["url"][0]
    assert file_url.startswith(f"{PUBLIC}/organise/") and EVIL not in link
    monkeypatch.setitem(app.config, "OSM_OAUTH_CLIENT_ID", "cartoparty-test")
    make_organiser(events=[listed_party])
    answer = hostile(client, "/organise/fete/osm-account/link")
    redirect_uri = parse_qs(urlsplit(answer.location).query)["redirect_uri"][0]
    assert redirect_uri == f"{PUBLIC}/organise/osm-account/callback"


@pytest.mark.parametrize("value", ["carto.example.org", "ftp://carto.example.org", "https://",
                                   "https://carto.example.org/?x=1", "https://u:p@carto.example.org"])
def test_a_public_url_that_is_not_an_http_address_is_refused(value):
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        config.public_url({"PUBLIC_URL": value})


def test_a_public_url_keeps_its_path_prefix_without_its_slash():
    assert config.public_url({"PUBLIC_URL": " https://carto.example.org/app/ "}) == \
        "https://carto.example.org/app"
    assert config.public_url({}) == ""


# ---- The folium export, shown in the browser ----------------------------------------------------

def test_the_map_export_preview_runs_sandboxed_with_its_own_policy(client, event):
    make_organiser(events=[event])
    answer = client.get("/organise/party/exports/html/preview", headers=basic())
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert "attachment" not in answer.headers.get("Content-Disposition", "")
    policy = directives(answer)
    assert policy["sandbox"] == ["allow-scripts"]  # an opaque origin: no cookie, no API
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["data:", "https://tile.openstreetmap.org"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'self'" not in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert "L.map(" in answer.get_data(as_text=True)
    page = client.get("/organise/party/exports", headers=basic()).get_data(as_text=True)
    assert 'href="/organise/party/exports/html/preview"' in page


def test_the_map_export_preview_is_for_the_events_organisers_only(client, event):
    make_organiser("bob@example.org", events=[make_event("other")])
    signed_out = client.get("/organise/party/exports/html/preview")
    assert signed_out.status_code == 302 and "/sign-in" in signed_out.location
    other = client.get("/organise/party/exports/html/preview", headers=basic("bob@example.org"))
    assert other.status_code == 403
    assert "L.map" not in other.get_data(as_text=True)
