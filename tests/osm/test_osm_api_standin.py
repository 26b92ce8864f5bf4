"""The OSM API stand-in (osm_api.py) itself, over plain HTTP: accounts and tokens, changesets,
uploads as one transaction with the real server's refusals, the clock, the faults and OAuth 2.0,
so that the app's upload code can be trusted when it is tested against it."""

import base64
import hashlib
import html
import re
import threading
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import quoteattr

import pytest
import requests
from defusedxml import ElementTree
from osm.osm_api import OsmApiStandIn

NOW = datetime(2026, 6, 13, 9, 30, tzinfo=UTC)
LAT, LON = 45.565, 5.92
TOKEN = "camille-token"
REDIRECT = "http://127.0.0.1:5000/osm/callback"


@pytest.fixture(name="api")
def api_fixture():
    """A stand-in with a stopped clock, three nodes (101 at version 3) and a way 500 through two."""
    stand_in = OsmApiStandIn()
    stand_in.now = lambda: NOW
    stand_in.add_node(101, LAT, LON, {"natural": "tree", "species": "Tilia"}, version=3)
    stand_in.add_node(102, LAT + 0.001, LON, {"amenity": "bench"})
    stand_in.add_node(103, LAT + 0.002, LON, version=2)
    stand_in.add_way(500, [101, 103], {"highway": "footway"}, version=4)
    yield stand_in
    stand_in.close()


@pytest.fixture(name="mapper")
def mapper_fixture(api):
    """Camille's account, whose token the requests carry by default."""
    return api.add_account(TOKEN, "Camille", uid=777)


