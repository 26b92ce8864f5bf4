"""cartoparty.osm.overpass against a fake Overpass on 127.0.0.1: no internet, no database."""

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from conftest import SHARED_DATA

from cartoparty.osm.overpass import Element, OverpassError, build_query, fetch, merge, split_bbox

SHARED_OVERPASS = SHARED_DATA / "overpass"
CHAMBERY = (45.56, 5.915, 45.57, 5.93)  # south, west, north, east
DEFIBRILLATOR = {"emergency": "defibrillator"}
PHARMACY = {"amenity": "pharmacy", "healthcare": "pharmacy"}
USER_AGENT = "cartoparty/0.1.0 (+https://example.org/cartoparty)"
HEADER = {"version": 0.6, "generator": "Overpass API 0.7.62.1 084b4234",
          "osm3s": {"timestamp_osm_base": "2026-06-13T08:00:00Z", "copyright": "The data included in this "
                    "document is from www.openstreetmap.org. The data is made available under ODbL."}}
ELEMENTS = [
    {"type": "node", "id": 4242, "lat": 45.5651, "lon": 5.9201, "timestamp": "2024-03-01T10:20:30Z",
     "version": 3, "changeset": 148000000, "user": "Camille", "uid": 12,
     "tags": {"emergency": "defibrillator", "indoor": "yes"}},
    {"type": "way", "id": 5151, "timestamp": "2023-11-02T08:00:00Z", "version": 7, "changeset": 1,
     "user": "Dominique", "uid": 13, "center": {"lat": 45.5662, "lon": 5.9222},
     "nodes": [1, 2, 3, 4, 1], "tags": {"amenity": "pharmacy", "healthcare": "pharmacy",
                                        "name": "Pharmacie du Théâtre"}},
    {"type": "relation", "id": 77, "timestamp": "2022-01-05T12:00:00Z", "version": 2, "changeset": 2,
     "user": "Sacha", "uid": 14, "center": {"lat": 45.5633, "lon": 5.9188},
     "members": [{"type": "way", "ref": 5152, "role": "outer"}],
     "tags": {"type": "multipolygon", "amenity": "pharmacy", "healthcare": "pharmacy"}},
]
BAD_REQUEST_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head>
  <meta http-equiv="content-type" content="text/html; charset=utf-8" lang="en"/>
  <title>OSM3S Response</title>
</head>
<body>

<p>The data included in this document is from www.openstreetmap.org.
The data is made available under ODbL.</p>
<p><strong style="color:#FF0000">Error</strong>: line 2: parse error: ';' expected - 'out' found. </p>

