"""cartoparty.osm.api against the local OSM API stand-in (osm_api.py): no internet.

(Not test_api.py: tests/test_api.py has that module name already.)
"""

import logging
import urllib.error
import urllib.request

import osmium
import pytest
from conftest import SHARED_DATA

from cartoparty.osm import api
from cartoparty.osm.api import Element, OsmApiError, fetch_elements

SAMPLES = SHARED_DATA / "osm_api" / "vespucci" / "testCommon"
OSMIUM_TYPES = {"n": "node", "w": "way", "r": "relation"}


def test_nodes_come_with_their_tags_version_and_coordinates(osm_api):
    osm_api.add_node(4242, 45.5651, 5.9201, {"emergency": "defibrillator", "indoor": "yes"}, version=3)
    osm_api.add_node(4343, 45.5652, 5.9202)

    elements = fetch_elements(osm_api.url, [("node", 4242), ("node", 4343)])

    assert elements == {
        ("node", 4242): Element("node", 4242, version=3, visible=True, lat=45.5651, lon=5.9201,
                                tags={"emergency": "defibrillator", "indoor": "yes"}),
        ("node", 4343): Element("node", 4343, version=1, visible=True, lat=45.5652, lon=5.9202, tags={}),
    }
    assert osm_api.requests == ["/api/0.6/nodes?nodes=4242,4343"]


def test_ways_come_with_their_node_list_in_order(osm_api):
    osm_api.add_way(5151, [3, 1, 2, 3], {"amenity": "pharmacy", "name": "Pharmacie du Théâtre"}, version=7)

    way = fetch_elements(osm_api.url, [("way", 5151)])["way", 5151]

    assert (way.nodes, way.version, way.visible) == ((3, 1, 2, 3), 7, True)
    assert way.tags == {"amenity": "pharmacy", "name": "Pharmacie du Théâtre"}
    assert (way.lat, way.lon, way.members) == (None, None, ())


def test_relations_come_with_their_members_and_roles(osm_api):
    members = [("way", 5151, "outer"), ("way", 5152, "inner"), ("node", 4242, "")]
    osm_api.add_relation(77, members, {"type": "multipolygon", "amenity": "pharmacy"}, version=2)

    relation = fetch_elements(osm_api.url, [("relation", 77)])["relation", 77]

    assert relation.members == tuple(members)
    assert (relation.tags, relation.version, relation.nodes) == (
        {"type": "multipolygon", "amenity": "pharmacy"}, 2, ())


def test_each_type_is_asked_with_its_own_multi_fetch(osm_api):
    osm_api.add_node(1, 45.56, 5.92)
    osm_api.add_way(2, [1, 1])
    osm_api.add_relation(3, [("way", 2, "")])

    elements = fetch_elements(osm_api.url, {("relation", 3), ("node", 1), ("way", 2), ("node", 1)})

    assert set(elements) == {("node", 1), ("way", 2), ("relation", 3)}
    assert sorted(osm_api.requests) == ["/api/0.6/nodes?nodes=1", "/api/0.6/relations?relations=3",
                                        "/api/0.6/ways?ways=2"]


def test_no_refs_ask_nothing(osm_api):
    assert fetch_elements(osm_api.url, []) == {}
    assert osm_api.requests == []


def test_an_element_edited_by_another_mapper_comes_at_its_new_version(osm_api):
    osm_api.add_node(4242, 45.5651, 5.9201, {"emergency": "defibrillator"}, version=3)
    osm_api.edit("node", 4242, tags={"emergency": "defibrillator", "level": "0"}, lat=45.5655)

    node = fetch_elements(osm_api.url, [("node", 4242)])["node", 4242]

    assert (node.version, node.lat, node.lon) == (4, 45.5655, 5.9201)
    assert node.tags == {"emergency": "defibrillator", "level": "0"}


def test_a_deleted_element_comes_back_invisible_without_tags_or_coordinates(osm_api):
    osm_api.add_node(4242, 45.5651, 5.9201, {"emergency": "defibrillator"}, version=3)
    osm_api.add_node(4343, 45.5652, 5.9202, {"leisure": "picnic_table"})
    osm_api.delete("node", 4242)

    elements = fetch_elements(osm_api.url, [("node", 4242), ("node", 4343)])

    assert elements["node", 4242] == Element("node", 4242, version=4, visible=False, tags={})
    assert elements["node", 4343].visible