def send(api, method, path, body=None, token=TOKEN, **kwargs):
    """A request to the API (path after /api/0.6) with the Bearer token, if any."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body.encode() if isinstance(body, str) else body
    return requests.request(method, api.url + path, data=data, headers=headers,
                            timeout=kwargs.pop("timeout", 5), **kwargs)


def open_changeset(api, token=TOKEN, tags=None):
    """The id of a new changeset."""
    tags = tags or {"comment": "Arbres du quartier", "created_by": "cartoparty"}
    body = "<osm><changeset>" + "".join(
        f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()) + "</changeset></osm>"
    answer = send(api, "PUT", "/changeset/create", body, token=token)
    assert answer.status_code == 200, answer.text
    return int(answer.text)


def node(osm_id, cs, version=None, lat=LAT, lon=LON, tags=None):
    """An osmChange <node>, changeset cs (None: no changeset attribute)."""
    attrs = f' changeset="{cs}"' if cs is not None else ""
    attrs += f' version="{version}"' if version is not None else ""
    return f'<node id="{osm_id}"{attrs} lat="{lat}" lon="{lon}">{_tags(tags)}</node>'


def way(osm_id, cs, nodes, version=None, tags=None):
    """An osmChange <way> through the nodes of these ids."""
    version = f' version="{version}"' if version is not None else ""
    nds = "".join(f'<nd ref="{ref}"/>' for ref in nodes)
    return f'<way id="{osm_id}" changeset="{cs}"{version}>{nds}{_tags(tags)}</way>'


def _tags(tags):
    return "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in (tags or {}).items())


def osc(*blocks):
    """An osmChange of (action, [elements]) blocks, in order."""
    body = "".join(f"<{action}>{''.join(elements)}</{action}>" for action, elements in blocks)
    return f'<osmChange version="0.6" generator="test">{body}</osmChange>'


def upload(api, cs, *blocks, token=TOKEN, **kwargs):
    """The answer to uploading an osmChange of these blocks to changeset cs."""
    return send(api, "POST", f"/changeset/{cs}/upload", osc(*blocks), token=token, **kwargs)


def changeset_xml(api, cs):
    """The <changeset> element that GET /changeset/cs answers."""
    answer = send(api, "GET", f"/changeset/{cs}", token=None)
    assert answer.status_code == 200
    return ElementTree.fromstring(answer.content).find("changeset")


def assert_refused(answer, status, text):
    """An error answer as the API gives it: text/plain, the same text in the Error header."""
    assert (answer.status_code, answer.text) == (status, text)
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.headers["Error"] == text[:250]


def snapshot(api):
    """What the stand-in holds, to compare before and after."""
    return {key: (s.version, s.visible, dict(s.tags), s.lat, s.lon, s.nodes)
            for key, s in api.elements.items()}


# Accounts and tokens.

def test_user_details_name_the_token_account_in_xml_and_json(api, mapper):
    open_changeset(api)

    answer = send(api, "GET", "/user/details")
    user = ElementTree.fromstring(answer.content).find("user")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/xml")
    assert (user.get("id"), user.get("display_name")) == ("777", "Camille")
    assert user.get("account_created") == "2026-06-13T09:30:00Z"
    assert user.find("changesets").get("count") == "1"

    data = send(api, "GET", "/user/details.json").json()
    assert data["version"] == "0.6"
    assert (data["user"]["id"], data["user"]["display_name"]) == (777, "Camille")
    assert data["user"]["changesets"] == {"count": 1}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}])
def test_a_missing_or_unknown_token_cannot_authenticate(api, mapper, headers):
    for method, path in (("GET", "/user/details"), ("PUT", "/changeset/create")):
        answer = requests.request(method, api.url + path, data=b"<osm><changeset/></osm>",
                                  headers=headers, timeout=5)
        assert_refused(answer, 401, "Couldn't authenticate you")
    assert api.changesets == {}


def test_a_token_without_the_scope_is_forbidden_the_facility(api, mapper):
    reader = api.add_account("read-only", "Lou", scopes=("read_prefs",))
    api.add_token(reader, "api-only", scopes=("write_api",))
    forbidden = "You have not permitted the application access to this facility"

    assert send(api, "GET", "/user/details", token="read-only").status_code == 200
    assert_refused(send(api, "PUT", "/changeset/create", "<osm><changeset/></osm>", token="read-only"),
                   403, forbidden)
    assert_refused(send(api, "GET", "/user/details", token="api-only"), 403, forbidden)
    cs = open_changeset(api, token="api-only")
    assert api.changesets[cs].account is reader


# Changesets.

def test_a_new_changeset_is_open_with_its_tags_and_no_bounding_box(api, mapper):
    answer = send(api, "PUT", "/changeset/create",
                  '<osm><changeset><tag k="comment" v="Bancs &amp; arbres"/></changeset></osm>')

    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    xml = changeset_xml(api, int(answer.text))
    assert xml.get("id") == answer.text and xml.get("open") == "true"
    assert (xml.get("user"), xml.get("uid"), xml.get("changes_count")) == ("Camille", "777", "0")
    assert xml.get("created_at") == "2026-06-13T09:30:00Z"
    assert "closed_at" not in xml.attrib and "min_lat" not in xml.attrib
    assert {tag.get("k"): tag.get("v") for tag in xml.findall("tag")} == {"comment": "Bancs & arbres"}


@pytest.mark.parametrize(("tags", "text"), [
    ('<tag k="comment" v="{}"/>'.format("é" * 256), "Value has more than 255 unicode characters"),
    ('<tag k="{}" v="x"/>'.format("k" * 256), "Key has more than 255 unicode characters"),
    ('<tag k="comment" v="a"/><tag k="comment" v="b"/>',
     "Element changeset/ has duplicate tags with key comment"),
])
def test_changeset_tags_too_long_or_twice_are_refused(api, mapper, tags, text):
    answer = send(api, "PUT", "/changeset/create", f"<osm><changeset>{tags}</changeset></osm>")

    assert_refused(answer, 400, text)
    assert api.changesets == {}


def test_255_characters_are_fine_in_a_changeset_tag(api, mapper):
    cs = open_changeset(api, tags={"comment": "é" * 255})

    assert api.changesets[cs].tags == {"comment": "é" * 255}


@pytest.mark.parametrize(("method", "path"), [("GET", "/changeset/9999"), ("PUT", "/changeset/9999/close"),
                                              ("POST", "/changeset/9999/upload"),
                                              ("GET", "/changeset/9999/download")])
def test_an_unknown_changeset_is_not_found(api, mapper, method, path):
    assert send(api, method, path, osc()).status_code == 404


def test_a_closed_changeset_refuses_uploads_and_a_second_close(api, mapper):
    cs = open_changeset(api)

    answer = send(api, "PUT", f"/changeset/{cs}/close")

    assert (answer.status_code, answer.content) == (200, b"")
    xml = changeset_xml(api, cs)
    assert xml.get("open") == "false" and xml.get("closed_at") == "2026-06-13T09:30:00Z"
    closed = f"The changeset {cs} was closed at 2026-06-13 09:30:00 UTC"
    assert_refused(send(api, "PUT", f"/changeset/{cs}/close"), 409, closed)
    assert_refused(upload(api, cs, ("create", [node(-1, cs)])), 409, closed)
    assert len(api.elements) == 4


def test_only_the_owner_uploads_to_or_closes_a_changeset(api, mapper):
    cs = open_changeset(api)
    api.add_account("other-token", "Lou")

    for answer in (upload(api, cs, ("create", [node(-1, cs)]), token="other-token"),
                   send(api, "PUT", f"/changeset/{cs}/close", token="other-token")):
        assert_refused(answer, 409, "The user doesn't own that changeset")
    assert changeset_xml(api, cs).get("open") == "true" and len(api.elements) == 4


def test_a_changeset_closes_an_hour_after_its_last_change(api, mapper):
    cs = open_changeset(api)
    api.advance(50 * 60)
    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200  # at 10:20
    api.advance(59 * 60)
    assert changeset_xml(api, cs).get("open") == "true"

    api.advance(60)

    xml = changeset_xml(api, cs)
    assert xml.get("open") == "false" and xml.get("closed_at") == "2026-06-13T11:20:00Z"
    assert_refused(upload(api, cs, ("create", [node(-1, cs)])), 409,
                   f"The changeset {cs} was closed at 2026-06-13 11:20:00 UTC")


def test_an_idle_changeset_without_changes_closes_an_hour_after_creation(api, mapper):
    cs = open_changeset(api)
    api.now = lambda: datetime(2026, 6, 13, 10, 30)  # a naive time is taken as UTC

    assert_refused(send(api, "PUT", f"/changeset/{cs}/close"), 409,
                   f"The changeset {cs} was closed at 2026-06-13 10:30:00 UTC")


def test_a_busy_changeset_still_closes_24_hours_after_creation(api, mapper):
    cs = open_changeset(api)
    answers = []
    for _ in range(30):  # one upload every 55 minutes
        api.advance(55 * 60)
        answers.append(upload(api, cs, ("create", [node(-1, cs)])).status_code)

    assert answers == [200] * 26 + [409] * 4  # the 26th at 23 h 50 min
    assert changeset_xml(api, cs).get("closed_at") == "2026-06-14T09:30:00Z"


# Uploads.

def test_an_upload_answers_the_diff_result_and_stamps_each_element(api, mapper):
    cs = open_changeset(api)

    answer = upload(api, cs,
                    ("create", [node(-1, cs, lat=45.566, lon=5.921, tags={"amenity": "bench"}),
                                way(-2, cs, [-1, 102], tags={"highway": "footway"})]),
                    ("modify", [node(101, cs, version=3, tags={"natural": "tree", "species": "Tilia x"})]),
                    ("delete", [way(500, cs, [101, 103], version=4)]))
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/xml")
    result = ElementTree.fromstring(answer.content)
    assert result.tag == "diffResult" and result.get("version") == "0.6"
    assert [(e.tag, dict(e.attrib)) for e in result] == [
        ("node", {"old_id": "-1", "new_id": "104", "new_version": "1"}),
        ("way", {"old_id": "-2", "new_id": "501", "new_version": "1"}),
        ("node", {"old_id": "101", "new_id": "101", "new_version": "4"}),
        ("way", {"old_id": "500"})]
    bench, path = api.elements["node", 104], api.elements["way", 501]
    assert (bench.lat, bench.lon, bench.tags, bench.version) == (45.566, 5.921, {"amenity": "bench"}, 1)
    assert path.nodes == (104, 102)
    for stored in (bench, path, api.elements["node", 101], api.elements["way", 500]):
        assert (stored.changeset, stored.user, stored.uid) == (cs, "Camille", 777)
        assert stored.timestamp == "2026-06-13T09:30:00Z"
    assert not api.elements["way", 500].visible and api.elements["way", 500].version == 5
    xml = changeset_xml(api, cs)
    assert xml.get("changes_count") == "4"
    assert [xml.get(k) for k in ("min_lat", "min_lon", "max_lat", "max_lon")] == [
        "45.5650000", "5.9200000", "45.5670000", "5.9210000"]


def test_a_modify_replaces_the_whole_element_as_sent(api, mapper):
    cs = open_changeset(api)

    answer = upload(api, cs, ("modify", [node(101, cs, version=3, lat=45.5651, lon=5.9202,
                                              tags={"species": "Tilia"})]))

    assert answer.status_code == 200
    tree = api.elements["node", 101]
    assert (tree.tags, tree.lat, tree.lon, tree.version) == ({"species": "Tilia"}, 45.5651, 5.9202, 4)


def test_new_ids_come_above_every_id_held_and_never_again(api, mapper):
    api.add_node(11_000_000_000, LAT, LON)
    cs = open_changeset(api)

    first = ElementTree.fromstring(upload(api, cs, ("create", [node(-1, cs)])).content)
    second = ElementTree.fromstring(upload(api, cs, ("create", [node(-1, cs), node(-2, cs)])).content)

    assert [e.get("new_id") for e in (*first, *second)] == ["11000000001", "11000000002", "11000000003"]


def test_one_stale_version_changes_nothing(api, mapper):
    cs = open_changeset(api)
    api.edit("node", 102, tags={"amenity": "bench", "backrest": "yes"})  # now version 2
    before = snapshot(api)

    answer = upload(api, cs, ("create", [node(-1, cs, tags={"natural": "tree"})]),
                    ("modify", [node(101, cs, version=3, tags={"natural": "tree"})]),
                    ("delete", [node(102, cs, version=1)]))

    assert_refused(answer, 409, "Version mismatch: Provided 1, server had: 2 of Node 102")
    assert snapshot(api) == before and api.history == []
    assert changeset_xml(api, cs).get("changes_count") == "0"
    assert "min_lat" not in changeset_xml(api, cs).attrib
    assert send(api, "GET", f"/changeset/{cs}/download", token=None).content.count(b"<create") == 0


def test_a_stale_way_is_named_with_its_type_capitalised(api, mapper):
    cs = open_changeset(api)

    answer = upload(api, cs, ("modify", [way(500, cs, [101, 103], version=3)]))

    assert_refused(answer, 409, "Version mismatch: Provided 3, server had: 4 of Way 500")


@pytest.mark.parametrize(("blocks", "status", "text"), [
    ([("create", [node(-1, None)])], 400, "Changeset id is missing for Node -1"),
    ([("create", [node(-1, 999)])], 409, "Changeset mismatch: Provided 999 but only {cs} is allowed"),
    ([("create", [node(5, "{cs}")])], 400, "Placeholder IDs must be negative for created elements."),
    ([("create", [node(-1, "{cs}"), node(-1, "{cs}")])], 400,
     "Placeholder IDs must be unique for created elements."),
    ([("modify", [node(999, "{cs}", version=1)])], 404,
     "The following node ids are not known on the database: 999"),
    ([("delete", [node(102, "{cs}", version=2)])], 410, "The node with the id 102 has already been deleted"),
    ([("create", [way(-1, "{cs}", [101, 102, 998, 997])])], 412,
     "Precondition failed: Way -1 requires the nodes with id in 102,997,998, which either do not exist, "
     "or are not visible."),
    ([("delete", [node(103, "{cs}", version=2)])], 412,
     "Precondition failed: Node 103 is still used by ways 500."),
    ([("create", [node(-1, "{cs}", tags={"note": "é" * 256})])], 400,
     "Value has more than 255 unicode characters in Node -1"),
    ([("create", [node(-1, "{cs}", tags={"k" * 256: "x"})])], 400,
     "Key has more than 255 unicode characters in Node -1"),
    ([("create", [node(-1, "{cs}", lat=91)])], 400, "Latitude outside of valid range"),
])
def test_an_upload_the_server_refuses_changes_nothing(api, mapper, blocks, status, text):
    api.delete("node", 102)  # version 2, invisible
    cs = open_changeset(api)
    before = snapshot(api)
    body = osc(*blocks).replace("{cs}", str(cs))

    answer = send(api, "POST", f"/changeset/{cs}/upload", body)

    assert_refused(answer, status, text.format(cs=cs))
    assert snapshot(api) == before and api.changesets[cs].changes_count == 0


def test_a_way_may_use_nodes_created_before_it_in_the_upload_only(api, mapper):
    cs = open_changeset(api)

    answer = upload(api, cs, ("create", [way(-1, cs, [-2, 101]), node(-2, cs)]))

    assert_refused(answer, 400, "Placeholder node not found for reference -2 in way -1")
    assert upload(api, cs, ("create", [node(-2, cs), way(-1, cs, [-2, 101])])).status_code == 200
    assert api.elements["way", 501].nodes == (104, 101)


def test_a_modify_at_the_deleted_version_brings_an_element_back_as_cgimap_does(api, mapper):
    api.delete("node", 102)  # version 2
    cs = open_changeset(api)

    assert upload(api, cs, ("modify", [node(102, cs, version=1)])).status_code == 409
    answer = upload(api, cs, ("modify", [node(102, cs, version=2, tags={"amenity": "bench"})]))

    assert answer.status_code == 200
    bench = api.elements["node", 102]
    assert (bench.visible, bench.version, bench.tags) == (True, 3, {"amenity": "bench"})


def test_an_upload_is_applied_in_order_so_a_way_can_go_before_its_node(api, mapper):
    cs = open_changeset(api)

    answer = upload(api, cs, ("delete", [way(500, cs, [], version=4), node(103, cs, version=2)]))

    assert answer.status_code == 200
    assert not api.elements["node", 103].visible and not api.elements["way", 500].visible


def test_if_unused_skips_a_delete_that_would_fail(api, mapper):
    cs = open_changeset(api)
    body = osc().replace("</osmChange>", f'<delete if-unused="true">{node(103, cs, version=2)}'
                                         f'{node(102, cs, version=1)}</delete></osmChange>')

    answer = send(api, "POST", f"/changeset/{cs}/upload", body)

    assert [dict(e.attrib) for e in ElementTree.fromstring(answer.content)] == [
        {"old_id": "103", "new_id": "103", "new_version": "2"}, {"old_id": "102"}]
    assert api.elements["node", 103].visible and api.changesets[cs].changes_count == 1


def test_a_changeset_takes_at_most_max_changes_then_refuses_uploads_as_closed(api, mapper):
    api.max_changes = 3
    cs = open_changeset(api)
    assert upload(api, cs, ("create", [node(-1, cs), node(-2, cs)])).status_code == 200
    api.advance(60)

    answer = upload(api, cs, ("create", [node(-1, cs), node(-2, cs)]))

    assert_refused(answer, 409, f"The changeset {cs} was closed at 2026-06-13 09:31:00 UTC")  # now
    assert api.changesets[cs].changes_count == 2 and len(api.elements) == 6  # refused whole
    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200  # exactly 3: taken
    assert_refused(upload(api, cs, ("create", [node(-1, cs)])), 409,
                   f"The changeset {cs} was closed at 2026-06-13 09:31:00 UTC")
    # Both servers still call a full changeset open (num_changes <= MAX_ELEMENTS) and close it.
    assert changeset_xml(api, cs).get("open") == "true"
    assert send(api, "PUT", f"/changeset/{cs}/close").status_code == 200
    assert b'maximum_elements="3"' in send(api, "GET", "/capabilities", token=None).content


def test_a_changeset_wider_and_higher_than_3_degrees_is_refused(api, mapper):
    cs = open_changeset(api)
    assert upload(api, cs, ("create", [node(-1, cs), node(-2, cs, lat=47.0, lon=7.0)])).status_code == 200

    answer = upload(api, cs, ("create", [node(-1, cs, lat=47.5, lon=7.5)]))

    assert_refused(answer, 413, "Changeset bounding box size limit exceeded.")
    assert api.changesets[cs].bbox == (LAT, LON, 47.0, 7.0)
    api.max_bbox_size = 4.0
    assert upload(api, cs, ("create", [node(-1, cs, lat=47.5, lon=7.5)])).status_code == 200


def test_a_body_over_the_payload_limit_is_refused(api, mapper):
    api.max_payload = 200
    cs = open_changeset(api)

    answer = upload(api, cs, ("create", [node(-n, cs) for n in range(1, 5)]))

    assert_refused(answer, 413, "Payload exceeds limit of 200 bytes")
    assert len(api.elements) == 4


def test_the_hourly_limit_counts_the_changes_of_changesets_created_in_the_last_hour(api):
    api.add_account(TOKEN, "Camille", hourly_limit=5)
    first = open_changeset(api)
    assert upload(api, first, ("create", [node(-n, first) for n in range(1, 4)])).status_code == 200
    second = open_changeset(api)

    answer = upload(api, second, ("create", [node(-n, second) for n in range(1, 4)]))

    assert_refused(answer, 429, "Upload has been blocked due to rate limiting. Please try again later.")
    assert "Retry-After" not in answer.headers and api.changesets[second].changes_count == 0
    assert upload(api, second, ("create", [node(-1, second), node(-2, second)])).status_code == 200
    api.advance(3601)
    third = open_changeset(api)
    assert upload(api, third, ("create", [node(-n, third) for n in range(1, 6)])).status_code == 200


def test_a_second_upload_while_one_is_applied_meets_the_lock(api, mapper):
    cs = open_changeset(api)
    api.slow_upload(2.0)
    answers = []
    first = threading.Thread(target=lambda: answers.append(upload(api, cs, ("create", [node(-1, cs)]))))
    first.start()
    deadline = time.monotonic() + 2
    while not api.locked(cs) and time.monotonic() < deadline:
        time.sleep(0.01)

    locked = f"Changeset {cs} is currently locked by another process."
    assert_refused(upload(api, cs, ("create", [node(-1, cs)])), 409, locked)
    assert_refused(send(api, "PUT", f"/changeset/{cs}/close"), 409, locked)
    first.join(5)
    assert answers[0].status_code == 200 and api.changesets[cs].changes_count == 1
    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200


def test_a_held_lock_refuses_uploads_until_released(api, mapper):
    cs = open_changeset(api)
    api.hold_lock(cs)

    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 409

    api.release_lock(cs)
    assert not api.locked(cs)
    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200


# Faults.

def test_a_drop_before_apply_closes_the_connection_and_applies_nothing(api, mapper):
    cs = open_changeset(api)
    api.drop_before_apply()

    with pytest.raises(requests.ConnectionError):
        upload(api, cs, ("create", [node(-1, cs)]))

    assert len(api.elements) == 4 and api.changesets[cs].changes_count == 0
    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200  # one-shot


def test_a_drop_after_apply_commits_and_gives_no_answer(api, mapper):
    cs = open_changeset(api)
    api.drop_after_apply()

    with pytest.raises(requests.ConnectionError):
        upload(api, cs, ("create", [node(-1, cs, tags={"amenity": "bench"})]))

    assert api.elements["node", 104].tags == {"amenity": "bench"}
    assert changeset_xml(api, cs).get("changes_count") == "1"
    assert b'<node id="104"' in send(api, "GET", f"/changeset/{cs}/download", token=None).content


def test_fail_next_can_aim_at_one_call_and_leaves_the_others_alone(api, mapper):
    cs = open_changeset(api)
    api.fail_next(500, "Internal Server Error", when=r"PUT /changeset/\d+/close")

    assert upload(api, cs, ("create", [node(-1, cs)])).status_code == 200
    assert_refused(send(api, "PUT", f"/changeset/{cs}/close"), 500, "Internal Server Error")
    assert changeset_xml(api, cs).get("open") == "true"  # the failure touched nothing
    assert send(api, "PUT", f"/changeset/{cs}/close").status_code == 200


def test_fail_next_without_a_target_answers_the_very_next_request(api, mapper):
    api.fail_next(503, "Database offline for maintenance")

    assert_refused(send(api, "GET", "/capabilities", token=None), 503, "Database offline for maintenance")
    assert send(api, "GET", "/capabilities", token=None).status_code == 200


@pytest.mark.parametrize("applied", [False, True])
def test_a_hang_times_the_client_out_applied_or_not(api, mapper, applied):
    cs = open_changeset(api)
    api.hang_next(30, when="/changeset/\\d+/upload", applied=applied)

    with pytest.raises(requests.Timeout):
        upload(api, cs, ("create", [node(-1, cs)]), timeout=0.5)

    assert (("node", 104) in api.elements) is applied
    assert api.changesets[cs].changes_count == int(applied)


def test_calls_record_method_and_path_beside_the_paths(api, mapper):
    cs = open_changeset(api)
    send(api, "GET", f"/changeset/{cs}?include_discussion=true", token=None)

    assert api.calls == [("PUT", "/api/0.6/changeset/create"),
                         ("GET", f"/api/0.6/changeset/{cs}?include_discussion=true")]
    assert api.requests == ["/api/0.6/changeset/create", f"/api/0.6/changeset/{cs}?include_discussion=true"]


# Download.

def test_the_download_rebuilds_what_the_changeset_did_from_history(api, mapper):
    cs = open_changeset(api)
    upload(api, cs, ("create", [node(-1, cs, tags={"amenity": "bench"})]),
           ("modify", [node(101, cs, version=3, tags={"natural": "tree"})]))
    api.advance(60)
    upload(api, cs, ("modify", [node(104, cs, version=1, tags={"amenity": "bench", "backrest": "no"})]),
           ("delete", [node(102, cs, version=1)]))
    api.edit("node", 101, tags={"natural": "tree", "height": "12"})  # another changeset

    answer = send(api, "GET", f"/changeset/{cs}/download", token=None)

    change = ElementTree.fromstring(answer.content)
    assert change.tag == "osmChange"
    blocks = [(block.tag, block[0].get("id"), block[0].get("version"), block[0].get("changeset"))
              for block in change]
    # cgimap's order: by timestamp, version, type and id.
    assert blocks == [("create", "104", "1", str(cs)), ("modify", "101", "4", str(cs)),
                      ("delete", "102", "2", str(cs)), ("modify", "104", "2", str(cs))]
    first = {tag.get("k"): tag.get("v") for tag in change[1][0].findall("tag")}
    assert first == {"natural": "tree"}  # the version this changeset made, not the one after
    assert change[0][0].get("lat") == "45.5650000" and "lat" not in change[2][0].attrib


# OAuth 2.0.

def verifier_and_challenge():
    """A PKCE code verifier and its S256 challenge."""
    verifier = "v" * 20 + "-verifier-with-enough-entropy-0123456789"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture(name="oauth")
def oauth_fixture(api):
    """cartoparty registered, and Zoé signed in on the OSM site."""
    api.register_client("cartoparty-id", "cartoparty-secret", [REDIRECT], name="Carto<party>")
    api.authorize_as = api.add_account("zoe-site-session", 'Zoé "<b>"', uid=4343)
    return api


def authorize_url(api, challenge, scope="read_prefs write_api", **params):
    """The address of an authorization request of cartoparty's (params: fields to change)."""
    query = {"response_type": "code", "client_id": "cartoparty-id", "redirect_uri": REDIRECT, "scope": scope,
             "state": "st4te", "code_challenge": challenge, "code_challenge_method": "S256"} | params
    return requests.Request("GET", f"{api.auth_url}/oauth2/authorize", params=query).prepare().url