</body>
</html>"""
RATE_LIMIT_PAGE = BAD_REQUEST_PAGE.replace(
    "line 2: parse error: ';' expected - 'out' found.",
    "runtime error: open64: 0 Success /osm3s_osm_base Dispatcher_Client::request_read_and_idx::rate_limited. "
    "Please check /api/status for the quota of your IP address.")


def answer_json(elements=(), remark=None):
    """An Overpass [out:json] answer, as the server writes it."""
    document = {**HEADER, "elements": list(elements)}
    if remark is not None:
        document["remark"] = remark
    return json.dumps(document, indent=2, ensure_ascii=False)


@dataclass
class Answer:
    """One scripted answer; `delay` seconds pass before it is sent, or it waits until `held` is
    set (at most 30 s)."""

    status: int = 200
    body: str | bytes = ""
    content_type: str = "application/json"
    delay: float = 0.0
    held: threading.Event | None = None


class FakeOverpassHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with fake.lock:
            fake.requests.append({"user_agent": self.headers.get("User-Agent"),
                                  "content_type": self.headers.get("Content-Type"),
                                  "form": parse_qs(body.decode())})
            answer = fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0]
        if answer.held is not None:
            answer.held.wait(30)
        time.sleep(answer.delay)
        payload = answer.body.encode() if isinstance(answer.body, str) else answer.body
        try:
            # No Content-Length and HTTP/1.0: the body ends when the connection closes, as Overpass streams.
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client stopped waiting

    def log_message(self, format, *args):
        pass


class FakeOverpass:
    """An HTTP server on 127.0.0.1 that plays `answers` in order (the last one again and again)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOverpassHandler)
        self.server.daemon_threads = True  # a handler still sleeping must not hold the test up
        self.server.fake = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/interpreter"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def _rolled_back():
    """These tests use no database: the suite's transaction fixture is not needed here."""
    yield


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours proxy variables; requests to the fake server must go straight to it."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def overpass():
    """Start fake Overpass servers: `overpass(Answer(...), ...)`; they stop after the test."""
    servers = []

    def start(*answers):
        server = FakeOverpass(answers or [Answer(body=answer_json(ELEMENTS))])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def refused_url():
    """An endpoint on a local port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/interpreter"


class Pauses(list):
    """The pauses fetch() asked for, in seconds; `sleep` records one instead of sleeping."""

    def sleep(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Pauses()


def get(endpoints, sleeps, tag_sets=(DEFIBRILLATOR, PHARMACY), **options):
    """fetch() for Chambéry with the test User-Agent and no real pauses."""
    options = {"timeout": 25, "user_agent": USER_AGENT, "sleep": sleeps.sleep, **options}
    return fetch(CHAMBERY, list(tag_sets), endpoints, **options)


def shared(*parts):
    """A file of the shared Overpass data, or a skip when the data is not there."""
    path = SHARED_OVERPASS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


# The query

def test_query_asks_nodes_ways_and_relations_per_tag_set_with_centre_and_meta():
    assert build_query(CHAMBERY, [DEFIBRILLATOR, PHARMACY], 60) == (
        '[out:json][timeout:60];\n'
        '(\n'
        '  nwr["emergency"="defibrillator"](45.5600000,5.9150000,45.5700000,5.9300000);\n'
        '  nwr["amenity"="pharmacy"]["healthcare"="pharmacy"](45.5600000,5.9150000,45.5700000,5.9300000);\n'
        ');\n'
        'out center meta;')


def test_query_box_is_rounded_outwards_never_inwards():
    query = build_query((45.56000006, 5.91500004, 45.56999994, 5.93000006), [DEFIBRILLATOR], 60)
    assert "(45.5600000,5.9150000,45.5700000,5.9300001)" in query


@pytest.mark.parametrize(("tags", "expected"), [
    ({"name": 'Pharmacie "du Centre"'}, r'["name"="Pharmacie \"du Centre\""]'),
    ({"note": "C:\\temp\\"}, r'["note"="C:\\temp\\"]'),
    ({'we"ird\\key': "x"}, r'["we\"ird\\key"="x"]'),
    ({"description": "line one\nline\ttwo"}, r'["description"="line one\nline\ttwo"]'),
    ({"name": "Boulangerie l'Épi d'or ];out;"}, '["name"="Boulangerie l\'Épi d\'or ];out;"]'),
], ids=["double-quotes", "backslashes", "odd-key", "newline-and-tab", "syntax-inside-the-string"])
def test_query_escapes_keys_and_values(tags, expected):
    assert f"nwr{expected}(" in build_query(CHAMBERY, [tags], 60)


def test_query_refuses_what_overpass_ql_cannot_express():
    with pytest.raises(ValueError, match="control characters"):
        build_query(CHAMBERY, [{"name": "bell\x07"}], 60)
    with pytest.raises(ValueError, match="tag set"):
        build_query(CHAMBERY, [{}], 60)
    with pytest.raises(ValueError, match="tag set"):
        build_query(CHAMBERY, [], 60)


@pytest.mark.parametrize("bbox", [
    (45.57, 5.915, 45.56, 5.93),  # south above north
    (45.56, 5.93, 45.57, 5.915),  # west east of east
    (5.915, 45.56, 5.93, 190.0),  # GeoJSON order, longitude out of range
], ids=["south-above-north", "west-east-of-east", "geojson-order"])
def test_query_refuses_a_box_that_is_not_south_west_north_east(bbox):
    with pytest.raises(ValueError, match="south, west, north, east"):
        build_query(bbox, [DEFIBRILLATOR], 60)


# Good answers

def test_answer_becomes_elements_with_position_version_and_aware_timestamp(overpass, sleeps):
    server = overpass(Answer(body=answer_json(ELEMENTS)))
    elements = get([server.url], sleeps)
    assert elements == [
        Element("node", 4242, 3, datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC),
                {"emergency": "defibrillator", "indoor": "yes"}, 45.5651, 5.9201),
        Element("way", 5151, 7, datetime(2023, 11, 2, 8, 0, tzinfo=UTC),
                {"amenity": "pharmacy", "healthcare": "pharmacy", "name": "Pharmacie du Théâtre"},
                45.5662, 5.9222),
        Element("relation", 77, 2, datetime(2022, 1, 5, 12, 0, tzinfo=UTC),
                {"type": "multipolygon", "amenity": "pharmacy", "healthcare": "pharmacy"}, 45.5633, 5.9188),
    ]
    assert all(isinstance(element.lat, float) and isinstance(element.lon, float) for element in elements)
    assert elements[0].timestamp.utcoffset().total_seconds() == 0
    assert sleeps == []


def test_request_is_a_form_post_of_the_query_with_the_given_user_agent(overpass, sleeps):
    server = overpass()
    get([server.url], sleeps)
    [request] = server.requests
    assert request["user_agent"] == USER_AGENT
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"data": [build_query(CHAMBERY, [DEFIBRILLATOR, PHARMACY], 25)]}


def test_empty_answer_is_no_elements(overpass, sleeps):
    assert get([overpass(Answer(body=answer_json([]))).url], sleeps) == []


def test_element_without_a_position_is_skipped(overpass, sleeps):
    lost = {"type": "relation", "id": 78, "version": 1, "timestamp": "2022-01-05T12:00:00Z",
            "members": [], "tags": {"amenity": "pharmacy"}}
    elements = get([overpass(Answer(body=answer_json([ELEMENTS[0], lost]))).url], sleeps)
    assert [element.key for element in elements] == [("node", 4242)]


def test_endpoints_may_be_the_comma_separated_setting(overpass, refused_url, sleeps):
    server = overpass()
    assert len(get(f"{refused_url}, {server.url}", sleeps, attempts=1)) == 3


# Busy servers, dead servers

@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_busy_endpoint_is_asked_again_after_a_pause(overpass, sleeps, status):
    server = overpass(Answer(status=status, body="busy", content_type="text/plain"),
                      Answer(body=answer_json(ELEMENTS)))
    assert len(get([server.url], sleeps)) == 3
    assert len(server.requests) == 2
    assert sleeps == [1.0]


def test_pauses_double_then_the_mirror_is_asked(overpass, sleeps):
    main = overpass(Answer(status=429, body="rate limited", content_type="text/plain"))
    mirror = overpass()
    assert len(get([main.url, mirror.url], sleeps, backoff=0.5)) == 3
    assert len(main.requests) == 3
    assert len(mirror.requests) == 1
    assert sleeps == [0.5, 1.0]


def test_slow_endpoint_times_out_then_the_mirror_answers(overpass, sleeps):
    # The main endpoint answers nothing until the test lets it: the fetch can only end by
    # giving up on it (its HTTP time-out), not by waiting for it.
    held = threading.Event()
    main = overpass(Answer(body=answer_json(ELEMENTS), held=held))
    mirror = overpass()
    try:
        elements = get([main.url, mirror.url], sleeps, attempts=2, http_timeout=0.2)
    finally:
        held.set()
    assert len(elements) == 3
    assert len(main.requests) == 2
    assert len(mirror.requests) == 1


def test_refused_connection_goes_to_the_mirror(overpass, refused_url, sleeps):
    mirror = overpass()
    assert len(get([refused_url, mirror.url], sleeps)) == 3
    assert sleeps == [1.0, 2.0]
    assert len(mirror.requests) == 1


def test_every_endpoint_failing_is_one_error_naming_each(overpass, refused_url, sleeps):
    main = overpass(Answer(status=504, body="<html><title>504 Gateway Time-out</title></html>",
                           content_type="text/html"))
    with pytest.raises(OverpassError) as raised:
        get([main.url, refused_url], sleeps)
    message = raised.value.message
    assert "\n" not in message
    assert f"{main.url}: HTTP 504" in message
    assert f"{refused_url}: cannot connect" in message and "refused" in message
    assert raised.value.status == 502


# Answers that are errors, not data

def test_runtime_error_remark_is_an_error_not_an_empty_result(overpass, sleeps):
    remark = 'runtime error: Query timed out in "query" at line 4 after 26 seconds.'
    main = overpass(Answer(body=answer_json([], remark=remark)))
    with pytest.raises(OverpassError, match="Query timed out") as raised:
        get([main.url], sleeps)
    assert main.url in raised.value.message
    assert len(main.requests) == 1  # the server already spent its time-out on it: not asked again


def test_out_of_memory_after_some_elements_is_an_error_and_the_mirror_is_asked(overpass, sleeps):
    remark = ('runtime error: Query ran out of memory in "query" at line 4. '
              "It would need at least 513 MB of RAM to continue.")
    main = overpass(Answer(body=answer_json(ELEMENTS[:1], remark=remark)))
    mirror = overpass()
    assert len(get([main.url, mirror.url], sleeps)) == 3


def test_other_remarks_are_not_errors(overpass, sleeps):
    server = overpass(Answer(body=answer_json(ELEMENTS, remark="runtime remark: Timeout is 25")))
    assert len(get([server.url], sleeps)) == 3


def test_html_rate_limit_page_with_status_200_is_an_error(overpass, sleeps):
    main = overpass(Answer(body=RATE_LIMIT_PAGE, content_type="text/html; charset=utf-8"))
    with pytest.raises(OverpassError, match="rate_limited") as raised:
        get([main.url], sleeps)
    assert "HTML page instead of JSON" in raised.value.message
    assert len(main.requests) == 3


@pytest.mark.parametrize("body", [
    answer_json(ELEMENTS)[:-40],  # the connection was cut mid-answer
    "",
    '{"version": 0.6, "elements": [{"type": "node", "id": 1, "lat": 45.5, "lon": 5.9,}]}',
], ids=["cut", "empty", "trailing-comma"])
def test_truncated_or_malformed_json_is_an_error(overpass, sleeps, body):
    main = overpass(Answer(body=body))
    with pytest.raises(OverpassError, match="truncated or malformed JSON") as raised:
        get([main.url], sleeps)
    assert main.url in raised.value.message


@pytest.mark.parametrize("body", [
    '{"elements": {"node": 1}}',
    '[1, 2]',
    json.dumps({**HEADER, "elements": [{"type": "way", "id": 1, "center": {}, "version": 1}]}),
    json.dumps({**HEADER, "elements": [{"type": "node", "id": 1, "lat": 1, "lon": 2,
                                        "timestamp": "yesterday"}]}),
], ids=["elements-not-a-list", "not-an-object", "empty-centre", "bad-timestamp"])
def test_json_that_is_not_an_overpass_answer_is_an_error(overpass, sleeps, body):
    with pytest.raises(OverpassError):
        get([overpass(Answer(body=body)).url], sleeps)


def test_bad_query_is_an_error_with_overpass_message_and_no_mirror_is_asked(overpass, sleeps):
    main = overpass(Answer(status=400, body=BAD_REQUEST_PAGE, content_type="text/html; charset=utf-8"))
    mirror = overpass()
    with pytest.raises(OverpassError) as raised:
        get([main.url, mirror.url], sleeps)
    assert raised.value.message == (f"Overpass at {main.url} refused the query (HTTP 400): "
                                    "line 2: parse error: ';' expected - 'out' found.")
    assert len(main.requests) == 1
    assert mirror.requests == []


# Real answers from the shared data, when present

def test_real_answer_with_meta_and_way_centre(overpass, sleeps):
    server = overpass(Answer(body=shared("overpy", "json", "way-03.json")))
    elements = get([server.url], sleeps)
    way = next(element for element in elements if element.osm_type == "way")
    assert way == Element("way", 225576797, 1, datetime(2013, 6, 13, 15, 34, 1, tzinfo=UTC),
                          {"building": "kiosk", "shop": "florist"}, 41.8954998, 12.5032265)
    assert len(elements) == 5


def test_real_switzerland_defibrillators(overpass, sleeps):
    server = overpass(Answer(body=shared("switzerland_defibrillators",
                                         "overpass_switzerland_defibrillators_2020-12.json")))
    elements = get([server.url], sleeps, tag_sets=[DEFIBRILLATOR])
    assert len(elements) == 1550
    assert all(element.tags["emergency"] == "defibrillator" for element in elements)
    assert all(45.5 < element.lat < 48 and 5.9 < element.lon < 10.6 for element in elements)


def test_real_runtime_error_remark(overpass, sleeps):
    server = overpass(Answer(body=shared("overpy", "json", "remark-runtime-error-01.json")))
    with pytest.raises(OverpassError, match="runtime error: Query timed out"):
        get([server.url], sleeps)


@pytest.mark.parametrize("page", ["bad-request.html", "bad-request-encoding.html"])
def test_real_bad_request_pages(overpass, sleeps, page):
    server = overpass(Answer(status=400, body=shared("overpy", "response", page), content_type="text/html"))
    with pytest.raises(OverpassError, match="line 2: parse error: ';' expected - 'out' found."):
        get([server.url], sleeps)


# Splitting a large zone, merging the tiles

def area(box):
    south, west, north, east = box
    return (north - south) * (east - west)


def overlap(one, other):
    height = min(one[2], other[2]) - max(one[0], other[0])
    width = min(one[3], other[3]) - max(one[1], other[1])
    return max(height, 0) * max(width, 0)


def test_small_box_is_one_tile():
    assert split_bbox(CHAMBERY, 0.25) == [CHAMBERY]


@pytest.mark.parametrize(("bbox", "max_area"), [
    ((45.0, 5.0, 46.0, 7.0), 0.25),          # a wide box
    ((43.2, 5.3, 43.41, 5.57), 0.01),        # Marseille, not a whole number of tiles
    ((42.0, -5.0, 51.5, 8.5), 1.0),          # mainland France
    ((45.0, 5.0, 45.01, 9.0), 0.01),         # a thin strip
    ((-34.0, -180.0, -33.0, -179.3), 0.07),  # on the antimeridian, south of the equator
])
def test_tiles_cover_the_box_without_gaps_or_overlaps(bbox, max_area):
    tiles = split_bbox(bbox, max_area)
    assert len(tiles) > 1
    assert all(area(tile) <= max_area * (1 + 1e-9) for tile in tiles)
    assert all(bbox[0] <= tile[0] < tile[2] <= bbox[2] and bbox[1] <= tile[1] < tile[3] <= bbox[3]
               for tile in tiles)
    assert sum(area(tile) for tile in tiles) == pytest.approx(area(bbox), rel=1e-12)
    assert all(overlap(one, other) < 1e-12 for one, other in itertools.combinations(tiles, 2))
    # Neighbours share their edge exactly, so no sliver is lost to rounding.
    assert {tile[2] for tile in tiles} - {bbox[2]} <= {tile[0] for tile in tiles}
    assert {tile[3] for tile in tiles} - {bbox[3]} <= {tile[1] for tile in tiles}
    assert len(tiles) <= 2 * area(bbox) / max_area + 2


def test_merge_keeps_each_object_once_at_its_newest_version():
    old = Element("node", 1, 3, None, {"natural": "tree"}, 45.0, 5.0)
    new = Element("node", 1, 4, None, {"natural": "tree", "leaf_type": "broadleaved"}, 45.0, 5.0)
    way = Element("way", 1, 1, None, {"amenity": "bench"}, 45.1, 5.1)
    other = Element("node", 2, 1, None, {"natural": "tree"}, 45.2, 5.2)
    assert merge([[old, way], [new, other], [old]]) == [new, way, other]