def test_an_element_that_never_existed_is_absent_and_the_others_are_still_read(osm_api):
    for osm_id in (1, 2, 4, 5):
        osm_api.add_node(osm_id, 45.56, 5.92, {"ref": str(osm_id)})

    elements = fetch_elements(osm_api.url, [("node", osm_id) for osm_id in (1, 2, 3, 4, 5)])

    assert sorted(elements) == [("node", 1), ("node", 2), ("node", 4), ("node", 5)]
    assert elements["node", 5].tags == {"ref": "5"}


@pytest.mark.parametrize("missing", [{1, 501}, {137, 862}, {999, 1000}, {1, 2}, {250, 251}])
def test_missing_elements_are_found_by_bisection_in_few_requests(osm_api, missing):
    for osm_id in set(range(1, 1001)) - missing:
        osm_api.add_node(osm_id, 45.56, 5.92)

    elements = fetch_elements(osm_api.url, [("node", osm_id) for osm_id in range(1, 1001)])

    assert len(elements) == 998 and not {("node", osm_id) for osm_id in missing} & set(elements)
    assert len(osm_api.requests) < 40  # one request per id would be 1,000


def test_a_batch_of_mostly_missing_ids_costs_under_two_requests_per_id(osm_api):
    osm_api.add_node(1, 45.56, 5.92)  # the others (2 to 64) never existed

    assert list(fetch_elements(osm_api.url, [("node", osm_id) for osm_id in range(1, 65)])) == [("node", 1)]
    assert len(osm_api.requests) < 2 * 64


def test_a_wrong_api_url_is_an_error_not_a_list_of_missing_elements(osm_api):
    osm_api.add_node(1, 45.56, 5.92)

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url + "/typo", [("node", osm_id) for osm_id in range(1, 500)])

    assert (raised.value.code, raised.value.http_status, raised.value.status) == ("osm_api_failed", 404, 502)
    assert osm_api.requests == ["/api/0.6/typo/nodes?nodes=" + ",".join(map(str, range(1, 500))),
                                "/api/0.6/typo/capabilities"]


def test_thousands_of_ids_are_read_in_batches_under_the_url_limit(osm_api):
    ids = [11_000_000_000 + 7 * n for n in range(2000)]  # ids as long as recent OSM nodes'
    for osm_id in ids:
        osm_api.add_node(osm_id, 45.56, 5.92)

    elements = fetch_elements(osm_api.url, [("node", osm_id) for osm_id in ids])

    assert len(elements) == 2000
    origin = osm_api.url.removesuffix("/api/0.6")
    assert 4 <= len(osm_api.requests) <= 5  # 2,000 ids of 11 digits do not fit in 3 URLs of 8,000
    assert all(len(origin + path) < 8000 for path in osm_api.requests)
    assert sum(path.count(",") + 1 for path in osm_api.requests) == 2000


def test_batches_hold_at_most_700_ids(osm_api):
    for osm_id in range(1, 1402):
        osm_api.add_node(osm_id, 45.56, 5.92)

    assert len(fetch_elements(osm_api.url, [("node", osm_id) for osm_id in range(1, 1402)])) == 1401

    assert [path.count(",") + 1 for path in osm_api.requests] == [467, 467, 467]  # even, not 700+700+1


def test_the_stand_in_refuses_request_lines_over_8192_bytes_as_the_real_api_does(osm_api):
    osm_api.add_node(1, 45.56, 5.92)
    ids = ",".join(["1"] * 4100)

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{osm_api.url}/nodes?nodes={ids}", timeout=5)

    assert raised.value.code == 414


HOSTILE = {
    "name": 'Café "Chez <Lou>" & Fils',
    "description": "première ligne\ndeuxième ligne\r\n\ttabulée",
    "note": "🌳🚲 ⚕️ 木",
    "inscription": "é" * 255,
    "fixme": "'apostrophes' ]]> <!-- -->",
    "ref": "  espaces  au bord  ",
}