def forms(page):
    """[{field: value}] of each form of the page."""
    return [{html.unescape(name): html.unescape(value) for name, value in
             re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form)}
            for form in re.findall(r"<form.*?</form>", page, re.S)]


def a_code(api, challenge, **params):
    """An authorization code, by the page's Authorize form."""
    page = requests.get(authorize_url(api, challenge, **params), timeout=5).text
    answer = requests.post(f"{api.auth_url}/oauth2/authorize", data=forms(page)[0], allow_redirects=False,
                           timeout=5)
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def exchange(api, grant_code, verifier, **changes):
    """The token endpoint's answer for a code (changes: fields to change, None to leave out)."""
    form = {"grant_type": "authorization_code", "code": grant_code, "redirect_uri": REDIRECT,
            "client_id": "cartoparty-id", "client_secret": "cartoparty-secret",
            "code_verifier": verifier} | changes
    form = {name: value for name, value in form.items() if value is not None}
    return requests.post(f"{api.auth_url}/oauth2/token", data=form, timeout=5)


def test_the_metadata_names_the_endpoints_and_s256(api):
    data = requests.get(f"{api.auth_url}/.well-known/oauth-authorization-server", timeout=5).json()

    assert data["authorization_endpoint"] == f"{api.auth_url}/oauth2/authorize"
    assert data["token_endpoint"] == f"{api.auth_url}/oauth2/token"
    assert data["code_challenge_methods_supported"] == ["plain", "S256"]
    assert data["response_types_supported"] == ["code"]
    assert data["grant_types_supported"] == ["authorization_code"]
    assert {"read_prefs", "write_api"} <= set(data["scopes_supported"])


