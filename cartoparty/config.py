"""Settings, read from the environment once when the app is created."""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from . import localdb

PROJECT_DIR = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_DIR / "migrations"
STATIC_DIR = PROJECT_DIR / "static"
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = ('&copy; <a href="https://www.openstreetmap.org/copyright">'
                   "OpenStreetMap</a> contributors")
# The main Overpass instance first, then a mirror.
# The OSM API 0.6 root; the development server is https://master.apis.dev.openstreetmap.org/api/0.6
OSM_API_URL = "https://api.openstreetmap.org/api/0.6"
OSM_AUTH_URL = "https://www.openstreetmap.org"
OVERPASS_URL = "https://overpass-api.de/api/interpreter,https://overpass.kumi.systems/api/interpreter"


def database_url(environ=os.environ):
    """DATABASE_URL for psycopg 3, or the project-local cluster when it is unset."""
    value = environ.get("DATABASE_URL", "").strip()
    if not value:
        return localdb.url()
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix):]
    return value


def libpq_url(environ=os.environ):
    """The same database as a URL that psycopg itself (without SQLAlchemy) connects to."""
    return database_url(environ).replace("postgresql+psycopg://", "postgresql://", 1)


def secret_key(instance_path):
    """SECRET_KEY, or one made once and kept in the instance folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def overpass_endpoints(environ=os.environ):
    """OVERPASS_URL as a list: comma-separated Overpass interpreter URLs, tried in this order."""
    value = environ.get("OVERPASS_URL", "").strip() or OVERPASS_URL
    return [url.strip() for url in value.split(",") if url.strip()]


def public_url(environ=os.environ):
    """PUBLIC_URL without its trailing slash ("https://carto.example.org", a path prefix
    allowed), or "" when unset; a ValueError for anything that is not an http(s) address."""
    value = environ.get("PUBLIC_URL", "").strip().rstrip("/")
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.hostname
                  or parts.query or parts.fragment or parts.username):
        raise ValueError("PUBLIC_URL must be an http(s) address such as https://carto.example.org")
    return value


def session_cookie_secure(environ=os.environ):
    """SESSION_COOKIE_SECURE ("1" or "0"); when unset, whether PUBLIC_URL is an https:// one."""
    value = environ.get("SESSION_COOKIE_SECURE", "").strip()
    if value:
        return value == "1"
    return environ.get("PUBLIC_URL", "").strip().lower().startswith("https://")


def from_environment(instance_path):
    """The app's configuration as a dict."""
    return {
        "SECRET_KEY": secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url(),
        # No pre-ping: it costs a round trip per request; connections are renewed every 30 min.
        # One pooled connection per gunicorn thread (gunicorn.conf.py reads WEB_THREADS too), and
        # a little overflow rather than a thread waiting for a connection.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800,
                                      "pool_size": int(os.environ.get("WEB_THREADS", "8")),
                                      "max_overflow": 2},
        # How many reverse proxies in front of the app set X-Forwarded-For/-Proto/-Host (0: none,
        # the headers are ignored: anyone could send them).
        "FORWARDED_PROXIES": int(os.environ.get("FORWARDED_PROXIES", "0")),
        "PHOTO_DIR": os.environ.get("PHOTO_DIR", str(Path(instance_path) / "photos")),
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_UPLOAD_BYTES", 12 * 1024 * 1024)),
        # The walkers' app sends photos of at most 2048 px a side (4 Mpx); 25 Mpx leaves room for
        # cameras and refuses a decompression bomb from its header, before decoding it.
        "MAX_PHOTO_PIXELS": int(os.environ.get("MAX_PHOTO_PIXELS", 25_000_000)),
        "MAX_JSON_BYTES": 64 * 1024,
        "PERMANENT_SESSION_LIFETIME": 12 * 3600,
        # The session cookie: never read by scripts, not sent along by other sites' forms, and
        # over HTTPS only when the app is served over it.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": session_cookie_secure(),
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_CHECK_DEFAULT": False,  # checked in create_app, for cookie sessions only
        "TIMEZONE": os.environ.get("TIMEZONE", "Europe/Paris"),
        # Finished background jobs are deleted this many days after they ended (privacy.py).
        "JOB_RETENTION_DAYS": int(os.environ.get("JOB_RETENTION_DAYS", 30)),
        "TILE_URL": os.environ.get("TILE_URL", OSM_TILES),
        "TILE_ATTRIBUTION": os.environ.get("TILE_ATTRIBUTION", OSM_ATTRIBUTION),
        "OVERPASS_URL": overpass_endpoints(),
        "OVERPASS_TIMEOUT": int(os.environ.get("OVERPASS_TIMEOUT", 60)),
        "OSM_API_URL": os.environ.get("OSM_API_URL", "").strip().rstrip("/") or OSM_API_URL,
        "OSM_API_TIMEOUT": int(os.environ.get("OSM_API_TIMEOUT", 30)),
        # OAuth 2.0 with openstreetmap.org (or the development server): the application
        # registered there, and the site it lives on (/oauth2/authorize, /oauth2/token).
        "OSM_OAUTH_CLIENT_ID": os.environ.get("OSM_OAUTH_CLIENT_ID", ""),
        "OSM_OAUTH_CLIENT_SECRET": os.environ.get("OSM_OAUTH_CLIENT_SECRET", ""),
        "OSM_AUTH_URL": os.environ.get("OSM_AUTH_URL", "").strip().rstrip("/") or OSM_AUTH_URL,
        # Encrypts the OSM tokens at rest (a Fernet key); derived from SECRET_KEY when unset.
        "OSM_TOKEN_KEY": os.environ.get("OSM_TOKEN_KEY", ""),
        # The deployment's public address: every absolute link the app hands out, the OAuth
        # callback and the changesets' `host` tag (links on the request's host when unset).
        "PUBLIC_URL": public_url(),
    }