def test_hostile_tag_values_round_trip_exactly(osm_api):
    osm_api.add_node(1, 45.56, 5.92, HOSTILE)
    osm_api.add_way(2, [1, 1], {"<k&\"ey>": "v"})

    elements = fetch_elements(osm_api.url, [("node", 1), ("way", 2)])

    assert elements["node", 1].tags == HOSTILE
    assert elements["way", 2].tags == {"<k&\"ey>": "v"}


def test_elements_of_a_real_osm_file_come_back_as_the_file_has_them(osm_api):
    sample = SAMPLES / "multifetch1.xml"
    if not sample.exists():
        pytest.skip("../shared/data is not beside the checkout")
    osm_api.load_osm_xml(sample)

    elements = fetch_elements(osm_api.url, [("node", 416083528), ("node", 573380242)])

    assert elements["node", 416083528] == Element(
        "node", 416083528, version=8, visible=True, lat=47.3941580, lon=8.3804872,
        tags={"ele": "548", "highway": "bus_stop", "name": "Eichholz", "operator": "VBZ",
              "shelter": "yes", "towards": "Dietikon", "uic_name": "Kindhausen AG, Eichholz",
              "uic_ref": "8590241"})
    assert elements["node", 573380242].tags["name"] == "Bergli"


def test_a_whole_real_extract_comes_back_as_osmium_reads_it(osm_api):
    extract = SHARED_DATA / "osm_api" / "map_chambery.osm"
    if not extract.exists():
        pytest.skip("../shared/data is not beside the checkout")
    osm_api.load_osm_xml(extract)

    elements = fetch_elements(osm_api.url, list(osm_api.elements))

    expected = {}
    for obj in osmium.FileProcessor(str(extract)):
        osm_type = OSMIUM_TYPES[obj.type_str()]
        expected[osm_type, obj.id] = Element(
            osm_type, obj.id, version=obj.version, visible=obj.visible, tags=dict(obj.tags),
            lat=obj.location.lat if osm_type == "node" else None,
            lon=obj.location.lon if osm_type == "node" else None,
            nodes=tuple(nd.ref for nd in obj.nodes) if osm_type == "way" else (),
            members=tuple((OSMIUM_TYPES[m.type], m.ref, m.role) for m in obj.members)
            if osm_type == "relation" else ())
    assert elements == expected


def test_the_api_down_is_unreachable(osm_api):
    osm_api.down()

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)])

    assert raised.value.code == "osm_api_unreachable"
    assert raised.value.params == {"url": f"{osm_api.url}/nodes"}  # without the list of ids


def test_a_host_that_does_not_resolve_is_unreachable():
    with pytest.raises(OsmApiError) as raised:
        fetch_elements("http://osm-api.invalid/api/0.6", [("node", 1)], timeout=5)

    assert raised.value.code == "osm_api_unreachable"


def test_an_api_that_does_not_answer_in_time_is_unreachable(osm_api):
    osm_api.add_node(1, 45.56, 5.92)
    osm_api.slow(30)

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)], timeout=0.5)

    assert raised.value.code == "osm_api_unreachable"


@pytest.mark.parametrize(("status", "text"), [
    (500, "Internal Server Error"),
    (503, "Database offline for maintenance"),
    (509, "You have downloaded too much data. Please try again later."),
    (403, "You have not permitted the application access to this facility"),
])
def test_an_error_status_fails_with_the_status_and_the_api_text(osm_api, status, text):
    osm_api.add_node(1, 45.56, 5.92)
    osm_api.fail_next(status, text)

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)])

    assert raised.value.code == "osm_api_failed"
    assert raised.value.params == {"http_status": status, "reason": text}
    assert raised.value.status == 502  # for cartoparty's own answer: the API, not the user, failed


def test_a_long_error_text_is_cut_to_200_characters_on_one_line(osm_api):
    osm_api.fail_next(500, "Traceback\n" + "x" * 500)

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)])

    assert raised.value.params["reason"] == ("Traceback " + "x" * 500)[:200]