def test_the_authorization_page_names_the_app_the_rights_and_the_signed_in_mapper(oauth):
    _, challenge = verifier_and_challenge()

    page = requests.get(authorize_url(oauth, challenge), timeout=5)

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Zoé &quot;&lt;b&gt;&quot;" in page.text and "Carto&lt;party&gt;" in page.text
    assert "<b>" not in page.text
    assert "Read user preferences" in page.text and "Modify the map" in page.text
    authorize, deny = forms(page.text)
    assert authorize["code_challenge"] == challenge and authorize["state"] == "st4te"
    assert deny["_method"] == "delete"
    assert ">Authorize</button>" in page.text and ">Deny</button>" in page.text


def test_authorizing_gives_a_code_for_a_token_of_the_signed_in_account(oauth):
    verifier, challenge = verifier_and_challenge()
    page = requests.get(authorize_url(oauth, challenge), timeout=5).text

    answer = requests.post(f"{oauth.auth_url}/oauth2/authorize", data=forms(page)[0], allow_redirects=False,
                           timeout=5)

    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st4te"]
    token = exchange(oauth, query["code"][0], verifier)
    assert token.status_code == 200
    data = token.json()
    assert (data["token_type"], data["scope"]) == ("Bearer", "read_prefs write_api")
    assert data["created_at"] == int(NOW.timestamp())
    assert "refresh_token" not in data and "expires_in" not in data
    details = send(oauth, "GET", "/user/details.json", token=data["access_token"]).json()
    assert details["user"]["id"] == 4343
    assert open_changeset(oauth, token=data["access_token"]) > 0


