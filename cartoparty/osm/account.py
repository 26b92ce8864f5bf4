"""An organiser's OpenStreetMap account: linking it with OAuth 2.0 (authorization code with PKCE
S256, through Authlib's Flask client), its token kept encrypted (Fernet), unlinking it.

openstreetmap.org's tokens do not expire and come without refresh tokens (API-FACTS.md), so the
token is stored once, encrypted with OSM_TOKEN_KEY, and read back only by the upload code through
token_for(). It goes in the Authorization header only: never in a URL, a log or the session.
Authlib, requests and cryptography are imported where they are used, so that a command of the
CLI does not load them.
"""

import base64
import os

from flask import Blueprint, current_app, flash, g, redirect, request, session, url_for
from sqlalchemy import func

from ..accounts import event_organiser_required, signed_in_organiser
from ..auth import load_event
from ..errors import CartopartyError, Conflict, Forbidden
from ..extensions import db
from ..links import external_url
from ..models import OsmAccount
from . import api

bp = Blueprint("osmaccount", __name__, url_prefix="/organise")

SCOPES = "write_api read_prefs"
# Authlib reads settings named <NAME>_CLIENT_ID etc. from the app's config: a name without the
# OSM_ prefix keeps it off ours.
CLIENT_NAME = "openstreetmap"
EXTENSION = "cartoparty.osm_oauth"
# The event whose page the organiser linked from, until the callback.
EVENT_KEY = "osm_link_event"
# Flashed messages for _osm_account.html: {"text": catalog key, "params": {…}, "level": …}.
FLASH_CATEGORY = "osm_account"
# The info string of the HKDF that derives the token key from SECRET_KEY when OSM_TOKEN_KEY is
# unset. Changing it (or SECRET_KEY) makes every stored token unreadable: organisers link again.
KEY_INFO = b"cartoparty osm token key v1"


def _fernet():
    """The Fernet of OSM_TOKEN_KEY, or of a key derived from SECRET_KEY (HKDF-SHA256)."""
    from cryptography.fernet import Fernet

    key = (current_app.config.get("OSM_TOKEN_KEY") or "").strip()
    if not key:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        secret = current_app.config["SECRET_KEY"]
        secret = secret.encode() if isinstance(secret, str) else secret
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(secret)
        key = base64.urlsafe_b64encode(derived)
    try:
        return Fernet(key)
    except ValueError:
        raise ValueError("OSM_TOKEN_KEY must be a Fernet key (32 url-safe base64-encoded bytes, "
                         "as Fernet.generate_key() makes)") from None


def encrypt_token(token: str) -> bytes:
    """The token encrypted with the token key, as stored in OsmAccount.token_encrypted."""
    return _fernet().encrypt(token.encode())


def decrypt_token(blob: bytes) -> str:
    """The token of encrypt_token(); osm_token_unreadable when the key has changed since."""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().decrypt(bytes(blob)).decode()
    except InvalidToken:
        raise Conflict("osm_token_unreadable") from None


def account_of(organiser_id) -> OsmAccount | None:
    """The organiser's linked OSM account, or None."""
    return db.session.get(OsmAccount, organiser_id)


def token_for(organiser_id) -> str | None:
    """The organiser's OSM token, decrypted, or None when no account is linked."""
    account = account_of(organiser_id)
    return decrypt_token(account.token_encrypted) if account else None


def cli_token() -> str | None:
    """The token of OSM_ACCESS_TOKEN (the CLI and scripts), or None when unset."""
    return os.environ.get("OSM_ACCESS_TOKEN", "").strip() or None


def oauth_configured() -> bool:
    """Whether the application is registered on the OSM site (its client id is set)."""
    return bool(current_app.config.get("OSM_OAUTH_CLIENT_ID"))


def _settings():
    config = current_app.config
    return (config["OSM_AUTH_URL"].rstrip("/"), config["OSM_OAUTH_CLIENT_ID"],
            config["OSM_OAUTH_CLIENT_SECRET"], config.get("OSM_API_TIMEOUT", 30))


def _client():
    """Authlib's client of the OSM site, registered for this app at first use and again when
    its settings change (tests point OSM_AUTH_URL at a stand-in)."""
    from authlib.integrations.flask_client import OAuth

    app = current_app._get_current_object()
    settings = _settings()
    known = app.extensions.get(EXTENSION)
    if known is not None and known[0] == settings:
        return known[1]
    auth_url, client_id, client_secret, timeout = settings
    client = OAuth(app).register(
        CLIENT_NAME, client_id=client_id, client_secret=client_secret or None,
        authorize_url=f"{auth_url}/oauth2/authorize", access_token_url=f"{auth_url}/oauth2/token",
        user_agent=api.user_agent(),
        client_kwargs={"scope": SCOPES, "code_challenge_method": "S256", "default_timeout": timeout,
                       # A public client (PKCE, no secret) does not authenticate at the token endpoint.
                       "token_endpoint_auth_method": "client_secret_basic" if client_secret else "none"})
    app.extensions[EXTENSION] = (settings, client)
    return client


def _redirect_uri():
    """The callback's address as registered on the OSM site: on PUBLIC_URL when it is set (behind
    a proxy the request's host may not be the public one)."""
    return external_url("osmaccount.callback")


def _say(key, level="status", **params):
    """A message for the account's part of the OSM changes page, shown once."""
    flash({"text": key, "params": params, "level": level}, FLASH_CATEGORY)


def _refused(error):
    """Say why, in the reader's language once the page shows it."""
    _say(f"error.{error.code}", level="error", **error.detail()["params"])


