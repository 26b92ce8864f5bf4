"""A local stand-in of the OSM API 0.6 and of openstreetmap.org's OAuth 2.0 for tests, speaking
the real formats and error texts (../shared/data/osm_api/API-FACTS.md and its sample bodies).

It holds elements, accounts, tokens and changesets in memory: reads (multi-fetch, single), the
user's details, changesets (create, read, upload as one all-or-nothing transaction, close,
download rebuilt from history) and the OAuth 2.0 authorization-code grant with PKCE, on
`.auth_url` like https://www.openstreetmap.org. Time comes from `.now` (a test may replace it or
call `advance()`). Faults a test switches on: down, slow, and one-shot ones (fail_next, drop
before or after applying, hang, a slow upload holding the changeset's lock).

Each call is a function registered with @route in ROUTES; it gets the stand-in and a Call (the
path's regex match, query, body, headers) and returns (status, body, content type[, headers]),
usually through _xml() or _error(), or raises ApiError. Routes run under the stand-in's lock,
except the upload, which takes it itself so that a second upload can meet the changeset's lock.
"""

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree as ET  # writing only; parsing goes through defusedxml

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

GENERATOR = "cartoparty OSM API stand-in"
OSM_ATTRIBUTES = {"version": "0.6", "generator": GENERATOR,
                  "copyright": "OpenStreetMap and contributors",
                  "attribution": "http://www.openstreetmap.org/copyright",
                  "license": "http://opendatacommons.org/licenses/odbl/1-0/"}
OSM_TYPES = ("node", "way", "relation")
XML = "application/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
# Apache's default LimitRequestLine; beyond it openstreetmap.org answers 414.
MAX_REQUEST_LINE = 8192
# cgimap cuts the Error header to 250 characters.
ERROR_HEADER_LENGTH = 250
# The repository defaults (API-FACTS.md, "Limits"): MAX_ELEMENTS, IDLE_TIMEOUT, MAX_TIME_OPEN,
# cgimap's payload limit, a new account's bounding box (width + height, degrees) and hourly changes.
MAX_CHANGES = 10_000
IDLE_TIMEOUT = timedelta(hours=1)
MAX_TIME_OPEN = timedelta(hours=24)
MAX_PAYLOAD = 50_000_000
MAX_BBOX_SIZE = 3.0
HOURLY_LIMIT = 1000
MAX_WAY_NODES = 2000
MAX_TAG_LENGTH = 255
# Doorkeeper's default authorization_code_expires_in.
CODE_LIFETIME = timedelta(minutes=10)
# openstreetmap-website's lib/oauth.rb scopes, with the words its authorization page uses.
SCOPES = {"read_prefs": "Read user preferences", "write_prefs": "Modify user preferences",
          "write_diary": "Create diary entries and comments", "write_api": "Modify the map",
          "read_gpx": "Read private GPS traces", "write_gpx": "Upload GPS traces",
          "write_notes": "Modify notes", "write_redactions": "Redact map data",
          "consume_messages": "Read, update status and delete user messages",
          "send_messages": "Send private messages to other users",
          "openid": "Sign in using OpenStreetMap"}
ALL_SCOPES = tuple(SCOPES)
OOB = "urn:ietf:wg:oauth:2.0:oob"
UPLOAD = r"POST /changeset/\d+/upload"
# Doorkeeper's en.yml descriptions of the OAuth errors.
OAUTH_ERRORS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported "
                       "parameter value, or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client authentication "
                      "included, or unsupported authentication method.",
    "invalid_redirect_uri": "The requested redirect uri is malformed or doesn't match client redirect URI.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "invalid_grant": "The provided authorization grant is invalid, expired, revoked, does not match "
                     "the redirection URI used in the authorization request, or was issued to "
                     "another client.",
    "access_denied": "The resource owner or authorization server denied the request.",
    "unsupported_response_type": "The authorization server does not support this response type.",
    "unsupported_grant_type": "The authorization grant type is not supported by the authorization server.",
    "invalid_code_challenge_method": "The code challenge method must be plain or S256.",
}
CAPABILITIES = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="cartoparty OSM API stand-in" copyright="OpenStreetMap and contributors" \
attribution="http://www.openstreetmap.org/copyright" license="http://opendatacommons.org/licenses/odbl/1-0/">
 <api>
  <version minimum="0.6" maximum="0.6"/>
  <area maximum="0.25"/>
  <note_area maximum="25"/>
  <tracepoints per_page="5000"/>
  <waynodes maximum="2000"/>
  <relationmembers maximum="32000"/>
  <changesets maximum_elements="{max_changes}" default_query_limit="100" maximum_query_limit="100"/>
  <timeout seconds="300"/>
  <status database="online" api="online" gpx="online"/>
 </api>
</osm>
"""

ROUTES = []


def route(method, pattern, locked=True):
    """Register a function answering `method` on the paths that pattern (a regex) matches whole;
    locked=False for a function that takes the stand-in's lock itself."""
    def register(function):
        ROUTES.append((method, re.compile(pattern), function, locked))
        return function
    return register


class ApiError(Exception):
    """An error answer, raised by a route: the status and the API's text (text/plain)."""

    def __init__(self, status, text=""):
        super().__init__(text)
        self.status, self.text = status, text


@dataclass
class Call:
    """One request as a route sees it: the path's match, the query, the body and the headers."""

    method: str
    path: str
    match: re.Match
    query: dict
    body: bytes
    headers: object

    def form(self):
        """The body's form fields, {name: first value}."""
        fields = parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}


@dataclass
class Stored:
    """One element as the stand-in holds it: its current version only."""

    osm_type: str
    osm_id: int
    version: int = 1
    visible: bool = True
    tags: dict = field(default_factory=dict)
    lat: float | None = None
    lon: float | None = None
    nodes: tuple = ()
    members: tuple = ()
    changeset: int = 1
    timestamp: str = "2026-06-01T10:00:00Z"
    user: str = "Dominique"
    uid: int = 4242


@dataclass(eq=False)
class Account:
    """An OSM account; hourly_limit is its changes per hour (API-FACTS.md: 1,000 when new)."""

    uid: int
    display_name: str
    hourly_limit: int = HOURLY_LIMIT
    account_created: datetime | None = None


@dataclass(eq=False)
class Token:
    """An access token's grant: whose account, which scopes, issued to which client (if any)."""

    account: Account
    scopes: tuple
    client_id: str | None = None
    created_at: datetime | None = None


@dataclass(eq=False)
class Changeset:
    """A changeset; closed_at is when it closes (or closed), moved on by each upload as cgimap does."""

    id: int
    account: Account
    tags: dict
    created_at: datetime
    closed_at: datetime
    changes_count: int = 0
    bbox: tuple | None = None  # (min_lat, min_lon, max_lat, max_lon), WGS84 degrees


