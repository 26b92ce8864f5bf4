"""Absolute links the app hands out (join links and their QR codes, the public listing, the
restitution's address, the JOSM file, the OAuth callback): on PUBLIC_URL when it is set, never on
the Host header a request came with, which anyone can set."""

from flask import current_app, request, url_for


def external_url(endpoint, **values):
    """The absolute URL of `endpoint`: PUBLIC_URL (scheme, host, path prefix) then the route's
    path when PUBLIC_URL is set; on the request's own host otherwise (development)."""
    public = current_app.config.get("PUBLIC_URL", "").rstrip("/")
    if not public:
        return url_for(endpoint, _external=True, **values)
    # url_for's path starts with the prefix the app is mounted at, which PUBLIC_URL already has.
    return public + url_for(endpoint, **values).removeprefix(request.script_root)
