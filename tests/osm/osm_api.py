"""A local stand-in of the OSM API 0.6 for tests, speaking the real formats (../shared/data/osm_api/
API-FACTS.md and its sample bodies): elements held in memory, read with the multi-fetch and
single-element calls, and faults a test can switch on (down, failing, slow).

Each call is a function registered with @route in ROUTES; more calls (changesets) are added the
same way. A route gets the stand-in, the path's regex match, the query parameters and the body,
and returns (status, body, content type), usually through _xml() or _error().
"""

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET  # writing only; parsing goes through defusedxml

from defusedxml import ElementTree as SafeET

OSM_ATTRIBUTES = {"version": "0.6", "generator": "cartoparty OSM API stand-in",
                  "copyright": "OpenStreetMap and contributors",
                  "attribution": "http://www.openstreetmap.org/copyright",
                  "license": "http://opendatacommons.org/licenses/odbl/1-0/"}
# Apache's default LimitRequestLine; beyond it openstreetmap.org answers 414.
MAX_REQUEST_LINE = 8192
# cgimap cuts the Error header to 250 characters.
ERROR_HEADER_LENGTH = 250
# The limits of openstreetmap-website's config/settings.yml.
CAPABILITIES = b"""<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="cartoparty OSM API stand-in" copyright="OpenStreetMap and contributors" \
attribution="http://www.openstreetmap.org/copyright" license="http://opendatacommons.org/licenses/odbl/1-0/">
 <api>
  <version minimum="0.6" maximum="0.6"/>
  <area maximum="0.25"/>
  <note_area maximum="25"/>
  <tracepoints per_page="5000"/>
  <waynodes maximum="2000"/>
  <relationmembers maximum="32000"/>
  <changesets maximum_elements="10000" default_query_limit="100" maximum_query_limit="100"/>
  <timeout seconds="300"/>
  <status database="online" api="online" gpx="online"/>
 </api>
</osm>
"""

ROUTES = []


def route(method, pattern):
    """Register a function answering `method` on the paths that pattern (a regex) matches whole."""
    def register(function):
        ROUTES.append((method, re.compile(pattern), function))
        return function
    return register


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


class OsmApiStandIn:
    """The OSM API 0.6 on 127.0.0.1 (a free port), at `.url`; `.close()` when done."""

    def __init__(self):
        self.elements = {}  # (osm_type, osm_id) -> Stored
        self.requests = []  # the path (and query) of every request, in order
        self.headers = []  # the headers of every request, beside .requests (names in any case)
        self._faults = []  # (status, body, content type) to answer next, in turn
        self._delay = 0
        self._last_changeset = 1000
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/0.6"
        # A short poll interval: close() waits for it, after every test.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def close(self):
        """Stop serving (again is fine); answers held by slow() are let go."""
        self._closed.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def down(self):
        """Close the socket: connections to .url are refused from now on."""
        self.close()

    def fail_next(self, status, body, content_type="text/plain; charset=utf-8"):
        """Answer the next request (after those already set to fail) with this status and body."""
        with self._lock:
            self._faults.append((status, body, content_type))

    def slow(self, seconds):
        """Hold each answer this many seconds (until close())."""
        self._delay = seconds

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
            if xml.tag in ("node", "way", "relation"):
                self._add(_stored(xml))

    def _add(self, stored):
        with self._lock:
            self.elements[stored.osm_type, stored.osm_id] = stored
        return stored

    def _new_version(self, stored):
        self._last_changeset += 1
        stored.version += 1
        stored.changeset = self._last_changeset
        stored.timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def answer(self, method, path, query, body):
        """(status, body, content type) of a request, by the first route that matches."""
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            for route_method, pattern, function in ROUTES:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    return function(self, match, parse_qs(query, keep_blank_values=True), body)
        return _error(404, "")


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


def _xml(elements):
    """A 200 answer: the elements in the API's layout (attributes in its order, one-space indent)."""
    root = ET.Element("osm", OSM_ATTRIBUTES)
    for stored in elements:
        attrib = {"id": str(stored.osm_id), "visible": "true" if stored.visible else "false",
                  "version": str(stored.version), "changeset": str(stored.changeset),
                  "timestamp": stored.timestamp, "user": stored.user, "uid": str(stored.uid)}
        if stored.visible and stored.osm_type == "node":
            attrib |= {"lat": f"{stored.lat:.7f}", "lon": f"{stored.lon:.7f}"}
        xml = ET.SubElement(root, stored.osm_type, attrib)
        for ref in stored.nodes:
            ET.SubElement(xml, "nd", {"ref": str(ref)})
        for osm_type, ref, role in stored.members:
            ET.SubElement(xml, "member", {"type": osm_type, "ref": str(ref), "role": role})
        for key, value in stored.tags.items():
            ET.SubElement(xml, "tag", {"k": key, "v": value})
    ET.indent(root, space=" ")
    # ElementTree writes <tag … />; the API writes <tag …/> (">" in values is escaped as &gt;).
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False).replace(b" />", b"/>")
    return 200, b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n", "application/xml; charset=utf-8"


def _error(status, text):
    """An error answer as the API gives it: text/plain (the same text goes in the Error header)."""
    return status, text.encode(), "text/plain; charset=utf-8"


@route("GET", r"/api/0\.6/capabilities")
def capabilities(api, match, query, body):
    """The API's limits."""
    return 200, CAPABILITIES, "application/xml; charset=utf-8"


@route("GET", r"/api/0\.6/(node|way|relation)s")
def multi_fetch(api, match, query, body):
    """GET /nodes?nodes=1,2,3: the current versions, deleted ones too; 404 if any id never
    existed, 400 for an empty or malformed list (versioned ids, 1v2, are not supported here)."""
    osm_type, plural = match[1], f"{match[1]}s"
    text = (query.get(plural) or [""])[0]
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
def single_fetch(api, match, query, body):
    """GET /node/N: its current version; 410 if deleted, 404 if it never existed."""
    osm_type, osm_id = match[1], int(match[2])
    stored = api.elements.get((osm_type, osm_id))
    if stored is None:
        return _error(404, f"{osm_type.capitalize()} {osm_id} was not found.")  # cgimap's text
    if not stored.visible:
        return _error(410, f"The {osm_type} with the id {osm_id} has already been deleted")
    return _xml([stored])


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
            api.headers.append(self.headers)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api._closed.wait(api._delay)
        if len(self.requestline.encode()) > MAX_REQUEST_LINE:
            # The web server in front refuses it before the API sees it.
            answer = _error(414, "Request-URI Too Long")
        else:
            answer = api.answer(self.command, path, query, body)
        self._write(*answer)

    def _write(self, status, body, content_type):
        body = body.encode() if isinstance(body, str) else body
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status >= 400 and content_type.startswith("text/plain"):
                text = " ".join(body.decode("utf-8", errors="replace").split())[:ERROR_HEADER_LENGTH]
                self.send_header("Error", text.encode("latin-1", errors="replace").decode("latin-1"))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a test's time-out)

    def log_message(self, *args):
        pass