@dataclass(eq=False)
class Client:
    """An OAuth 2.0 application registered on the OSM site; secret None for a public client."""

    client_id: str
    secret: str | None
    redirect_uris: tuple
    name: str
    scopes: tuple


@dataclass(eq=False)
class Code:
    """An authorization code waiting to be exchanged for a token."""

    client_id: str
    redirect_uri: str
    scopes: tuple
    account: Account
    challenge: str | None
    method: str
    issued_at: datetime


@dataclass
class _Fault:
    """A one-shot fault for the next request that `when` matches (None: any request)."""

    when: tuple | None  # (method or None, compiled path regex)
    answer: tuple | None = None  # (status, body, content type), answered without touching state
    apply: bool = False  # handle the request (state changes) before closing the connection
    hang: float = 0  # seconds to hold the connection before closing it unanswered

    def matches(self, method, path):
        """Whether this fault is for a request of method on path."""
        if self.when is None:
            return True
        wanted, pattern = self.when
        return (wanted is None or wanted == method) and pattern.fullmatch(path) is not None


class OsmApiStandIn:
    """The OSM API 0.6 at `.url` and its OAuth 2.0 site at `.auth_url`, on 127.0.0.1 (a free
    port); `.close()` when done."""

    def __init__(self):
        self.elements = {}  # (osm_type, osm_id) -> Stored
        self.history = []  # Stored: every version an upload made, in order
        self.changesets = {}  # id -> Changeset
        self.accounts = {}  # uid -> Account
        self.tokens = {}  # access token -> Token
        self.clients = {}  # client_id -> Client
        self.authorize_as = None  # the Account "signed in" on the OSM site, for /oauth2/authorize
        self.requests = []  # the path (and query) of every request, in order
        self.calls = []  # (method, path and query) of every request, beside .requests
        self.headers = []  # the headers of every request, beside .requests (names in any case)
        self.now = lambda: datetime.now(UTC)  # the clock; a test may replace it
        self.max_changes = MAX_CHANGES
        self.max_bbox_size = MAX_BBOX_SIZE
        self.max_payload = MAX_PAYLOAD
        self._faults = []
        self._delay = 0
        self._upload_delay = 0
        self._codes = {}
        self._changeset_locks = {}
        self._next_ids = dict.fromkeys(OSM_TYPES, 0)
        self._last_changeset = 1000
        self._last_uid = 10_000
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        self.auth_url = f"http://127.0.0.1:{self._server.server_port}"
        self.url = f"{self.auth_url}/api/0.6"
        # A short poll interval: close() waits for it, after every test.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def close(self):
        """Stop serving (again is fine); answers held by slow(), hang_next() or slow_upload() are let go."""
        self._closed.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def down(self):
        """Close the socket: connections to .url are refused from now on."""
        self.close()

    # Faults: each one-shot fault serves the first later request it matches, in the order set.

    def fail_next(self, status, body, content_type=TEXT, when=None):
        """Answer the next request (after those already set to fail) with this status and body,
        without touching any state; `when`, e.g. "PUT /changeset/\\d+/close", limits it to the
        requests of that method (optional) whose path the regex matches, /api/0.6 optional."""
        self._add_fault(_Fault(_when(when), answer=(status, body, content_type)))

    def drop_before_apply(self, when=UPLOAD):
        """Close the connection of the next upload unanswered, without applying anything."""
        self._add_fault(_Fault(_when(when)))

    def drop_after_apply(self, when=UPLOAD):
        """Apply (commit) the next upload, then close its connection before any answer."""
        self._add_fault(_Fault(_when(when), apply=True))

    def hang_next(self, seconds, when=None, applied=False):
        """Hold the next request `seconds` (or until close()) and close its connection unanswered;
        applied=True handles it first, as a server that commits but whose answer never comes."""
        self._add_fault(_Fault(_when(when), apply=applied, hang=seconds))

    def slow(self, seconds):
        """Hold each answer this many seconds (until close())."""
        self._delay = seconds

    def slow_upload(self, seconds):
        """Make the next upload hold its changeset's lock `seconds` before applying (a second
        upload meanwhile gets 409 locked)."""
        self._upload_delay = seconds

    def hold_lock(self, changeset_id):
        """Lock a changeset as a running upload would, until release_lock()."""
        with self._lock:
            lock = self._changeset_lock(changeset_id)
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"changeset {changeset_id} is locked already")

    def release_lock(self, changeset_id):
        """Let go of a lock taken by hold_lock()."""
        self._changeset_locks[changeset_id].release()

    def locked(self, changeset_id):
        """Whether an upload (or hold_lock()) holds the changeset's lock now."""
        with self._lock:
            return self._changeset_lock(changeset_id).locked()

    def _add_fault(self, fault):
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method, path):
        for index, fault in enumerate(self._faults):
            if fault.matches(method, path):
                return self._faults.pop(index)
        return None

    # Time.

    def advance(self, seconds):
        """Move the clock on by this many seconds (whatever clock .now is)."""
        clock = self.now
        self.now = lambda: clock() + timedelta(seconds=seconds)

    def _now(self):
        moment = self.now()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # Accounts and OAuth applications.

    def add_account(self, token, display_name="Mapper", uid=None, scopes=("read_prefs", "write_api"),
                    hourly_limit=HOURLY_LIMIT):
        """An account, with an access token (sent as Authorization: Bearer) granted these scopes."""
        with self._lock:
            if uid is None:
                self._last_uid += 1
                uid = self._last_uid
            account = Account(uid, display_name, hourly_limit, self._now())
            self.accounts[uid] = account
        self.add_token(account, token, scopes)
        return account

    def add_token(self, account, token, scopes=("read_prefs", "write_api")):
        """Another access token for an account, granted these scopes."""
        with self._lock:
            self.tokens[token] = Token(account, tuple(scopes), created_at=self._now())

    def register_client(self, client_id, client_secret, redirect_uris, name="cartoparty",
                        scopes=ALL_SCOPES):
        """An OAuth 2.0 application (client_secret None: a public client). Redirect URIs must be
        https, except on 127.0.0.1 and ::1, as openstreetmap.org's Doorkeeper wants."""
        uris = (redirect_uris,) if isinstance(redirect_uris, str) else tuple(redirect_uris)
        for uri in uris:
            parts = urlsplit(uri)
            if uri != OOB and parts.scheme != "https" and not (
                    parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1")):
                raise ValueError(f"{uri}: OSM wants https redirect URIs, except on 127.0.0.1 and ::1")
        with self._lock:
            self.clients[client_id] = Client(client_id, client_secret, uris, name, tuple(scopes))

    def _account(self, call, scope):
        """The account of the call's Bearer token, if granted scope; else 401 or 403."""
        kind, _, token = (call.headers.get("Authorization") or "").partition(" ")
        grant = self.tokens.get(token.strip()) if kind.lower() == "bearer" else None
        if grant is None:
            raise ApiError(401, "Couldn't authenticate you")
        if scope not in grant.scopes:
            raise ApiError(403, "You have not permitted the application access to this facility")
        return grant.account

    # Elements, as other mappers change them.

    def add_node(self, osm_id, lat, lon, tags=None, version=1):
        """A node at lat, lon (WGS84 degrees)."""
        return self._add(Stored("node", osm_id, version, tags=dict(tags or {}), lat=lat, lon=lon))

    def add_way(self, osm_id, nodes, tags=None, version=1):
        """A way through the nodes of these ids (not checked to exist)."""
        return self._add(Stored("way", osm_id, version, tags=dict(tags or {}), nodes=tuple(nodes)))

    def add_relation(self, osm_id, members, tags=None, version=1):
        """A relation of members, (type, ref, role) tuples."""
        return self._add(Stored("relation", osm_id, version, tags=dict(tags or {}),
                                members=tuple(tuple(member) for member in members)))

    def edit(self, osm_type, osm_id, **changes):
        """Change tags, lat, lon, nodes or members as another mapper would: a new version."""
        unknown = set(changes) - {"tags", "lat", "lon", "nodes", "members"}
        if unknown:
            raise TypeError(f"cannot edit {sorted(unknown)}")
        with self._lock:
            stored = self.elements[osm_type, osm_id]
            if not stored.visible:
                raise ValueError(f"{osm_type} {osm_id} is deleted")
            for name, value in changes.items():
                setattr(stored, name, dict(value) if name == "tags" else value)
            self._new_version(stored)

    def delete(self, osm_type, osm_id):
        """Delete an element as another mapper would: a new version, invisible, no tags, no coordinates."""
        with self._lock:
            stored = self.elements[osm_type, osm_id]
            stored.visible, stored.tags, stored.lat, stored.lon = False, {}, None, None
            stored.nodes, stored.members = (), ()
            self._new_version(stored)

    def load_osm_xml(self, source):
        """Hold the nodes, ways and relations of an OSM XML file (a path) or document (bytes)."""
        text = source if isinstance(source, bytes) else Path(source).read_bytes()
        for xml in SafeET.fromstring(text):
            if xml.tag in OSM_TYPES:
                self._add(_stored(xml))

    def _add(self, stored):
        with self._lock:
            self.elements[stored.osm_type, stored.osm_id] = stored
        return stored

    def _new_version(self, stored):
        self._last_changeset += 1
        stored.version += 1
        stored.changeset = self._last_changeset
        stored.timestamp = _iso(self._now())

    # Changesets.

    def is_open(self, changeset):
        """Whether a changeset is open (not closed explicitly, idle or too old). A full one is
        still open, as both servers say, but takes no more changes."""
        return self._now() < changeset.closed_at

    def _owned_changeset(self, changeset_id, account):
        changeset = self.changesets.get(changeset_id)
        if changeset is None:
            raise ApiError(404, "")  # cgimap's check_user_owns_changeset: an empty 404
        if changeset.account is not account:
            raise ApiError(409, "The user doesn't own that changeset")
        return changeset

    def _changeset_lock(self, changeset_id):
        return self._changeset_locks.setdefault(changeset_id, threading.Lock())

    def _check_open(self, changeset, full_too=False):
        if not self.is_open(changeset):
            raise ApiError(409, f"The changeset {changeset.id} was closed at {_utc(changeset.closed_at)}")
        if full_too and changeset.changes_count >= self.max_changes:
            # cgimap's lock_current_changeset: a full changeset is "closed" now, to an upload.
            raise ApiError(409, f"The changeset {changeset.id} was closed at {_utc(self._now())}")

    # Requests.

    def answer(self, method, path, query="", body=b"", headers=None):
        """(status, body, content type[, headers]) of a request, by its fault or the first route
        that matches; None to close the connection unanswered."""
        with self._lock:
            fault = self._take_fault(method, path)
        if fault is not None and fault.answer is not None:
            return fault.answer
        if fault is not None:
            if fault.apply:
                self._route(method, path, query, body, headers)
            self._closed.wait(fault.hang)
            return None
        return self._route(method, path, query, body, headers)

    def _route(self, method, path, query, body, headers):
        for route_method, pattern, function, locked in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                call = Call(method, path, match, parse_qs(query, keep_blank_values=True), body,
                            headers if headers is not None else {})
                try:
                    if not locked:
                        return function(self, call)
                    with self._lock:
                        return function(self, call)
                except ApiError as error:
                    return _error(error.status, error.text)
        return _error(404, "")


def _when(when):
    """(method or None, path regex) of a fault's target, from "PUT /changeset/\\d+/close"."""
    if when is None:
        return None
    method, _, pattern = when.strip().partition(" ")
    if not pattern:
        method, pattern = None, method
    return method, re.compile(r"(?:/api/0\.6)?" + pattern.strip())


def _iso(moment):
    """A timestamp as the API writes it in XML: 2026-06-01T10:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment):
    """A time as cgimap writes it in its texts: 2024-03-01 10:00:00 UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _stored(xml):
    """A Stored element from an XML <node>, <way> or <relation> of an OSM file."""
    attrib = xml.attrib
    stored = Stored(
        xml.tag, int(attrib["id"]), version=int(attrib.get("version", 1)),
        visible=attrib.get("visible", "true") != "false",
        tags={tag.get("k"): tag.get("v") for tag in xml.findall("tag")},
        lat=float(attrib["lat"]) if "lat" in attrib else None,
        lon=float(attrib["lon"]) if "lon" in attrib else None,
        nodes=tuple(int(nd.get("ref")) for nd in xml.findall("nd")),
        members=tuple((m.get("type"), int(m.get("ref")), m.get("role", "")) for m in xml.findall("member")))
    for name in ("changeset", "uid"):
        if name in attrib:
            setattr(stored, name, int(attrib[name]))
    for name in ("timestamp", "user"):
        if name in attrib:
            setattr(stored, name, attrib[name])
    return stored


# Writing answers.

def _document(root):
    """An XML document in the API's layout (one-space indent, <tag …/>)."""
    ET.indent(root, space=" ")
    # ElementTree writes <tag … />; the API writes <tag …/> (">" in values is escaped as &gt;).
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False).replace(b" />", b"/>")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def _element(parent, stored):
    """Append an element to parent, with its attributes in the API's order."""
    attrib = {"id": str(stored.osm_id), "visible": "true" if stored.visible else "false",
              "version": str(stored.version), "changeset": str(stored.changeset),
              "timestamp": stored.timestamp, "user": stored.user, "uid": str(stored.uid)}
    if stored.visible and stored.osm_type == "node":
        attrib |= {"lat": f"{stored.lat:.7f}", "lon": f"{stored.lon:.7f}"}
    xml = ET.SubElement(parent, stored.osm_type, attrib)
    for ref in stored.nodes:
        ET.SubElement(xml, "nd", {"ref": str(ref)})
    for osm_type, ref, role in stored.members:
        ET.SubElement(xml, "member", {"type": osm_type, "ref": str(ref), "role": role})
    for key, value in stored.tags.items():
        ET.SubElement(xml, "tag", {"k": key, "v": value})