def _back(slug):
    return redirect(url_for("osmchanges.page", slug=slug, _anchor="osm-account"))


@bp.get("/<slug>/osm-account/link")
@event_organiser_required
def link(event, organiser):
    """Send the organiser to the OSM site to authorize cartoparty (PKCE S256, a fresh state)."""
    if not oauth_configured():
        _refused(Conflict("osm_link_not_configured"))
        return _back(event.slug)
    session[EVENT_KEY] = event.slug
    return _client().authorize_redirect(_redirect_uri())


@bp.get("/osm-account/callback")
def callback():
    """Back from the OSM site: store the account and its token, or say why not; then the page."""
    organiser = signed_in_organiser()
    if organiser is None:
        return redirect(url_for("accounts.sign_in"))
    slug = session.pop(EVENT_KEY, None)
    if slug is None:
        return redirect(url_for("organise.home"))
    event = load_event(slug)
    if not event.is_organised_by(organiser):
        raise Forbidden("not_organiser")
    previous = account_of(organiser.id)
    replaced = _revocable(previous)
    try:
        token, scopes = _exchange_code()
        account = _store(organiser, previous, token, scopes, _user_details(token))
        db.session.commit()
    except CartopartyError as error:
        db.session.rollback()
        _refused(error)
    else:
        _say("oa_linked_now", name=account.display_name)
        if replaced and replaced != token:  # OSM gives the same token again for the same account
            revoke(replaced)
    return _back(slug)


def _store(organiser, account, token, scopes, user):
    """The organiser's OsmAccount for this token and OSM user, new or replacing the previous."""
    account = account or OsmAccount(organiser_id=organiser.id)
    account.osm_uid, account.display_name = user["id"], user["display_name"]
    account.token_encrypted = encrypt_token(token)
    account.scopes = scopes
    account.linked_at = func.now()
    db.session.add(account)
    return account


def _exchange_code():
    """(access token, scopes) for the callback's code, its state and PKCE verifier checked by
    Authlib; a CartopartyError saying why not."""
    from authlib.integrations.base_client import MismatchingStateError, OAuthError
    from requests import RequestException

    client = _client()
    error = request.args.get("error")
    if error:
        client.framework.clear_state_data(session, request.args.get("state"))
        if error == "access_denied":
            raise CartopartyError("osm_link_denied")
        raise CartopartyError("osm_link_refused", reason=error[:100])
    try:
        token = client.authorize_access_token()
    except MismatchingStateError:
        raise CartopartyError("osm_link_expired") from None
    except OAuthError as refusal:
        raise CartopartyError("osm_link_refused", reason=str(refusal.error)[:100]) from None
    except (RequestException, ValueError):
        # Refused, time-out, an error page or an answer that is not a token.
        raise CartopartyError("osm_auth_unreachable", status=502, url=_settings()[0]) from None
    finally:
        g.pop(f"_oauth_token_{CLIENT_NAME}", None)  # Authlib keeps it there for the request
    access_token, scopes = token.get("access_token"), token.get("scope") or SCOPES
    if not access_token or "write_api" not in scopes.split():
        # Useless for uploads, and no stored token lacks write_api: nobody else holds it.
        revoke(access_token)
        raise CartopartyError("osm_link_scope")
    return access_token, scopes


def _user_details(token):
    """{"id", "display_name"} of the token's OSM user. The token is not revoked when this fails:
    OSM may have given it to another organiser linking the same OSM account, and gives it again
    at the next try."""
    config = current_app.config
    uid, name = api.user_details(config["OSM_API_URL"], token, timeout=config.get("OSM_API_TIMEOUT", 30))
    return {"id": uid, "display_name": name[:255]}


def _revocable(account):
    """The account's token, when it can be read and no other organiser links the same OSM
    account (OSM gives one application the same token for one OSM account: theirs too)."""
    if account is None:
        return None
    try:
        token = decrypt_token(account.token_encrypted)
    except CartopartyError:
        return None
    shared = db.session.scalar(db.select(db.exists().where(
        OsmAccount.osm_uid == account.osm_uid, OsmAccount.organiser_id != account.organiser_id)))
    return None if shared else token


def revoke(token):
    """Revoke a token at the OSM site's /oauth2/revoke, best effort: True when it said yes."""
    from authlib.integrations.requests_client import OAuth2Session
    from requests import RequestException

    if not token:
        return False
    auth_url, client_id, client_secret, timeout = _settings()
    method = "client_secret_basic" if client_secret else "none"
    with OAuth2Session(client_id, client_secret or None, revocation_endpoint_auth_method=method,
                       default_timeout=timeout) as client:
        client.headers["User-Agent"] = api.user_agent()
        try:
            answer = client.revoke_token(f"{auth_url}/oauth2/revoke", token=token,
                                         token_type_hint="access_token")  # noqa: S106 (a hint)
        except RequestException as error:
            current_app.logger.warning("OSM token revocation failed: %s", type(error).__name__)
            return False
    if not answer.ok:
        current_app.logger.warning("OSM token revocation answered %d", answer.status_code)
    return answer.ok


@bp.post("/<slug>/osm-account/unlink")
@event_organiser_required
def unlink(event, organiser):
    """Forget the organiser's OSM account and revoke its token (best effort)."""
    account = account_of(organiser.id)
    if account is not None:
        token = _revocable(account)
        db.session.delete(account)
        db.session.commit()
        revoke(token)
        _say("oa_unlinked")
    return _back(event.slug)
