"""The only module that talks to Overpass: build a query, post it to the endpoints in turn, read the answer.

HTTP is done here with urllib and overpy only parses the JSON (`overpy.Result.from_json`):
`overpy.Overpass.query()` sets no User-Agent and no socket time-out (a stalled server would hang a
worker for ever), posts the query as a raw body rather than the `data` form field, waits a fixed
delay between its retries and knows a single endpoint.
"""

import html
import json
import logging
import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from itertools import pairwise
from urllib.parse import urlencode, urlsplit

from ..errors import CartopartyError

log = logging.getLogger(__name__)

# Busy or overloaded: the same server may well answer after a pause.
RETRY_STATUSES = {429, 502, 503, 504}
# The socket waits this long beyond the query's own [timeout:], so that Overpass can say it timed out.
HTTP_GRACE = 15

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}
_HTML_ERROR = re.compile(r"<strong[^>]*>\s*Error\s*</strong>\s*:?(.*?)</p>", re.S | re.I)
_HTML_TITLE = re.compile(r"<title>(.*?)</title>", re.S | re.I)
_HTML_TAG = re.compile(r"<[^>]*>")


class OverpassError(CartopartyError):
    """Overpass gave no usable answer: the query was refused, or every endpoint failed."""

    status = 502


class _Retry(Exception):
    """A failure worth trying again on the same endpoint after a pause."""


class _Failed(Exception):
    """A failure of this endpoint that another endpoint may not have."""


@dataclass(frozen=True)
class Element:
    """An OSM object found by Overpass; lat, lon in WGS84 degrees (the centre of a way or relation)."""

    osm_type: str
    osm_id: int
    version: int | None
    timestamp: datetime | None
    tags: dict
    lat: float
    lon: float

    @property
    def key(self):
        """(osm_type, osm_id): what identifies an OSM object."""
        return self.osm_type, self.osm_id


def build_query(bbox, tag_sets, timeout):
    """Overpass QL for nodes, ways and relations in bbox (south, west, north, east) matching any tag set."""
    if not tag_sets or not all(tag_sets):
        raise ValueError("give at least one tag set, each with at least one tag")
    if int(timeout) < 1:
        raise ValueError(f"the Overpass timeout must be at least 1 second, not {timeout}")
    box = _bbox_filter(bbox)
    lines = [f"[out:json][timeout:{int(timeout)}];", "("]
    for tags in tag_sets:
        filters = "".join(f"[{_quote(key)}={_quote(value)}]" for key, value in tags.items())
        lines.append(f"  nwr{filters}{box};")
    lines += [");", "out center meta;"]
    return "\n".join(lines)


def _quote(text):
    """text as an Overpass QL string literal."""
    text = str(text)
    if any(ord(char) < 0x20 and char not in "\n\t" for char in text):
        # Overpass's tokenizer has no escape for them, not even \u00XX.
        raise ValueError(f"Overpass QL cannot express control characters: {text!r}")
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def _checked_bbox(bbox):
    """bbox as four floats (south, west, north, east), or ValueError."""
    south, west, north, east = (float(value) for value in bbox)
    if not (-90 <= south < north <= 90 and -180 <= west < east <= 180):
        raise ValueError(f"not a (south, west, north, east) box in WGS84 degrees: {tuple(bbox)}")
    return south, west, north, east


def _outward(value, direction):
    """value in degrees rounded to OSM's 1e-7, moved outwards (direction -1 or +1) if rounding moved it in."""
    rounded = round(value, 7)
    if (rounded - value) * direction < 0:
        rounded += direction * 1e-7
    return f"{rounded:.7f}"


def _bbox_filter(bbox):
    """The Overpass bbox filter `(south,west,north,east)`, never narrower than bbox."""
    south, west, north, east = _checked_bbox(bbox)
    corners = (_outward(south, -1), _outward(west, -1), _outward(north, 1), _outward(east, 1))
    return "(" + ",".join(corners) + ")"


def fetch(bbox, tag_sets, endpoints, timeout, user_agent, *, attempts=3, backoff=1.0, sleep=time.sleep,
          http_timeout=None):
    """Elements in bbox (south, west, north, east, WGS84 degrees) matching any tag set; else OverpassError."""
    # Each endpoint gets `attempts` tries, `backoff` seconds apart and doubling, then the next one is
    # asked. `timeout` (s) goes into the query; the socket waits `http_timeout` (s), a little longer
    # by default. A refused query (HTTP 400) raises at once: every endpoint would refuse it.
    query = build_query(bbox, tag_sets, timeout)
    endpoints = _endpoint_list(endpoints)
    if http_timeout is None:
        http_timeout = int(timeout) + HTTP_GRACE
    failures = []
    for endpoint in endpoints:
        try:
            return _fetch_from(endpoint, query, user_agent, http_timeout, attempts, backoff, sleep)
        except _Failed as failure:
            log.warning("Overpass at %s failed: %s", endpoint, failure)
            failures.append(f"{endpoint}: {failure}")
    raise OverpassError("overpass_failed", detail="; ".join(failures))