def _xml(elements):
    """A 200 answer: the elements in an <osm> document."""
    root = ET.Element("osm", OSM_ATTRIBUTES)
    for stored in elements:
        _element(root, stored)
    return 200, _document(root), XML


def _error(status, text):
    """An error answer as the API gives it: text/plain (the same text goes in the Error header)."""
    return status, text.encode(), TEXT


def _json(status, data, headers=None):
    return status, json.dumps(data).encode(), JSON, headers or {}


# Reads.

@route("GET", r"/api/0\.6/capabilities")
def capabilities(api, call):
    """The API's limits."""
    return 200, CAPABILITIES.format(max_changes=api.max_changes).encode(), XML


@route("GET", r"/api/0\.6/(node|way|relation)s")
def multi_fetch(api, call):
    """GET /nodes?nodes=1,2,3: the current versions, deleted ones too; 404 if any id never
    existed, 400 for an empty or malformed list (versioned ids, 1v2, are not supported here)."""
    osm_type, plural = call.match[1], f"{call.match[1]}s"
    text = (call.query.get(plural) or [""])[0]
    if not re.fullmatch(r"\d+(,\d+)*", text):
        # The text of cgimap's nodes_handler.cpp (validate_request).
        return _error(400, f"The parameter {plural} is required, and must be of the form "
                           f"{plural}=ID[vVER][,ID[vVER][,ID[vVER]...]].")
    ids = sorted({int(osm_id) for osm_id in text.split(",")})
    if any((osm_type, osm_id) not in api.elements for osm_id in ids):
        # The text of cgimap's nodes_handler.cpp, which serves multi-fetches on openstreetmap.org;
        # API-FACTS.md does not confirm it (the Rails port may word it otherwise).
        return _error(404, f"One or more of the {plural} were not found.")
    return _xml(api.elements[osm_type, osm_id] for osm_id in ids)