def test_a_wrong_verifier_gets_no_token_and_a_code_serves_once(oauth):
    verifier, challenge = verifier_and_challenge()
    code = a_code(oauth, challenge)

    wrong = exchange(oauth, code, "another-verifier-of-the-right-length-000000000")

    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["error_description"]
    assert exchange(oauth, code, None).json()["error"] == "invalid_grant"
    assert exchange(oauth, code, verifier).status_code == 200
    assert exchange(oauth, code, verifier).json()["error"] == "invalid_grant"  # used


@pytest.mark.parametrize(("changes", "status", "error"), [
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "someone-else", "client_secret": None}, 401, "invalid_client"),
    ({"redirect_uri": "http://127.0.0.1:5000/other"}, 400, "invalid_grant"),
    ({"code": "not-a-code"}, 400, "invalid_grant"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
])
def test_a_token_request_that_does_not_match_the_code_is_refused(oauth, changes, status, error):
    verifier, challenge = verifier_and_challenge()
    code = a_code(oauth, challenge)

    answer = exchange(oauth, code, verifier, **changes)

    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert answer.headers["Content-Type"].startswith("application/json")


def test_the_client_may_authenticate_with_http_basic(oauth):
    verifier, challenge = verifier_and_challenge()
    code = a_code(oauth, challenge)

    answer = requests.post(f"{oauth.auth_url}/oauth2/token", auth=("cartoparty-id", "cartoparty-secret"),
                           data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                 "code_verifier": verifier}, timeout=5)

    assert answer.status_code == 200 and answer.json()["access_token"]