def _endpoint_list(endpoints):
    """Endpoints as a list of http(s) URLs; a comma-separated string (the setting's form) is accepted."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    endpoints = [endpoint.strip() for endpoint in endpoints if endpoint.strip()]
    if not endpoints:
        raise ValueError("no Overpass endpoint given")
    for endpoint in endpoints:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"an Overpass endpoint must be an http(s) URL, not {endpoint!r}")
    return endpoints


def _fetch_from(endpoint, query, user_agent, http_timeout, attempts, backoff, sleep):
    """Elements from one endpoint, asked again after transient failures; _Failed when it gives up."""
    reason = "not asked (no attempts allowed)"
    for attempt in range(attempts):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            return _parse(_post(endpoint, query, user_agent, http_timeout))
        except _Retry as failure:
            log.info("Overpass at %s, attempt %d of %d: %s", endpoint, attempt + 1, attempts, failure)
            reason = failure
    raise _Failed(f"{reason} ({attempts} attempts)")


def _post(endpoint, query, user_agent, http_timeout):
    """The body of the endpoint's 200 answer to query; _Retry, _Failed or OverpassError otherwise."""
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked in _endpoint_list)
        endpoint, data=urlencode({"data": query}).encode(),
        headers={"User-Agent": user_agent, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=http_timeout) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as error:
        raise _http_failure(endpoint, error) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _Retry(f"no answer within {http_timeout} s") from None
        raise _Retry(f"cannot connect ({error.reason})") from None
    except TimeoutError:
        raise _Retry(f"no answer within {http_timeout} s") from None
    except (OSError, HTTPException) as error:
        raise _Retry(f"connection lost ({error!r})") from None


def _http_failure(endpoint, error):
    """The exception for an HTTP error status from endpoint."""
    try:
        body = error.read()
    except (OSError, HTTPException):
        body = b""
    if error.code == 400:
        # The query itself is wrong: every endpoint would refuse it too.
        return OverpassError("overpass_refused", endpoint=endpoint, detail=_html_message(body))
    reason = f"HTTP {error.code} {error.reason}"
    if error.code in RETRY_STATUSES:
        return _Retry(reason)
    return _Failed(reason)


def _html_message(body):
    """The error text of an Overpass HTML page (or its title), on one line."""
    text = body.decode("utf-8", errors="replace")
    parts = _HTML_ERROR.findall(text) or _HTML_TITLE.findall(text) or [text]
    message = " / ".join(" ".join(html.unescape(_HTML_TAG.sub(" ", part)).split()) for part in parts)
    return message[:300] or "an empty page"


def _parse(body):
    """The elements of an Overpass JSON answer; _Retry or _Failed when the answer is not one."""
    if body.lstrip()[:1] == b"<":
        # Overpass's rate-limit and dispatcher pages come as HTML, sometimes with status 200.
        raise _Retry(f"an HTML page instead of JSON: {_html_message(body)}")
    try:
        answer = json.loads(body)
    except ValueError as error:
        raise _Failed(f"truncated or malformed JSON ({error})") from None
    if not isinstance(answer, dict):
        raise _Failed("JSON that is not an Overpass answer")
    remark = str(answer.get("remark") or "").strip()
    if remark.startswith("runtime error"):
        # Timed out or out of memory, maybe after some elements: what came is incomplete.
        raise _Failed(remark)
    if remark:
        log.warning("Overpass remark: %s", remark)
    if not isinstance(answer.get("elements"), list):
        raise _Failed("JSON without an elements list")
    import overpy  # heavy: imported when an answer is read, not by every command

    try:
        return _elements(overpy.Result.from_json(answer))
    except (overpy.exception.OverPyException, ValueError, TypeError, KeyError, AttributeError) as error:
        raise _Failed(f"malformed elements ({error!r})") from None


def _elements(result):
    """Elements of an overpy result: nodes, then ways and relations at their centre."""
    elements = []
    for osm_type, objects in (("node", result.nodes), ("way", result.ways), ("relation", result.relations)):
        for obj in objects:
            if osm_type == "node":
                lat, lon = obj.lat, obj.lon
            else:
                lat, lon = obj.center_lat, obj.center_lon
            if lat is None or lon is None:
                log.warning("Overpass gave %s %s without a position; skipped", osm_type, obj.id)
                continue
            timestamp = obj.attributes.get("timestamp")  # overpy reads it as a naive datetime in UTC
            elements.append(Element(
                osm_type=osm_type, osm_id=int(obj.id), version=obj.attributes.get("version"),
                timestamp=timestamp.replace(tzinfo=UTC) if timestamp else None,
                tags=dict(obj.tags or {}), lat=float(lat), lon=float(lon)))
    return elements


def split_bbox(bbox, max_area_deg2):
    """Tiles (south, west, north, east) of at most max_area_deg2 square degrees covering bbox edge to edge."""
    south, west, north, east = _checked_bbox(bbox)
    if max_area_deg2 <= 0:
        raise ValueError(f"the largest tile area must be positive, not {max_area_deg2}")
    area = (north - south) * (east - west)
    if area <= max_area_deg2:
        return [(south, west, north, east)]
    # Rows about as tall as a square tile, fewer if the box is thin; then enough columns.
    rows = min(math.ceil((north - south) / math.sqrt(max_area_deg2)), math.ceil(area / max_area_deg2))
    columns = math.ceil(area / rows / max_area_deg2)
    lats, lons = _cuts(south, north, rows), _cuts(west, east, columns)
    return [(s, w, n, e) for s, n in pairwise(lats) for w, e in pairwise(lons)]


def _cuts(start, end, parts):
    """parts + 1 edges from start to end, both kept exactly, so that neighbours share their edge."""
    return [start + (end - start) * index / parts for index in range(parts)] + [end]


def merge(results):
    """One list from several lists of elements (tiles), each OSM object once, at its newest version."""
    merged = {}
    for elements in results:
        for element in elements:
            kept = merged.get(element.key)
            if kept is None or (element.version or 0) > (kept.version or 0):
                merged[element.key] = element
    return list(merged.values())