@route("GET", r"/api/0\.6/(node|way|relation)/(\d+)")
def single_fetch(api, call):
    """GET /node/N: its current version; 410 if deleted, 404 if it never existed."""
    osm_type, osm_id = call.match[1], int(call.match[2])
    stored = api.elements.get((osm_type, osm_id))
    if stored is None:
        return _error(404, f"{osm_type.capitalize()} {osm_id} was not found.")  # cgimap's text
    if not stored.visible:
        return _error(410, f"The {osm_type} with the id {osm_id} has already been deleted")
    return _xml([stored])


@route("GET", r"/api/0\.6/user/details(\.json)?")
def user_details(api, call):
    """The token's account (read_prefs), in XML or (details.json) JSON."""
    account = api._account(call, "read_prefs")
    count = sum(changeset.account is account for changeset in api.changesets.values())
    created = _iso(account.account_created)
    if call.match[1]:
        user = {"id": account.uid, "display_name": account.display_name, "account_created": created,
                "description": "", "contributor_terms": {"agreed": True, "pd": False}, "roles": [],
                "changesets": {"count": count}, "traces": {"count": 0},
                "blocks": {"received": {"count": 0, "active": 0}}, "languages": ["en"],
                "messages": {"received": {"count": 0, "unread": 0}, "sent": {"count": 0}}}
        data = {key: OSM_ATTRIBUTES[key] for key in ("version", "generator", "copyright",
                                                     "attribution", "license")}
        return _json(200, data | {"user": user})
    root = ET.Element("osm", OSM_ATTRIBUTES)
    user = ET.SubElement(root, "user", {"id": str(account.uid), "display_name": account.display_name,
                                        "account_created": created})
    ET.SubElement(user, "description").text = ""
    ET.SubElement(user, "contributor-terms", {"agreed": "true", "pd": "false"})
    ET.SubElement(user, "roles")
    ET.SubElement(user, "changesets", {"count": str(count)})
    ET.SubElement(user, "traces", {"count": "0"})
    ET.SubElement(ET.SubElement(user, "blocks"), "received", {"count": "0", "active": "0"})
    ET.SubElement(ET.SubElement(user, "languages"), "lang").text = "en"
    messages = ET.SubElement(user, "messages")
    ET.SubElement(messages, "received", {"count": "0", "unread": "0"})
    ET.SubElement(messages, "sent", {"count": "0"})
    return 200, _document(root), XML


# Changesets.

def _tags(xml, name):
    """{key: value} of xml's <tag>s; name ("Node -1") words the errors as cgimap does for
    elements, None as it does for a changeset."""
    tags, where = {}, f" in {name}" if name else ""
    for tag in xml.findall("tag"):
        key, value = tag.get("k"), tag.get("v")
        if key is None or value is None:
            raise ApiError(400, f"Mandatory field k or v missing in tag{where}")
        if not key:
            raise ApiError(400, f"Key may not be empty{where}")
        for kind, text in (("Key", key), ("Value", value)):
            if len(text) > MAX_TAG_LENGTH:  # Python counts Unicode characters, as the API does
                raise ApiError(400, f"{kind} has more than 255 unicode characters{where}")
        if key in tags:
            # cgimap's wording for elements; the Rails port's for a changeset.
            raise ApiError(400, f"{name} has duplicate tags with key {key}" if name
                           else f"Element changeset/ has duplicate tags with key {key}")
        tags[key] = value
    return tags


def _parse(body, what):
    try:
        return SafeET.fromstring(body)
    except (ET.ParseError, DefusedXmlException) as error:
        raise ApiError(400, f"Cannot parse valid {what} from xml string. {error}") from None


@route("PUT", r"/api/0\.6/changeset/create")
def changeset_create(api, call):
    """A new open changeset of the token's account (write_api): its id, as plain text."""
    account = api._account(call, "write_api")
    root = _parse(call.body, "changeset")
    xml = root.find("changeset") if root.tag == "osm" else None
    if xml is None:
        raise ApiError(400, "Cannot parse valid changeset from xml string. "
                            "XML doesn't contain an osm/changeset element.")
    tags = _tags(xml, None)
    api._last_changeset += 1
    now = api._now()
    changeset = Changeset(api._last_changeset, account, tags, now, now + IDLE_TIMEOUT)
    api.changesets[changeset.id] = changeset
    return 200, str(changeset.id).encode(), TEXT


