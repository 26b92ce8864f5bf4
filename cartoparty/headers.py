"""The headers every answer carries: a Content-Security-Policy that lets a page run only the app's
own scripts and styles and show only its own images and the tile server's, HSTS once served over
HTTPS, and a Cache-Control for the answers that did not choose their own."""

from urllib.parse import urlsplit

from flask import current_app, request

HSTS = "max-age=31536000; includeSubDomains"
# Answers that are the same for everyone, in seconds: presets and the OpenAPI description change
# with a deployment, the listing of events when an organiser lists one.
PUBLIC_ANSWERS = {"api.presets": 3600, "api.openapi": 3600, "public.events_json": 300}


def tile_sources(tile_url):
    """The CSP sources of a Leaflet tile URL template: its origin, with a label holding a
    placeholder ({s}, {r}…) and those left of it as a wildcard ("https://{s}.tile.example.org/…"
    → "https://*.tile.example.org"); none for a URL on the app's own origin ("/tiles/…")."""
    parts = urlsplit(tile_url)
    if not parts.netloc:
        return []
    host, colon, port = parts.netloc.rpartition("@")[2].partition(":")
    labels = host.split(".")
    templated = [index for index, label in enumerate(labels) if "{" in label]
    if templated:
        labels = ["*"] + labels[templated[-1] + 1:]
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return [f"{scheme}{'.'.join(labels)}{colon}{port}"]


def content_security_policy(tile_url):
    """The policy of the app's pages and answers: its own scripts and styles only, no inline
    script nor style attribute; images from itself, data:/blob: (photo previews) and the tiles."""
    images = " ".join(["'self'", "data:", "blob:", *tile_sources(tile_url)])
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src {images}; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def sandboxed_policy(tile_url):
    """The policy of a page that is not the app's (the folium export and its inline scripts):
    run in an opaque origin that reads nothing of the app's, with images from the tiles only."""
    images = " ".join(["data:", *tile_sources(tile_url)])
    return ("sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
            f"style-src 'unsafe-inline'; img-src {images}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def cache_control(response):
    """What a response may be kept as when its view did not say: the public JSON for a while,
    anything else not at all (it may depend on who asks: a token, a session, a language)."""
    max_age = PUBLIC_ANSWERS.get(request.endpoint)
    if max_age and response.status_code == 200:
        return f"public, max-age={max_age}"
    return "no-store"


def add(response):
    """Set the security headers on `response`, keeping those its view chose (after_request)."""
    config = current_app.config
    headers = response.headers
    # No other site may frame a page (clickjacking the walker's or the organiser's buttons),
    # nor a browser guess a type other than the one sent. Cross-site requests (the map's
    # tiles) carry only the origin: tile servers ask for it, a join code must not leak.
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", content_security_policy(config["TILE_URL"]))
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    # Behind ProxyFix, X-Forwarded-Proto makes the request secure; browsers ignore HSTS on HTTP.
    if request.is_secure or config.get("PUBLIC_URL", "").startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = cache_control(response)
    return response