def test_a_code_expires_after_ten_minutes(oauth):
    verifier, challenge = verifier_and_challenge()
    code = a_code(oauth, challenge)
    oauth.advance(601)

    assert exchange(oauth, code, verifier).json()["error"] == "invalid_grant"


def test_denying_sends_access_denied_with_the_state(oauth):
    _, challenge = verifier_and_challenge()
    page = requests.get(authorize_url(oauth, challenge), timeout=5).text

    answer = requests.post(f"{oauth.auth_url}/oauth2/authorize", data=forms(page)[1], allow_redirects=False,
                           timeout=5)

    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert answer.status_code == 302 and query["error"] == ["access_denied"] and query["state"] == ["st4te"]
    assert "code" not in query


@pytest.mark.parametrize("params", [{"client_id": "unknown"}, {"redirect_uri": "http://127.0.0.1:5000/evil"},
                                    {"redirect_uri": "https://example.org/osm/callback"}])
def test_an_unknown_client_or_redirect_uri_gets_an_error_page_not_a_redirect(oauth, params):
    answer = requests.get(authorize_url(oauth, "x", **params), allow_redirects=False, timeout=5)

    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "An error has occurred" in answer.text


@pytest.mark.parametrize("scope", ["write_everything", "", "read_prefs nonsense"])
def test_a_bad_scope_is_sent_back_as_invalid_scope(oauth, scope):
    answer = requests.get(authorize_url(oauth, "x", scope=scope), allow_redirects=False, timeout=5)

    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert answer.status_code == 302 and query["error"] == ["invalid_scope"] and query["state"] == ["st4te"]