@route("GET", r"/api/0\.6/changeset/(\d+)")
def changeset_read(api, call):
    """A changeset: open or not, its changes_count, its bounding box once it has one, its tags."""
    changeset = api.changesets.get(int(call.match[1]))
    if changeset is None:
        raise ApiError(404, "")
    is_open = api.is_open(changeset)
    attrib = {"id": str(changeset.id), "created_at": _iso(changeset.created_at)}
    if not is_open:
        attrib["closed_at"] = _iso(changeset.closed_at)
    attrib |= {"open": "true" if is_open else "false", "user": changeset.account.display_name,
               "uid": str(changeset.account.uid)}
    if changeset.bbox is not None:
        attrib |= {name: f"{value:.7f}" for name, value in
                   zip(("min_lat", "min_lon", "max_lat", "max_lon"), changeset.bbox, strict=True)}
    attrib |= {"comments_count": "0", "changes_count": str(changeset.changes_count)}
    root = ET.Element("osm", OSM_ATTRIBUTES)
    xml = ET.SubElement(root, "changeset", attrib)
    for key, value in changeset.tags.items():
        ET.SubElement(xml, "tag", {"k": key, "v": value})
    return 200, _document(root), XML


@route("PUT", r"/api/0\.6/changeset/(\d+)/close")
def changeset_close(api, call):
    """Close a changeset of the token's account: 200 and no body; 409 if closed already."""
    account = api._account(call, "write_api")
    changeset = api._owned_changeset(int(call.match[1]), account)
    if api._changeset_lock(changeset.id).locked():
        raise ApiError(409, f"Changeset {changeset.id} is currently locked by another process.")
    api._check_open(changeset)
    changeset.closed_at = api._now()
    return 200, b"", TEXT


@route("GET", r"/api/0\.6/changeset/(\d+)/download")
def changeset_download(api, call):
    """The osmChange of what a changeset did, from history as cgimap rebuilds it: each version
    it made in its own block (version 1 create, invisible delete, else modify), real ids."""
    changeset = api.changesets.get(int(call.match[1]))
    if changeset is None:
        raise ApiError(404, "")
    made = sorted((stored for stored in api.history if stored.changeset == changeset.id),
                  key=lambda s: (s.timestamp, s.version, OSM_TYPES.index(s.osm_type), s.osm_id))
    root = ET.Element("osmChange", OSM_ATTRIBUTES)
    for stored in made:
        action = "create" if stored.version == 1 else "modify" if stored.visible else "delete"
        _element(ET.SubElement(root, action), stored)
    return 200, _document(root), XML


@route("POST", r"/api/0\.6/changeset/(\d+)/upload", locked=False)
def changeset_upload(api, call):
    """Apply an osmChange to a changeset of the token's account, all of it or nothing, holding
    the changeset's lock meanwhile: the diffResult."""
    with api._lock:
        account = api._account(call, "write_api")
        if len(call.body) > api.max_payload:
            raise ApiError(413, f"Payload exceeds limit of {api.max_payload} bytes")
        changeset = api._owned_changeset(int(call.match[1]), account)
        lock = api._changeset_lock(changeset.id)
        if not lock.acquire(blocking=False):
            # cgimap takes the changeset's row FOR UPDATE NOWAIT.
            raise ApiError(409, f"Changeset {changeset.id} is currently locked by another process.")
        delay, api._upload_delay = api._upload_delay, 0
    try:
        api._closed.wait(delay)
        with api._lock:
            api._check_open(changeset, full_too=True)
            return _Upload(api, changeset).run(call.body)
    finally:
        lock.release()


