"""The only module that talks to the OSM API 0.6: read the current version of elements.

Every call goes through `_request`, which sets the User-Agent and the socket time-out and turns
each failure into an OsmApiError, so that changeset calls (create, upload, close) can be added
beside the reads. Answers are parsed with defusedxml: the API's XML comes from the network.
"""

import functools
import json
import logging
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from importlib import metadata
from urllib.parse import urlsplit

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from ..errors import CartopartyError

log = logging.getLogger(__name__)

OSM_TYPES = ("node", "way", "relation")
# Proxies in front of the API refuse longer request lines (414); 8,000 leaves room for the rest.
MAX_URL = 8000
# The most ids per multi-fetch: a long list that fails with 404 costs more requests to bisect.
MAX_IDS = 700
REASON_LENGTH = 200


class OsmApiError(CartopartyError):
    """The OSM API gave no usable answer: unreachable, an error status, or not OSM XML."""

    status = 502

    @property
    def http_status(self):
        """The API's HTTP status for osm_api_failed, else None."""
        return self.params.get("http_status")


@dataclass(frozen=True)
class Element:
    """The current version of an OSM element; lat, lon in WGS84 degrees (visible nodes only),
    nodes the ids of a way's nodes, members (type, ref, role) of a relation. A deleted element
    has visible=False, no tags and no coordinates."""

    osm_type: str
    osm_id: int
    version: int
    visible: bool
    tags: dict
    lat: float | None = None
    lon: float | None = None
    nodes: tuple = ()
    members: tuple = ()

    @property
    def key(self):
        """(osm_type, osm_id): what identifies an OSM element."""
        return self.osm_type, self.osm_id


def fetch_elements(api_url, refs, timeout=30):
    """{(osm_type, osm_id): Element} for refs, an iterable of (osm_type, osm_id): deleted elements
    with visible=False, those that never existed left out. timeout is per request, in seconds."""
    found, api_checked = {}, False
    for osm_type, ids in _wanted(refs).items():
        prefix = len(_multi_fetch_url(api_url, osm_type, []))
        for batch in _batches(sorted(ids), prefix):
            elements = _multi_fetch(api_url, osm_type, batch, timeout)
            if elements is None:
                if not api_checked:
                    # A wrong OSM_API_URL answers 404 too: without this, every id would be asked
                    # alone and all would seem never to have existed. The real API has capabilities.
                    _request("GET", f"{api_url.rstrip('/')}/capabilities", timeout)
                    api_checked = True
                elements = _bisect(api_url, osm_type, batch, timeout)
            found.update(elements)
    return found


def _wanted(refs):
    """The ids in refs, by type; ValueError for a ref that cannot be an OSM element."""
    wanted = {osm_type: set() for osm_type in OSM_TYPES}
    for osm_type, osm_id in refs:
        if osm_type not in wanted or int(osm_id) <= 0:
            raise ValueError(f"not an OSM element: {osm_type} {osm_id}")
        wanted[osm_type].add(int(osm_id))
    return wanted


def _multi_fetch_url(api_url, osm_type, ids):
    """The multi-fetch URL of ids, e.g. …/nodes?nodes=1,2,3."""
    plural = f"{osm_type}s"
    return f"{api_url.rstrip('/')}/{plural}?{plural}=" + ",".join(str(osm_id) for osm_id in ids)


def _batches(ids, prefix_length):
    """ids in lists of at most MAX_IDS whose URL (prefix_length characters plus the ids and their
    commas) stays under MAX_URL, as few as that allows and of about the same size."""
    text_length = sum(len(str(osm_id)) + 1 for osm_id in ids)
    count = max(math.ceil(len(ids) / MAX_IDS), math.ceil(text_length / (MAX_URL - prefix_length)), 1)
    # Even batches: a batch of 500 is bisected in fewer requests than one of 700 beside one of 300.
    size = math.ceil(len(ids) / count)
    batch, length = [], prefix_length
    for osm_id in ids:
        extra = len(str(osm_id)) + 1
        if batch and (len(batch) == size or length + extra > MAX_URL):
            yield batch
            batch, length = [], prefix_length
        batch.append(osm_id)
        length += extra
    if batch:
        yield batch