def test_the_token_has_only_the_scopes_granted(oauth):
    verifier, challenge = verifier_and_challenge()

    token = exchange(oauth, a_code(oauth, challenge, scope="read_prefs"), verifier).json()["access_token"]

    assert send(oauth, "GET", "/user/details", token=token).status_code == 200
    assert send(oauth, "PUT", "/changeset/create", "<osm><changeset/></osm>", token=token).status_code == 403


def test_a_second_authorization_of_the_same_scopes_skips_the_page_and_reuses_the_token(oauth):
    verifier, challenge = verifier_and_challenge()
    token = exchange(oauth, a_code(oauth, challenge), verifier).json()["access_token"]

    answer = requests.get(authorize_url(oauth, challenge), allow_redirects=False, timeout=5)

    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    assert exchange(oauth, code, verifier).json()["access_token"] == token


def test_a_revoked_token_stops_working(oauth):
    verifier, challenge = verifier_and_challenge()
    token = exchange(oauth, a_code(oauth, challenge), verifier).json()["access_token"]

    answer = requests.post(f"{oauth.auth_url}/oauth2/revoke", auth=("cartoparty-id", "cartoparty-secret"),
                           data={"token": token}, timeout=5)

    assert answer.status_code == 200
    assert_refused(send(oauth, "GET", "/user/details", token=token), 401, "Couldn't authenticate you")