class _Upload:
    """One upload as one transaction: each element checked and applied in turn to a working copy
    over the stand-in's elements, which replaces them only once everything has passed."""

    def __init__(self, api, changeset):
        self.api, self.changeset = api, changeset
        self.now = api._now()
        self.changed = {}  # (osm_type, osm_id) -> Stored, over api.elements
        self.placeholders = {}  # (osm_type, placeholder id) -> new id
        self.diff = []  # (osm_type, old id, new id or None, new version or None)
        self.versions = []  # Stored: each version made, for the history
        self.points = []  # (lat, lon) touched, for the changeset's bounding box
        self.changes = 0
        self.next_ids = {}

    def run(self, body):
        """The diffResult answer, once everything is applied; ApiError with nothing applied."""
        root = _parse(body, "osmChange")
        if root.tag != "osmChange":
            raise ApiError(400, f"Unknown top-level element {root.tag}, expecting osmChange")
        for block in root:
            if block.tag not in ("create", "modify", "delete"):
                raise ApiError(400, f"Unknown action {block.tag}, choices are create, modify, delete")
            for xml in block:
                if xml.tag not in OSM_TYPES:
                    raise ApiError(400, f"Unknown element {xml.tag}, expecting node, way or relation")
                sent = self._read(block.tag, xml)
                if block.tag == "create":
                    self._create(sent)
                elif block.tag == "modify":
                    self._modify(sent)
                else:
                    self._delete(sent, if_unused="if-unused" in block.attrib)
        bbox = self._check_limits()
        self._commit(bbox)
        return _diff_result(self.diff)

    def _read(self, action, xml):
        """The element as sent: its id, version, tags and place (cgimap's checks of a parsed object)."""
        osm_type, attrib = xml.tag, xml.attrib
        osm_id = _integer(attrib.get("id"), "Mandatory field id missing in object")
        name = f"{osm_type.capitalize()} {osm_id}"
        if "changeset" not in attrib:
            # cgimap goes on with the parser's position, "… for Node -1 at line 1, column 60",
            # which ElementTree does not give: the text stops at the element.
            raise ApiError(400, f"Changeset id is missing for {name}")
        changeset = _integer(attrib["changeset"], f"Changeset id is not a number for {name}")
        if changeset != self.changeset.id:
            raise ApiError(409, f"Changeset mismatch: Provided {changeset} but only "
                                f"{self.changeset.id} is allowed")
        version = 0  # ignored for a create
        if action != "create":
            version = _integer(attrib.get("version"), f"Version is required when updating {name}")
        sent = Stored(osm_type, osm_id, version, tags=_tags(xml, name))
        if osm_type == "node" and action != "delete":
            sent.lat = _coordinate(attrib.get("lat"), "Latitude", 90, name)
            sent.lon = _coordinate(attrib.get("lon"), "Longitude", 180, name)
        elif osm_type == "way":
            sent.nodes = tuple(_integer(nd.get("ref"), f"Missing mandatory ref field on way node {name}")
                               for nd in xml.findall("nd"))
        elif osm_type == "relation":
            sent.members = tuple(_member(member, name) for member in xml.findall("member"))
        return sent

    def _get(self, osm_type, osm_id):
        key = (osm_type, osm_id)
        return self.changed[key] if key in self.changed else self.api.elements.get(key)

    def _real_id(self, osm_type, osm_id):
        """The id an element has on the server: placeholders of this upload resolved."""
        if osm_id >= 0:
            return osm_id
        if (osm_type, osm_id) not in self.placeholders:
            raise ApiError(400, f"Placeholder id not found for {osm_type} reference {osm_id}")
        return self.placeholders[osm_type, osm_id]

    def _current(self, sent):
        """The element's version now (404 if it never existed), and its id on the server."""
        osm_id = self._real_id(sent.osm_type, sent.osm_id)
        current = self._get(sent.osm_type, osm_id)
        if current is None:
            raise ApiError(404, f"The following {sent.osm_type} ids are not known on the database: {osm_id}")
        return current, osm_id

    def _check_version(self, sent, current):
        if sent.version != current.version:
            raise ApiError(409, f"Version mismatch: Provided {sent.version}, server had: "
                                f"{current.version} of {sent.osm_type.capitalize()} {current.osm_id}")

    def _create(self, sent):
        if sent.osm_id >= 0:
            raise ApiError(400, "Placeholder IDs must be negative for created elements.")
        if (sent.osm_type, sent.osm_id) in self.placeholders:
            raise ApiError(400, "Placeholder IDs must be unique for created elements.")
        sent = self._with_refs(sent)
        new_id = self._new_id(sent.osm_type)
        self.placeholders[sent.osm_type, sent.osm_id] = new_id
        new = self._stamp(sent, new_id, 1)
        self._save(new, None)
        self.diff.append((sent.osm_type, sent.osm_id, new_id, 1))

    def _modify(self, sent):
        """Replace the whole element by what was sent. Like cgimap, a modify of a deleted element
        at its current (deleted) version brings it back: only the version is checked."""
        current, osm_id = self._current(sent)
        self._check_version(sent, current)
        new = self._stamp(self._with_refs(sent), osm_id, current.version + 1)
        self._save(new, current)
        self.diff.append((sent.osm_type, sent.osm_id, osm_id, new.version))

    def _delete(self, sent, if_unused):
        current, osm_id = self._current(sent)
        used = None
        if not current.visible:  # cgimap looks at this before the version
            if not if_unused:
                raise ApiError(410, f"The {sent.osm_type} with the id {osm_id} has already been deleted")
        else:
            self._check_version(sent, current)
            used = self._still_used(current)
            if used and not if_unused:
                raise ApiError(412, f"Precondition failed: {used}")
        if if_unused and (used or not current.visible):
            # Skipped: the diffResult gives the element as it is.
            self.diff.append((sent.osm_type, sent.osm_id, osm_id, current.version))
            return
        gone = replace(self._stamp(current, osm_id, current.version + 1), visible=False, tags={},
                       lat=None, lon=None, nodes=(), members=())
        self._save(gone, current)
        self.diff.append((sent.osm_type, sent.osm_id, None, None))

    def _with_refs(self, sent):
        """sent with its way nodes or relation members resolved to server ids, each checked to be
        there and visible (412 otherwise)."""
        name = f"{sent.osm_type} {sent.osm_id}"
        if sent.osm_type == "way":
            if not sent.nodes:
                raise ApiError(412, f"Precondition failed: Way {sent.osm_id} must have at least one node")
            if len(sent.nodes) > MAX_WAY_NODES:
                raise ApiError(400, f"You tried to add {len(sent.nodes)} nodes to way {sent.osm_id}, "
                                    f"however only {MAX_WAY_NODES} are allowed")
            nodes = tuple(self._ref("node", ref, name) for ref in sent.nodes)
            self._check_visible(sent, {"node": nodes})
            return replace(sent, nodes=nodes)
        if sent.osm_type == "relation":
            members = tuple((osm_type, self._ref(osm_type, ref, name), role)
                            for osm_type, ref, role in sent.members)
            by_type = {osm_type: [ref for kind, ref, _ in members if kind == osm_type]
                       for osm_type in OSM_TYPES}
            self._check_visible(sent, by_type)
            return replace(sent, members=members)
        return sent

    def _ref(self, osm_type, ref, name):
        if ref >= 0:
            return ref
        if (osm_type, ref) not in self.placeholders:
            raise ApiError(400, f"Placeholder {osm_type} not found for reference {ref} in {name}")
        return self.placeholders[osm_type, ref]

    def _check_visible(self, sent, refs_by_type):
        for osm_type, refs in refs_by_type.items():
            missing = sorted({ref for ref in refs if not getattr(self._get(osm_type, ref), "visible", False)})
            if missing:
                raise ApiError(412, f"Precondition failed: {sent.osm_type.capitalize()} {sent.osm_id} "
                                    f"requires the {osm_type}s with id in {_ids(missing)}, "
                                    f"which either do not exist, or are not visible.")

    def _still_used(self, current):
        """cgimap's words for what still uses an element about to be deleted, or None."""
        ways, relations = [], []
        for stored in self._all():
            if not stored.visible:
                continue
            if current.osm_type == "node" and stored.osm_type == "way" and current.osm_id in stored.nodes:
                ways.append(stored.osm_id)
            if stored.osm_type == "relation" and any(
                    (kind, ref) == (current.osm_type, current.osm_id) for kind, ref, _ in stored.members):
                relations.append(stored.osm_id)
        name = f"{current.osm_type.capitalize()} {current.osm_id}"
        if ways:
            return f"{name} is still used by ways {_ids(ways)}."
        if relations and current.osm_type == "relation":
            return f"The relation {current.osm_id} is used in relations {_ids(relations)}."
        if relations:
            return f"{name} is still used by relations {_ids(relations)}."
        return None

    def _all(self):
        for key, stored in self.api.elements.items():
            yield self.changed.get(key, stored)
        yield from (stored for key, stored in self.changed.items() if key not in self.api.elements)

    def _new_id(self, osm_type):
        """A new id, above every id of that type held (ids are allocated per type, as on the server)."""
        if osm_type not in self.next_ids:
            held = max((osm_id for kind, osm_id in self.api.elements if kind == osm_type), default=0)
            self.next_ids[osm_type] = max(held, self.api._next_ids[osm_type])
        self.next_ids[osm_type] += 1
        return self.next_ids[osm_type]

    def _stamp(self, element, osm_id, version):
        account = self.changeset.account
        return replace(element, osm_id=osm_id, version=version, visible=True, tags=dict(element.tags),
                       changeset=self.changeset.id, timestamp=_iso(self.now),
                       user=account.display_name, uid=account.uid)

    def _save(self, new, old):
        self._touch(old)
        self.changed[new.osm_type, new.osm_id] = new
        self.versions.append(new)
        self._touch(new)
        self.changes += 1

    def _touch(self, stored):
        """Note where stored lies (its nodes' places for a way or relation), for the bounding box."""
        if stored is None or not stored.visible:
            return
        if stored.osm_type == "node":
            self.points.append((stored.lat, stored.lon))
            return
        refs = [("node", ref) for ref in stored.nodes] + [(kind, ref) for kind, ref, _ in stored.members]
        for kind, ref in refs:
            element = self._get(kind, ref)
            if element is None or not element.visible or kind == "relation":
                continue
            nodes = [element] if kind == "node" else [self._get("node", n) for n in element.nodes]
            self.points.extend((node.lat, node.lon) for node in nodes if node is not None and node.visible)

    def _check_limits(self):
        """The rate limit (429), the changes per changeset (409) and the bounding box (413); the
        changeset's bounding box after this upload."""
        api, changeset, account = self.api, self.changeset, self.changeset.account
        recent = sum(other.changes_count for other in api.changesets.values()
                     if other.account is account and other.created_at >= self.now - timedelta(hours=1))
        if recent + self.changes > account.hourly_limit:
            raise ApiError(429, "Upload has been blocked due to rate limiting. Please try again later.")
        if changeset.changes_count + self.changes > api.max_changes:
            # Refused whole, the changeset left as it was (cgimap's update_changeset).
            raise ApiError(409, f"The changeset {changeset.id} was closed at {_utc(self.now)}")
        points = self.points + ([changeset.bbox[:2], changeset.bbox[2:]] if changeset.bbox else [])
        if not points:
            return None
        lats, lons = [lat for lat, _ in points], [lon for _, lon in points]
        bbox = (min(lats), min(lons), max(lats), max(lons))
        if (bbox[2] - bbox[0]) + (bbox[3] - bbox[1]) > api.max_bbox_size:
            raise ApiError(413, "Changeset bounding box size limit exceeded.")
        return bbox

    def _commit(self, bbox):
        api, changeset = self.api, self.changeset
        api.elements.update(self.changed)
        api.history.extend(replace(stored, tags=dict(stored.tags)) for stored in self.versions)
        api._next_ids.update(self.next_ids)
        changeset.changes_count += self.changes
        changeset.bbox = bbox
        # cgimap's update_changeset: closes an hour after this change, 24 h after creation at most.
        if changeset.closed_at - changeset.created_at > MAX_TIME_OPEN - IDLE_TIMEOUT:
            changeset.closed_at = changeset.created_at + MAX_TIME_OPEN
        else:
            changeset.closed_at = self.now + IDLE_TIMEOUT