def _multi_fetch(api_url, osm_type, ids, timeout):
    """The elements of ids, or None when the API answers 404: one of them at least never existed."""
    url = _multi_fetch_url(api_url, osm_type, ids)
    try:
        return _parse(_request("GET", url, timeout), url)
    except OsmApiError as error:
        if error.http_status == 404:
            return None
        raise


def _bisect(api_url, osm_type, ids, timeout):
    """The elements of ids when a 404 said that some never existed: each half is asked in turn,
    so that k missing ids among n cost about 2·k·log2(n) requests, not n."""
    if len(ids) == 1:
        return {}
    first, second = ids[: len(ids) // 2], ids[len(ids) // 2:]
    found = _multi_fetch(api_url, osm_type, first, timeout)
    if found is not None:
        # The first half was whole, so the missing id is in the second: no need to ask for it whole.
        return found | _bisect(api_url, osm_type, second, timeout)
    found = _bisect(api_url, osm_type, first, timeout)
    rest = _multi_fetch(api_url, osm_type, second, timeout)
    return found | (_bisect(api_url, osm_type, second, timeout) if rest is None else rest)


def _parse(body, url):
    """{(osm_type, osm_id): Element} of an OSM XML answer; OsmApiError when it is not one."""
    try:
        root = ElementTree.fromstring(body)
        if root.tag != "osm":
            raise ValueError(f"the root element is <{root.tag}>")
        elements = [_element(child) for child in root if child.tag in OSM_TYPES]
    except (ElementTree.ParseError, DefusedXmlException, ValueError, KeyError) as error:
        log.warning("the OSM API at %s answered something that is not OSM XML: %s", _safe(url), error)
        raise OsmApiError("osm_api_bad_answer", url=_safe(url)) from None
    return {element.key: element for element in elements}


def _element(xml):
    """The Element of an XML <node>, <way> or <relation>; KeyError or ValueError if malformed."""
    attrib = xml.attrib
    visible = attrib.get("visible", "true") != "false"
    lat = float(attrib["lat"]) if "lat" in attrib else None
    lon = float(attrib["lon"]) if "lon" in attrib else None
    if xml.tag == "node" and visible and (lat is None or lon is None):
        raise ValueError(f"node {attrib.get('id')} has no coordinates")
    return Element(
        osm_type=xml.tag, osm_id=int(attrib["id"]), version=int(attrib["version"]), visible=visible,
        tags={tag.attrib["k"]: tag.attrib["v"] for tag in xml.findall("tag")}, lat=lat, lon=lon,
        nodes=tuple(int(nd.attrib["ref"]) for nd in xml.findall("nd")),
        members=tuple((member.attrib["type"], int(member.attrib["ref"]), member.attrib.get("role", ""))
                      for member in xml.findall("member")))


@functools.cache
def user_agent():
    """cartoparty/<installed version>, as the OSM API's usage policy asks clients to say who they are."""
    try:
        return f"cartoparty/{metadata.version('cartoparty')}"
    except metadata.PackageNotFoundError:
        return "cartoparty/dev"


def _request(method, url, timeout, data=None, content_type=None, token=None):
    """The body of the API's 2xx answer to method url (timeout in seconds); OsmApiError otherwise.
    A token goes only in the Authorization header: never in the URL, never in a log."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"the OSM API URL must be http(s), not {_safe(url)!r}")
    # No X-Error-Format: xml, with which the API reports errors as HTTP 200.
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 (scheme checked)
                                     headers={"User-Agent": user_agent()})
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        # Unredirected: urllib would otherwise send it on to wherever a redirect points.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    log.debug("OSM API: %s %s", method, _safe(url))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as error:
        reason = _reason(error)
        if error.code != 404:
            log.warning("the OSM API answered %s %s with %d: %s", method, _safe(url), error.code, reason)
        raise OsmApiError("osm_api_failed", http_status=error.code, reason=reason) from None
    except (OSError, HTTPException) as error:  # refused, DNS, time-out, connection lost
        log.warning("the OSM API did not answer %s %s: %r", method, _safe(url), error)
        raise OsmApiError("osm_api_unreachable", url=_safe(url)) from None


def _reason(error):
    """The API's plain-text error (its body, else its Error header, else the HTTP reason), on one line."""
    try:
        body = error.read().decode("utf-8", errors="replace")
    except (OSError, HTTPException):
        body = ""
    text = body or (error.headers.get("Error") if error.headers else None) or str(error.reason)
    return " ".join(text.split())[:REASON_LENGTH]


def _safe(url):
    """url without its query string: short enough for a message (a multi-fetch lists 700 ids)."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


# Changesets: each call below is one request; the upload code (osm/upload.py) decides what a
# failure means, and never sends an upload twice without reading back first.

def _changeset_xml(tags):
    from xml.sax.saxutils import quoteattr

    lines = "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())
    return f'<osm><changeset version="0.6" generator="{user_agent()}">{lines}</changeset></osm>'


def create_changeset(api_url, token, tags, timeout=30):
    """Open a changeset with `tags`; its id."""
    body = _request("PUT", f"{api_url.rstrip('/')}/changeset/create", timeout,
                    data=_changeset_xml(tags).encode("utf-8"), content_type="text/xml", token=token)
    try:
        return int(body.strip())
    except ValueError:
        raise OsmApiError("osm_api_bad_answer", url=f"{api_url}/changeset/create") from None


def upload(api_url, token, changeset_id, osc, timeout=120):
    """POST one osmChange (bytes) to the changeset; the diffResult as
    {(osm_type, old_id): (new_id, new_version)}."""
    url = f"{api_url.rstrip('/')}/changeset/{int(changeset_id)}/upload"
    body = _request("POST", url, timeout, data=osc, content_type="text/xml", token=token)
    try:
        root = ElementTree.fromstring(body)
        if root.tag != "diffResult":
            raise ValueError(root.tag)
        return {(item.tag, int(item.attrib["old_id"])): (int(item.attrib["new_id"]),
                                                         int(item.attrib["new_version"]))
                for item in root if item.tag in OSM_TYPES and "new_id" in item.attrib}
    except (ElementTree.ParseError, DefusedXmlException, ValueError, KeyError):
        raise OsmApiError("osm_api_bad_answer", url=_safe(url)) from None


def close_changeset(api_url, token, changeset_id, timeout=30):
    _request("PUT", f"{api_url.rstrip('/')}/changeset/{int(changeset_id)}/close", timeout,
             token=token)


def changeset_state(api_url, token, changeset_id, timeout=30):
    """(open, changes_count) of a changeset, as the API says now."""
    url = f"{api_url.rstrip('/')}/changeset/{int(changeset_id)}"
    body = _request("GET", url, timeout, token=token)
    try:
        changeset = ElementTree.fromstring(body).find("changeset")
        return (changeset.attrib.get("open") == "true",
                int(changeset.attrib.get("changes_count", 0)))
    except (ElementTree.ParseError, DefusedXmlException, AttributeError, ValueError):
        raise OsmApiError("osm_api_bad_answer", url=_safe(url)) from None


def changeset_elements(api_url, token, changeset_id, timeout=60):
    """What a changeset made, from its download: [(action, Element)] with real ids."""
    url = f"{api_url.rstrip('/')}/changeset/{int(changeset_id)}/download"
    body = _request("GET", url, timeout, token=token)
    try:
        root = ElementTree.fromstring(body)
        return [(block.tag, _element(item)) for block in root
                if block.tag in ("create", "modify", "delete")
                for item in block if item.tag in OSM_TYPES]
    except (ElementTree.ParseError, DefusedXmlException, ValueError, KeyError):
        raise OsmApiError("osm_api_bad_answer", url=_safe(url)) from None


def user_details(api_url, token, timeout=30):
    """(uid, display_name) of the token's account."""
    url = f"{api_url.rstrip('/')}/user/details.json"
    body = _request("GET", url, timeout, token=token)
    try:
        user = json.loads(body)["user"]
        return int(user["id"]), str(user["display_name"])
    except (ValueError, KeyError, TypeError):
        raise OsmApiError("osm_api_bad_answer", url=_safe(url)) from None