def test_only_the_client_a_token_was_issued_to_revokes_it(oauth):
    verifier, challenge = verifier_and_challenge()
    token = exchange(oauth, a_code(oauth, challenge), verifier).json()["access_token"]

    answer = requests.post(f"{oauth.auth_url}/oauth2/revoke", data={"token": token}, timeout=5)

    assert (answer.status_code, answer.json()["error"]) == (403, "unauthorized_client")
    assert send(oauth, "GET", "/user/details", token=token).status_code == 200
    unknown = requests.post(f"{oauth.auth_url}/oauth2/revoke", data={"token": "nothing"}, timeout=5)
    assert (unknown.status_code, unknown.json()) == (200, {})


def test_a_visitor_not_signed_in_is_sent_to_log_in(oauth):
    oauth.authorize_as = None

    answer = requests.get(authorize_url(oauth, "x"), allow_redirects=False, timeout=5)

    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?referer=")


@pytest.mark.parametrize("uri", ["http://localhost:5000/callback", "http://carto.example.org/callback"])
def test_osm_refuses_plain_http_redirect_uris_but_on_loopback_addresses(api, uri):
    with pytest.raises(ValueError, match="https"):
        api.register_client("id", "secret", [uri])
    api.register_client("id", "secret", ["https://carto.example.org/cb", "http://[::1]:5000/cb", REDIRECT])