def _ids(ids):
    """Ids as the API lists them in its texts: sorted, comma-separated."""
    return ",".join(map(str, sorted(ids)))


def _integer(text, message):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ApiError(400, message) from None


def _coordinate(text, kind, limit, name):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ApiError(400, f"{kind} missing or not a number in {name}") from None
    if not -limit <= value <= limit:
        raise ApiError(400, f"{kind} outside of valid range")
    return value


def _member(xml, name):
    osm_type = (xml.get("type") or "").lower()
    if osm_type not in OSM_TYPES:
        raise ApiError(400, f"Invalid type {xml.get('type')} in member relation")
    ref = _integer(xml.get("ref"), f"Missing mandatory ref field on relation member in {name}")
    role = xml.get("role", "")
    if len(role) > MAX_TAG_LENGTH:
        raise ApiError(400, "Relation Role has more than 255 unicode characters")
    return osm_type, ref, role


def _diff_result(diff):
    """The 200 answer of an upload: old and new id and version of each element, in order."""
    root = ET.Element("diffResult", {"version": "0.6", "generator": GENERATOR})
    for osm_type, old_id, new_id, new_version in diff:
        attrib = {"old_id": str(old_id)}
        if new_id is not None:
            attrib |= {"new_id": str(new_id), "new_version": str(new_version)}
        ET.SubElement(root, osm_type, attrib)
    return 200, _document(root), XML


# OAuth 2.0, as openstreetmap.org's Doorkeeper: authorization code, PKCE, no refresh, no expiry.