def test_an_error_without_text_gives_the_http_reason(osm_api):
    osm_api.fail_next(502, "")

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)])

    assert raised.value.params == {"http_status": 502, "reason": "Bad Gateway"}


@pytest.mark.parametrize("body", [
    b"<html><body><h1>Maintenance</h1></body></html>",
    b"",
    b"The API is offline",
    b'<?xml version="1.0"?><osm version="0.6"><node id="1" version="1" lat="45.5"',
    b'<osm version="0.6"><node id="1" visible="true" version="1"/></osm>',  # a node without a place
    b'<osm version="0.6"><way id="x" version="1"/></osm>',
    b'<!DOCTYPE osm [<!ENTITY a "aaaaaaaaaa">]><osm version="0.6"><node id="1" version="1" '
    b'lat="1" lon="1"><tag k="a" v="&a;"/></node></osm>',
])
def test_an_answer_that_is_not_osm_xml_is_a_bad_answer(osm_api, body):
    osm_api.fail_next(200, body, content_type="application/xml")

    with pytest.raises(OsmApiError) as raised:
        fetch_elements(osm_api.url, [("node", 1)])

    assert raised.value.code == "osm_api_bad_answer"
    assert raised.value.params == {"url": f"{osm_api.url}/nodes"}


def test_requests_say_who_is_asking_and_take_errors_as_http_statuses(osm_api):
    osm_api.add_node(1, 45.56, 5.92)

    fetch_elements(osm_api.url, [("node", 1)])

    headers = osm_api.headers[0]
    assert headers["User-Agent"].startswith("cartoparty/")
    assert "X-Error-Format" not in headers  # with it, the API reports errors as HTTP 200


def test_a_token_goes_in_the_authorization_header_only_and_is_never_logged(osm_api, caplog):
    osm_api.fail_next(409, "Version mismatch: Provided 6, server had: 7 of Node 101792984")
    caplog.set_level(logging.DEBUG, logger="cartoparty.osm.api")

    with pytest.raises(OsmApiError):
        api._request("PUT", f"{osm_api.url}/changeset/create", 5, data=b"<osm/>",
                     content_type="text/xml", token="s3cr3t-token")

    assert osm_api.headers[0]["Authorization"] == "Bearer s3cr3t-token"
    assert "s3cr3t" not in osm_api.requests[0] and "s3cr3t" not in caplog.text
    assert "PUT" in caplog.text


@pytest.mark.parametrize("ref", [("nodes", 1), ("node", 0), ("node", -1), ("changeset", 5)])
def test_a_ref_that_cannot_be_an_osm_element_is_refused(osm_api, ref):
    with pytest.raises(ValueError, match="not an OSM element"):
        fetch_elements(osm_api.url, [ref])
    assert osm_api.requests == []


def test_the_app_reads_from_the_stand_in(app, osm_api):
    osm_api.add_node(1, 45.56, 5.92)

    assert ("node", 1) in fetch_elements(app.config["OSM_API_URL"], [("node", 1)])


def test_the_stand_in_answers_single_reads_and_refusals_in_the_real_wording(osm_api):
    osm_api.add_node(1, 45.56, 5.92)
    osm_api.add_node(2, 45.56, 5.92)
    osm_api.delete("node", 2)

    def get(path):
        try:
            with urllib.request.urlopen(osm_api.url + path, timeout=5) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers

    status, body, _ = get("/node/1")
    assert status == 200 and '<node id="1" visible="true" version="1"' in body
    status, body, headers = get("/node/2")
    assert (status, body) == (410, "The node with the id 2 has already been deleted")
    assert headers["Error"] == body and headers["Content-Type"].startswith("text/plain")
    assert get("/way/3")[0] == 404
    assert get("/nodes?nodes=1,3")[:2] == (404, "One or more of the nodes were not found.")
    for bad in ("/nodes?nodes=", "/nodes", "/nodes?nodes=1,,2", "/nodes?nodes=a"):
        assert get(bad)[0] == 400, bad
    status, body, _ = get("/nodes?nodes=2,1")
    assert status == 200 and body.index('id="1"') < body.index('id="2"')
    assert '<node id="2" visible="false" version="2"' in body and 'lat=' not in body.split('id="2"')[1]