@route("GET", r"/\.well-known/oauth-authorization-server")
def oauth_metadata(api, call):
    """RFC 8414 metadata of the authorization server."""
    return _json(200, {
        "issuer": api.auth_url, "authorization_endpoint": f"{api.auth_url}/oauth2/authorize",
        "token_endpoint": f"{api.auth_url}/oauth2/token",
        "revocation_endpoint": f"{api.auth_url}/oauth2/revoke",
        "scopes_supported": list(SCOPES), "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["plain", "S256"]})


@route("GET", r"/login")
def login_page(api, call):
    """Where the site sends a visitor who is not signed in (tests set .authorize_as instead)."""
    return 200, _page("Log in | OpenStreetMap", "<h1>Log in</h1><p>Not signed in.</p>"), HTML


def _page(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title></head>\n<body>\n{body}\n</body></html>\n").encode()


def _redirect(location):
    return 302, b"", HTML, {"Location": location}


def _with_query(uri, **params):
    """uri with params added to its query (those that are None left out)."""
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


def _pre_authorization(api, params):
    """(client, scopes) of a valid authorization request, or the answer refusing it: an error
    page while the redirect URI cannot be trusted, a redirect with the error after (Doorkeeper's order)."""
    client = api.clients.get(params.get("client_id", ""))
    if client is None:
        return None, _error_page("invalid_client")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return None, _error_page("invalid_redirect_uri")

    def refuse(error):
        return None, _redirect(_with_query(redirect_uri, error=error, error_description=OAUTH_ERRORS[error],
                                           state=params.get("state")))

    if params.get("response_type") != "code":
        return refuse("unsupported_response_type")
    scopes = tuple(params.get("scope", "").split())
    if not scopes or any(scope not in SCOPES or scope not in client.scopes for scope in scopes):
        return refuse("invalid_scope")
    if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in ("plain", "S256"):
        return refuse("invalid_code_challenge_method")
    return (client, scopes), None


def _error_page(error):
    body = f"<h1>An error has occurred</h1>\n<p>{html.escape(OAUTH_ERRORS[error])}</p>"
    return 400, _page("OpenStreetMap", body), HTML


@route("GET", r"/oauth2/authorize")
def authorize_page(api, call):
    """The page asking the signed-in mapper (.authorize_as) to authorize the application."""
    params = {name: values[0] for name, values in call.query.items()}
    if api.authorize_as is None:
        return _redirect(f"/login?referer={quote(call.path + '?' + urlencode(params), safe='')}")
    checked, refusal = _pre_authorization(api, params)
    if refusal:
        return refusal
    client, scopes = checked
    if client.secret is not None and _matching_token(api, client, api.authorize_as, scopes):
        # Doorkeeper asks once: a confidential client already granted these scopes gets its code.
        return _grant(api, client, scopes, params)
    hidden = "".join(f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
                     for name, value in params.items())
    rights = "".join(f"<li>{html.escape(SCOPES[scope])}</li>" for scope in scopes)
    body = (f"<p>Signed in as <strong>{html.escape(api.authorize_as.display_name)}</strong></p>\n"
            f"<h1>Authorize {html.escape(client.name)} to access your account?</h1>\n"
            f"<p>{html.escape(client.name)} asks to:</p>\n<ul>{rights}</ul>\n"
            f'<form method="post" action="/oauth2/authorize">{hidden}'
            f'<button type="submit">Authorize</button></form>\n'
            f'<form method="post" action="/oauth2/authorize"><input type="hidden" name="_method" '
            f'value="delete">{hidden}<button type="submit">Deny</button></form>')
    return 200, _page("Authorize access to your account | OpenStreetMap", body), HTML


@route("POST", r"/oauth2/authorize")
def authorize_decision(api, call):
    """The mapper's answer: Authorize (a code) or Deny (_method=delete, as Rails forms send it)."""
    params = call.form()
    if api.authorize_as is None:
        return _redirect("/login")
    checked, refusal = _pre_authorization(api, params)
    if refusal:
        return refusal
    client, scopes = checked
    if params.get("_method", "").lower() == "delete":
        return _redirect(_with_query(params["redirect_uri"], error="access_denied",
                                     error_description=OAUTH_ERRORS["access_denied"],
                                     state=params.get("state")))
    return _grant(api, client, scopes, params)


def _grant(api, client, scopes, params):
    """A new authorization code, sent to the redirect URI (or shown, for the out-of-band URI)."""
    code = secrets.token_urlsafe(32)
    api._codes[code] = Code(client.client_id, params["redirect_uri"], scopes, api.authorize_as,
                            params.get("code_challenge") or None,
                            params.get("code_challenge_method") or "plain", api._now())
    if params["redirect_uri"] == OOB:
        return 200, _page("Authorization code | OpenStreetMap", f"<code>{code}</code>"), HTML
    return _redirect(_with_query(params["redirect_uri"], code=code, state=params.get("state")))


def _matching_token(api, client, account, scopes):
    return next((token for token, grant in api.tokens.items()
                 if grant.client_id == client.client_id and grant.account is account
                 and set(grant.scopes) == set(scopes)), None)


def _oauth_error(status, error, description=None):
    return _json(status, {"error": error, "error_description": description or OAUTH_ERRORS[error]})


def _client(api, call, params):
    """The client authenticated by HTTP Basic or by client_id (and client_secret) in the body, or None."""
    kind, _, credentials = (call.headers.get("Authorization") or "").partition(" ")
    if kind.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        client_id, secret = unquote(client_id), unquote(secret)
    else:
        client_id, secret = params.get("client_id", ""), params.get("client_secret")
    client = api.clients.get(client_id)
    if client is None or (client.secret is not None and not hmac.compare_digest(
            (secret or "").encode(), client.secret.encode())):
        return None
    return client


def _verified(code, verifier):
    """Whether the PKCE verifier matches the code's challenge (no challenge: nothing to match)."""
    if code.challenge is None:
        return True
    if not verifier:
        return False
    if code.method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        verifier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(verifier.encode(), code.challenge.encode())


@route("POST", r"/oauth2/token")
def token(api, call):
    """An access token for an authorization code: JSON, no refresh token, no expiry."""
    if not (call.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
        return _oauth_error(400, "invalid_request")  # Doorkeeper's enforce_content_type
    params = call.form()
    client = _client(api, call, params)
    if client is None:
        return _oauth_error(401, "invalid_client")
    if params.get("grant_type") != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type")
    code = api._codes.get(params.get("code", ""))
    if (code is None or code.client_id != client.client_id or api._now() - code.issued_at > CODE_LIFETIME
            or params.get("redirect_uri") != code.redirect_uri
            or not _verified(code, params.get("code_verifier"))):
        return _oauth_error(400, "invalid_grant")
    del api._codes[params["code"]]
    # openstreetmap.org turns reuse_access_token on: the same grant gives the same token again.
    access_token = _matching_token(api, client, code.account, code.scopes)
    if access_token is None:
        access_token = secrets.token_urlsafe(32)
        api.tokens[access_token] = Token(code.account, code.scopes, client.client_id, api._now())
    grant = api.tokens[access_token]
    return _json(200, {"access_token": access_token, "token_type": "Bearer", "scope": " ".join(grant.scopes),
                       "created_at": int(grant.created_at.timestamp())},
                 {"Cache-Control": "no-store", "Pragma": "no-cache"})


@route("POST", r"/oauth2/revoke")
def revoke(api, call):
    """Revoke a token (RFC 7009): 200 whether it existed or not, and it stops working; a token of
    a confidential client only by that client (Doorkeeper's RevokeController)."""
    params = call.form()
    grant = api.tokens.get(params.get("token", ""))
    issuer = api.clients.get(grant.client_id) if grant is not None and grant.client_id else None
    if issuer is not None and issuer.secret is not None and _client(api, call, params) is not issuer:
        return _oauth_error(403, "unauthorized_client", "You are not authorized to revoke this token")
    api.tokens.pop(params.get("token", ""), None)
    return _json(200, {})


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the stand-in (self.server.stand_in) and writes its answer."""

    def do_GET(self):
        self._serve()

    do_PUT = do_POST = do_DELETE = do_GET

    def _serve(self):
        api = self.server.stand_in
        path, _, query = self.path.partition("?")
        with api._lock:
            api.requests.append(self.path)
            api.calls.append((self.command, self.path))
            api.headers.append(self.headers)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api._closed.wait(api._delay)
        if len(self.requestline.encode()) > MAX_REQUEST_LINE:
            # The web server in front refuses it before the API sees it.
            answer = _error(414, "Request-URI Too Long")
        else:
            answer = api.answer(self.command, path, query, body, self.headers)
        if answer is None:
            self.close_connection = True  # closed without a status line: a dropped connection
            return
        self._write(*answer)

    def _write(self, status, body, content_type, headers=None):
        body = body.encode() if isinstance(body, str) else body
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status >= 400 and content_type.startswith("text/plain"):
                text = " ".join(body.decode("utf-8", errors="replace").split())[:ERROR_HEADER_LENGTH]
                self.send_header("Error", text.encode("latin-1", errors="replace").decode("latin-1"))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a test's time-out)

    def log_message(self, *args):
        pass
