"""The OpenAPI description in cartoparty/openapi.json matches the app: every route is in it, its
schemas are valid JSON Schema, and what the routes really answer conforms to them."""

import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import ZONE, a_submission, make_event, make_organiser
from flask import g
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlalchemy import text

import cartoparty
from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.i18n import CATALOGS
from cartoparty.models import Organiser, Team
from cartoparty.zones import read_zone

DOCUMENT = json.loads(Path(cartoparty.__file__).with_name("openapi.json").read_text(encoding="utf-8"))
DOCUMENT_URI = "urn:cartoparty:openapi"
REGISTRY = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT))
OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value):
    if not isinstance(value, str):
        return True
    return bool(RFC3339.match(value)) and datetime.fromisoformat(value).tzinfo is not None


def pointer(*parts):
    """A JSON pointer to the document's part at `parts`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def lookup(json_pointer):
    return REGISTRY.resolver(DOCUMENT_URI).lookup(f"{DOCUMENT_URI}#{json_pointer}").contents


def validator(json_pointer):
    """A validator for the schema at `json_pointer`, its `$ref`s resolved in the document."""
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{json_pointer}"}, registry=REGISTRY,
                                format_checker=FORMATS)


def documented_response(path, method, status):
    """The JSON pointer to the documented response, following a `$ref` to components."""
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    at = pointer("paths", path, method, "responses", status)
    while "$ref" in lookup(at):
        at = lookup(at)["$ref"].removeprefix("#")
    return at


def assert_conforms(response, path, method):
    """The response's status and media type are documented and its body fits the schema."""
    at = documented_response(path, method, response.status_code)
    content = lookup(at).get("content", {})
    assert response.mimetype in content, (
        f"{method.upper()} {path} {response.status_code}: {response.mimetype} is not documented")
    if "schema" in content[response.mimetype]:
        validator(f"{at}{pointer('content', response.mimetype, 'schema')}").validate(
            json.loads(response.get_data(as_text=True)))


def flask_operations(app):
    """(path as in OpenAPI, method) of every /api/ rule, without the methods Flask adds."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        automatic = {"HEAD"} if "GET" in rule.methods else set()
        if getattr(rule, "provide_automatic_options", False):
            automatic.add("OPTIONS")
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(path, method.lower()) for method in rule.methods - automatic}
    return operations


def documented_operations():
    return {(path, method) for path, item in DOCUMENT["paths"].items()
            for method in item if method in OPERATIONS}


def test_openapi_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.is_json
    assert response.json["openapi"] == "3.1.0"
    served = json.loads(response.data)
    codes = served["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert codes.pop("enum") == error_codes_in_catalogs()
    assert served == DOCUMENT
    assert response.json["info"]["title"] == "cartoparty API"
    assert response.json["info"]["version"] == cartoparty.__version__
    assert response.json["info"]["license"]["identifier"] == "AGPL-3.0-or-later"


def test_every_api_route_is_documented(app):
    assert flask_operations(app) - documented_operations() == set()


def test_every_documented_route_exists(app):
    assert documented_operations() - flask_operations(app) == set()


def test_path_parameters_are_declared():
    for path, item in DOCUMENT["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method in OPERATIONS & set(item):
            parameters = item.get("parameters", []) + item[method].get("parameters", [])
            declared = {parameter["name"] for parameter in (
                lookup(p["$ref"].removeprefix("#")) if "$ref" in p else p for p in parameters)
                if parameter["in"] == "path"}
            assert declared == in_path, f"{method.upper()} {path}"


@pytest.mark.parametrize("name", sorted(DOCUMENT["components"]["schemas"]))
def test_schema_is_valid_json_schema(name):
    schema = DOCUMENT["components"]["schemas"][name]
    Draft202012Validator.check_schema(schema)
    for example in schema.get("examples", []):
        validator(pointer("components", "schemas", name)).validate(example)


def test_every_reference_resolves():
    def references(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    refs = set(references(DOCUMENT))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        lookup(ref.removeprefix("#"))


def test_presets_conform(client):
    response = client.get("/api/presets")
    assert response.status_code == 200
    assert response.json
    assert_conforms(response, "/api/presets", "get")


def test_event_conforms(client, event):
    response = client.get("/api/events/party")
    assert response.status_code == 200
    assert_conforms(response, "/api/events/{slug}", "get")


def test_unknown_event_error_conforms(client):
    response = client.get("/api/events/nowhere")
    assert response.status_code == 404
    assert_conforms(response, "/api/events/{slug}", "get")


def test_join_conforms(client, event):
    body = {"pseudonym": "Camille", "consent": True}
    validator(pointer("components", "schemas", "ParticipantInput")).validate(body)
    response = client.post("/api/events/party/participants", json=body)
    assert response.status_code == 201
    assert_conforms(response, "/api/events/{slug}/participants", "post")


def test_created_and_replayed_submission_conform(client, walker):
    body = a_submission()
    validator(pointer("components", "schemas", "SubmissionInput")).validate(body)
    path = "/api/events/{slug}/submissions"
    created = client.post("/api/events/party/submissions", json=body, headers=walker)
    assert created.status_code == 201
    assert_conforms(created, path, "post")
    replayed = client.post("/api/events/party/submissions", json=body, headers=walker)
    assert replayed.status_code == 200
    assert_conforms(replayed, path, "post")
    conflict = client.post("/api/events/party/submissions", json={**body, "note": "changed"},
                           headers=walker)
    assert conflict.status_code == 409
    assert_conforms(conflict, path, "post")


@pytest.mark.parametrize("change", [
    {"colour": "green"}, {"lat": 91}, {"lon": -180.5}, {"lat": "45.56"}, {"accuracy": -1},
    {"accuracy": 100_001}, {"note": "x" * 2001}, {"tags": {"x y": "z"}}, {"tags": {"k": ""}},
    {"tags": {"k": "a\tb"}}, {"tags": {f"k{i}": "v" for i in range(101)}}, {"preset": "Tree"},
    {"client_id": None},
])
def test_what_the_schema_refuses_the_app_refuses(client, walker, change):
    body = a_submission(**change)
    assert not validator(pointer("components", "schemas", "SubmissionInput")).is_valid(body)
    response = client.post("/api/events/party/submissions", json=body, headers=walker)
    assert response.status_code == 422
    assert_conforms(response, "/api/events/{slug}/submissions", "post")


def test_corrected_and_deleted_submission_conform(client, walker):
    body = a_submission()
    client.post("/api/events/party/submissions", json=body, headers=walker)
    path = "/api/events/{slug}/submissions/{client_id}"
    url = f"/api/events/party/submissions/{body['client_id']}"
    change = {"preset": "tree", "lat": body["lat"], "lon": body["lon"], "note": "by the fountain"}
    validator(pointer("components", "schemas", "SubmissionUpdate")).validate(change)
    corrected = client.put(url, json=change, headers=walker)
    assert corrected.status_code == 200
    assert corrected.json["note"] == "by the fountain"
    assert_conforms(corrected, path, "put")
    deleted = client.delete(url, headers=walker)
    assert deleted.status_code == 204
    assert not deleted.data
    documented_response(path, "delete", 204)
    assert_conforms(client.delete(url, headers=walker), path, "delete")


def test_photo_upload_and_download_conform(client, walker):
    body = a_submission()
    client.post("/api/events/party/submissions", json=body, headers=walker)
    image = io.BytesIO()
    Image.new("RGB", (8, 6), (20, 120, 40)).save(image, "PNG")
    path = "/api/events/{slug}/submissions/{client_id}/photos"
    url = f"/api/events/party/submissions/{body['client_id']}/photos"
    uploaded = client.post(url, data={"photo": (io.BytesIO(image.getvalue()), "p.png")},
                           headers=walker)
    assert uploaded.status_code == 201
    assert_conforms(uploaded, path, "post")
    again = client.post(url, data={"photo": (io.BytesIO(image.getvalue()), "p.png")}, headers=walker)
    assert again.status_code == 200
    assert_conforms(again, path, "post")
    photo = client.get(uploaded.json["url"], headers=walker)
    assert photo.status_code == 200
    assert_conforms(photo, "/api/events/{slug}/photos/{sha256}", "get")
    assert_conforms(client.get(uploaded.json["url"]), "/api/events/{slug}/photos/{sha256}", "get")


def test_geojson_conforms_for_walkers_and_organisers(client, event, walker):
    client.post("/api/events/party/submissions", json=a_submission(), headers=walker)
    response = client.get("/api/events/party/submissions.geojson", headers=walker)
    assert response.status_code == 200
    assert response.json["features"][0]["properties"]["mine"] is True
    assert_conforms(response, "/api/events/{slug}/submissions.geojson", "get")
    organiser = Organiser(email="alice@example.org", password_hash=hash_password("secret"))
    event.organisers.append(organiser)
    db.session.commit()
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    response = client.get("/api/events/party/submissions.geojson")
    assert response.status_code == 200
    assert response.json["features"][0]["properties"]["pseudonym"] == "Camille"
    assert_conforms(response, "/api/events/{slug}/submissions.geojson", "get")


def error_codes_in_catalogs():
    return sorted(key.removeprefix("error.") for key in CATALOGS["en"] if key.startswith("error."))


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.is_json
    assert response.json["error"]["code"] == "not_found"
    assert response.json["error"]["message"] == "There is nothing at this address."
    validator(pointer("components", "schemas", "Error")).validate(response.json)


def test_join_with_a_team_conforms(client, event):
    team = Team(event_id=event.id, name="Arbres", presets=["tree"], sector=read_zone(ZONE))
    db.session.add(team)
    db.session.commit()
    path = "/api/events/{slug}/participants"
    body = {"pseudonym": "Noor", "consent": True, "team": team.join_code}
    validator(pointer("components", "schemas", "ParticipantInput")).validate(body)
    response = client.post("/api/events/party/participants", json=body)
    assert response.status_code == 201
    assert response.json["team"]["name"] == "Arbres"
    assert response.json["team"]["sector"]["type"] == "MultiPolygon"
    assert_conforms(response, path, "post")
    refused = client.post("/api/events/party/participants",
                          json={**body, "pseudonym": "Sam", "team": "no-such-team"})
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "team"
    assert_conforms(refused, path, "post")


# The organisers' review API. POST and PATCH need the CSRF token of the organiser pages.

ORGANISE = "/api/organise/party"
DETAIL = "/api/organise/{slug}/submissions/{submission_id}"
DECIDE = "/api/organise/{slug}/submissions/{submission_id}/{decision}"
MERGE = "/api/organise/{slug}/submissions/{submission_id}/merge"
BULK = "/api/organise/{slug}/review/bulk"


def csrf(client):
    """The header carrying the CSRF token of the organiser pages, as the review page sends it."""
    # The tests' app context outlives requests; Flask-WTF keeps the last token in `g`.
    g.pop("csrf_token", None)
    page = client.get("/organise/party").get_data(as_text=True)
    return {"X-CSRFToken": page.split('name="csrf-token" content="')[1].split('"')[0]}


def recorded(client, walker, **values):
    """The id of a new point the walker sent through the API."""
    response = client.post("/api/events/party/submissions", json=a_submission(**values),
                           headers=walker)
    assert response.status_code == 201
    return response.json["id"]


def add_photo(client, walker, submission_id, colour=(20, 120, 40)):
    client_id = client.get(f"{ORGANISE}/submissions/{submission_id}").json["client_id"]
    image = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(image, "PNG")
    response = client.post(f"/api/events/party/submissions/{client_id}/photos",
                           data={"photo": (io.BytesIO(image.getvalue()), "p.png")}, headers=walker)
    assert response.status_code == 201


def conforming_body(schema, body):
    validator(pointer("components", "schemas", schema)).validate(body)
    return body


def test_review_detail_conforms(client, organiser, walker):
    point = recorded(client, walker)
    add_photo(client, walker, point)
    client.post(f"{ORGANISE}/submissions/{point}/approve", json={"version": 1}, headers=csrf(client))
    response = client.get(f"{ORGANISE}/submissions/{point}")
    assert response.status_code == 200
    assert len(response.json["photos"]) == 1
    assert [entry["action"] for entry in response.json["history"]] == ["approve"]
    assert response.json["reviewed_at"]
    assert_conforms(response, DETAIL, "get")
    missing = client.get(f"{ORGANISE}/submissions/999999")
    assert missing.status_code == 404
    assert missing.json["error"]["field"] == "submission_id"
    assert_conforms(missing, DETAIL, "get")


def test_decisions_conform(client, organiser, walker):
    first, second = recorded(client, walker), recorded(client, walker)
    headers = csrf(client)
    approved = client.post(f"{ORGANISE}/submissions/{first}/approve", headers=headers,
                           json=conforming_body("Decision", {"version": 1}))
    assert approved.status_code == 200
    assert (approved.json["status"], approved.json["version"]) == ("approved", 2)
    assert_conforms(approved, DECIDE, "post")
    stale = client.post(f"{ORGANISE}/submissions/{first}/reject", headers=headers,
                        json=conforming_body("Decision", {"version": 1, "reason": "doublon"}))
    assert stale.status_code == 409
    assert stale.json["error"]["field"] == "version"
    assert_conforms(stale, DECIDE, "post")
    no_reason = client.post(f"{ORGANISE}/submissions/{second}/reject", headers=headers,
                            json={"version": 1})
    assert no_reason.status_code == 422
    assert no_reason.json["error"]["field"] == "reason"
    assert_conforms(no_reason, DECIDE, "post")
    rejected = client.post(f"{ORGANISE}/submissions/{second}/reject", headers=headers,
                           json=conforming_body("Decision", {"version": 1, "reason": "photo floue"}))
    assert rejected.status_code == 200
    assert rejected.json["review_reason"] == "photo floue"
    assert_conforms(rejected, DECIDE, "post")
    unknown = client.post(f"{ORGANISE}/submissions/{second}/delete", headers=headers,
                          json={"version": 2})
    assert unknown.status_code == 404
    assert_conforms(unknown, DECIDE, "post")


def test_bulk_decision_conforms(client, organiser, walker):
    points = [recorded(client, walker) for _ in range(3)]
    headers = csrf(client)
    client.post(f"{ORGANISE}/submissions/{points[1]}/reject", headers=headers,
                json={"version": 1, "reason": "flou"})
    body = conforming_body("BulkDecision", {"action": "approve", "items": [
        {"id": point, "version": 1} for point in points]})
    response = client.post(f"{ORGANISE}/review/bulk", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json == {"done": [points[0], points[2]], "not_changed": [points[1]]}
    assert_conforms(response, BULK, "post")
    refused = client.post(f"{ORGANISE}/review/bulk", headers=headers,
                          json={"action": "delete", "items": body["items"]})
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "action"
    assert_conforms(refused, BULK, "post")


def test_corrections_conform(client, organiser, walker):
    point = recorded(client, walker)
    headers = csrf(client)
    edited = client.patch(f"{ORGANISE}/submissions/{point}", headers=headers, json=conforming_body(
        "Correction", {"version": 1, "tags": {"species": "Acer platanoides", "height": "8"},
                       "note": "au coin"}))
    assert edited.status_code == 200
    assert edited.json["tags"] == {"natural": "tree", "species": "Acer platanoides", "height": "8"}
    assert_conforms(edited, DETAIL, "patch")
    moved = client.patch(f"{ORGANISE}/submissions/{point}", headers=headers, json=conforming_body(
        "Correction", {"version": 2, "lat": 45.5655, "lon": 5.9205}))
    assert moved.status_code == 200
    assert [entry["action"] for entry in moved.json["history"]] == ["edit", "move"]
    assert_conforms(moved, DETAIL, "patch")
    stale = client.patch(f"{ORGANISE}/submissions/{point}", headers=headers,
                         json={"version": 2, "note": "trop tard"})
    assert stale.status_code == 409
    assert_conforms(stale, DETAIL, "patch")
    bad_tag = client.patch(f"{ORGANISE}/submissions/{point}", headers=headers,
                           json={"version": 3, "tags": {"height": "tall"}})
    assert bad_tag.status_code == 422
    assert bad_tag.json["error"]["field"] == "tags.height"
    assert_conforms(bad_tag, DETAIL, "patch")


@pytest.mark.parametrize(("change", "field"), [
    ({}, "tags"), ({"lat": 45.565}, "lon"), ({"lon": 5.92}, "lat"), ({"lat": 91, "lon": 5.92}, "lat"),
    ({"lat": "45.565", "lon": 5.92}, "lat"), ({"note": None}, "note"), ({"note": "x" * 2001}, "note"),
    ({"tags": {"x y": "z"}}, "tags.x y"), ({"tags": ["natural"]}, "tags"), ({"colour": "red"}, "colour"),
    ({"version": "1", "note": ""}, "version"), ({"version": None, "note": ""}, "version"),
])
def test_what_the_correction_schema_refuses_the_app_refuses(client, organiser, walker, change, field):
    point = recorded(client, walker)
    body = {"version": 1, **change}
    assert not validator(pointer("components", "schemas", "Correction")).is_valid(body)
    response = client.patch(f"{ORGANISE}/submissions/{point}", json=body, headers=csrf(client))
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert_conforms(response, DETAIL, "patch")


def test_merge_conforms(client, organiser, walker):
    kept, duplicate = recorded(client, walker), recorded(client, walker, tags={"height": "12"})
    bench = recorded(client, walker, preset="bench", tags={})
    add_photo(client, walker, duplicate)
    headers = csrf(client)
    other_preset = client.post(f"{ORGANISE}/submissions/{kept}/merge", headers=headers, json={
        "version": 1, "duplicate": bench, "duplicate_version": 1})
    assert other_preset.status_code == 422
    assert other_preset.json["error"]["field"] == "duplicate"
    assert_conforms(other_preset, MERGE, "post")
    stale = client.post(f"{ORGANISE}/submissions/{kept}/merge", headers=headers, json={
        "version": 1, "duplicate": duplicate, "duplicate_version": 2})
    assert stale.status_code == 409
    assert_conforms(stale, MERGE, "post")
    merged = client.post(f"{ORGANISE}/submissions/{kept}/merge", headers=headers, json=conforming_body(
        "MergeInput", {"version": 1, "duplicate": duplicate, "duplicate_version": 1}))
    assert merged.status_code == 200
    assert merged.json["tags"]["height"] == "12"
    assert len(merged.json["photos"]) == 1
    assert_conforms(merged, MERGE, "post")
    gone = client.get(f"{ORGANISE}/submissions/{duplicate}")
    assert (gone.json["status"], gone.json["duplicate_of_id"]) == ("rejected", kept)
    assert [entry["action"] for entry in gone.json["history"]] == ["merge"]
    assert_conforms(gone, DETAIL, "get")


ORGANISER_OPERATIONS = [
    ("get", DETAIL, "/submissions/{id}", None),
    ("patch", DETAIL, "/submissions/{id}", {"version": 1, "note": "x"}),
    ("post", DECIDE, "/submissions/{id}/approve", {"version": 1}),
    ("post", MERGE, "/submissions/{id}/merge", {"version": 1, "duplicate": 1, "duplicate_version": 1}),
    ("post", BULK, "/review/bulk", {"action": "approve", "items": [{"id": 1, "version": 1}]}),
    ("get", "/api/organise/{slug}/map", "/map?bbox=5.9,45.55,5.94,45.58&zoom=14", None),
    ("get", "/api/organise/{slug}/list", "/list", None),
    ("get", "/api/organise/{slug}/dashboard", "/dashboard", None),
    ("get", "/api/organise/{slug}/changes", "/changes", None),
]


def test_every_organiser_operation_is_exercised():
    review = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item
              if method in OPERATIONS and "review" in item[method].get("tags", [])}
    assert review == {(path, method) for method, path, _, _ in ORGANISER_OPERATIONS}


@pytest.mark.parametrize(("method", "path", "url", "body"), ORGANISER_OPERATIONS)
def test_organiser_route_errors_conform(client, event, organiser, walker, method, path, url, body):
    url = ORGANISE + url.format(id=recorded(client, walker))
    changes = method != "get"
    headers = csrf(client)
    if changes:
        no_token = getattr(client, method)(url, json=body)
        assert no_token.status_code == 400
        assert_conforms(no_token, path, method)
    unknown_event = getattr(client, method)(url.replace("/party/", "/nowhere/"), json=body,
                                            headers=headers)
    assert unknown_event.status_code == 404
    assert unknown_event.json["error"]["field"] == "slug"
    assert_conforms(unknown_event, path, method)
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    forbidden = getattr(client, method)(url, json=body, headers=headers)
    assert forbidden.status_code == 403
    assert_conforms(forbidden, path, method)
    with client.session_transaction() as session:
        del session["organiser_id"]  # the CSRF token stays valid: it is not tied to who signs in
    signed_out = getattr(client, method)(url, json=body, headers=headers)
    assert signed_out.status_code == 401
    assert_conforms(signed_out, path, method)
    if changes:
        not_json = getattr(client, method)(url, data="version=1", headers=headers,
                                           auth=("alice@example.org", "correct horse"))
        assert not_json.status_code == 415
        assert_conforms(not_json, path, method)


ADD_POINTS = text("""
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags, note,
                            observed_at, received_at, status, version, body_sha256)
    SELECT p.event_id, p.id, gen_random_uuid(), 'tree',
           ST_SetSRID(ST_MakePoint(5.917 + (i % 40) * 0.0001, 45.562 + (i / 40) * 0.0001), 4326), NULL,
           '{}', '', now(), now(),
           CAST((ARRAY['pending', 'approved', 'rejected'])[i % 3 + 1] AS submission_status), 1,
           repeat('0', 64)
    FROM participant p, generate_series(0, :count - 1) AS i WHERE p.id = :participant_id
""")


def test_review_map_conforms_with_points_and_clusters(client, organiser, walker):
    path = "/api/organise/{slug}/map"
    recorded(client, walker)
    everywhere = {"bbox": "5.9,45.55,5.94,45.58", "zoom": "14"}
    points = client.get(f"{ORGANISE}/map", query_string=everywhere)
    assert points.status_code == 200
    assert (points.json["mode"], points.json["total"], len(points.json["points"])) == ("points", 1, 1)
    assert_conforms(points, path, "get")
    camille = db.session.scalar(text("SELECT id FROM participant WHERE pseudonym = 'Camille'"))
    db.session.execute(ADD_POINTS, {"participant_id": camille, "count": 1600})
    db.session.commit()
    clusters = client.get(f"{ORGANISE}/map", query_string=everywhere)
    assert clusters.json["mode"] == "clusters"
    assert sum(cluster["count"] for cluster in clusters.json["clusters"]) == 1601
    assert_conforms(clusters, path, "get")
    refused = client.get(f"{ORGANISE}/map", query_string={"zoom": "14"})
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "bbox"
    assert_conforms(refused, path, "get")


def test_review_list_dashboard_and_cursor_conform(client, event, organiser, walker):
    team = Team(event_id=event.id, name="Arbres", presets=["tree"])
    db.session.add(team)
    db.session.commit()
    noor = client.post("/api/events/party/participants",
                       json={"pseudonym": "Noor", "consent": True, "team": team.join_code}).json
    recorded(client, walker, accuracy=None)
    add_photo(client, walker, recorded(client, walker, note="arbre mort"))
    recorded(client, {"Authorization": f"Bearer {noor['token']}"}, preset="bench", tags={})
    listed = client.get(f"{ORGANISE}/list", query_string={"per_page": "2", "page": "1"})
    assert listed.status_code == 200
    assert (listed.json["total"], len(listed.json["items"])) == (3, 2)
    assert {item["team"] for item in listed.json["items"]} == {"Arbres", None}
    assert_conforms(listed, "/api/organise/{slug}/list", "get")
    dashboard = client.get(f"{ORGANISE}/dashboard")
    assert dashboard.status_code == 200
    assert dashboard.json["by_team"] == {"—": 2, "Arbres": 1}
    assert_conforms(dashboard, "/api/organise/{slug}/dashboard", "get")
    changes = client.get(f"{ORGANISE}/changes")
    assert changes.status_code == 200
    assert_conforms(changes, "/api/organise/{slug}/changes", "get")


# A wrong value for each query parameter the review routes document; the app must name it.
BAD_QUERY = {"bbox": "5.9,45.55,5.94", "zoom": "23", "preset": "volcano", "status": "lost",
             "team": "red", "participant": "1.5", "since": "yesterday", "until": "2026-06-13T10:00:00",
             "page": "0", "per_page": "201", "cursor": "-3"}


def query_parameters(path):
    item = DOCUMENT["paths"][path]
    return [lookup(p["$ref"].removeprefix("#")) if "$ref" in p else p
            for p in item.get("parameters", []) + item["get"].get("parameters", [])
            if (lookup(p["$ref"].removeprefix("#")) if "$ref" in p else p)["in"] == "query"]


@pytest.mark.parametrize("route", ["map", "list", "dashboard", "changes"])
def test_documented_query_parameters_are_the_ones_read(client, organiser, route):
    path = f"/api/organise/{{slug}}/{route}"
    parameters = query_parameters(path)
    examples = {p["name"]: ",".join(p["example"]) if isinstance(p["example"], list) else str(p["example"])
                for p in parameters}
    response = client.get(f"{ORGANISE}/{route}", query_string=examples)
    assert response.status_code == 200, response.json
    assert_conforms(response, path, "get")
    for parameter in parameters:
        assert parameter["name"] in BAD_QUERY
        response = client.get(f"{ORGANISE}/{route}",
                              query_string={**examples, parameter["name"]: BAD_QUERY[parameter["name"]]})
        assert response.status_code == 422, parameter["name"]
        assert response.json["error"]["field"] == parameter["name"]
        assert_conforms(response, path, "get")
    required = {p["name"] for p in parameters if p.get("required")}
    for name in required:
        response = client.get(f"{ORGANISE}/{route}",
                              query_string={k: v for k, v in examples.items() if k != name})
        assert response.status_code == 422
        assert response.json["error"]["field"] == name


def stricter_document(app, monkeypatch, *edits):
    """The app checks requests against a copy of its document with `edits` (pointer, value)."""
    from cartoparty import apispec
    from cartoparty.api import OPENAPI

    document = json.loads(json.dumps(OPENAPI))
    for json_pointer, value in edits:
        *parents, last = json_pointer.strip("/").split("/")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value
    monkeypatch.setitem(app.extensions, apispec.EXTENSION, apispec.build(document))


@pytest.fixture
def point(client, event):
    from conftest import join

    walker = join(client, event.slug)
    return client.post("/api/events/party/submissions", json=a_submission(), headers=walker).json["id"]


def basic_auth():
    import base64

    return {"Authorization": "Basic " + base64.b64encode(b"alice@example.org:correct horse").decode()}


def test_a_body_the_document_refuses_is_refused_naming_the_field_and_nothing_is_saved(
        app, client, event, point, monkeypatch):
    make_organiser(events=[event])
    stricter_document(app, monkeypatch, ("/components/schemas/Decision/properties/reason/maxLength", 5))
    response = client.post(f"/api/organise/party/submissions/{point}/approve",
                           json={"version": 1, "reason": "looks right"}, headers=basic_auth())
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_field"
    assert response.json["error"]["field"] == "reason"
    db.session.rollback()  # as the end of the request does (the tests' app context outlives it)
    assert db.session.scalar(text("SELECT status::text FROM submission WHERE id = :id"), {"id": point}) \
        == "pending"


def test_what_the_route_refuses_itself_keeps_its_own_error(app, client, event, point, monkeypatch):
    make_organiser(events=[event])
    stricter_document(app, monkeypatch, ("/components/schemas/Decision/properties/reason/maxLength", 5))
    response = client.post(f"/api/organise/party/submissions/{point}/approve",
                           json={"version": 1, "reason": "x" * 501}, headers=basic_auth())
    assert (response.status_code, response.json["error"]["code"]) == (422, "reason_too_long")
    unauthorised = client.post(f"/api/organise/party/submissions/{point}/approve",
                               json={"version": 1, "reason": "looks right"})
    assert unauthorised.status_code == 401


def test_a_query_parameter_the_document_refuses_replaces_the_answer(app, client, event, monkeypatch):
    make_organiser(events=[event])
    stricter_document(app, monkeypatch, ("/components/parameters/per_page/schema/minimum", 15))
    assert client.get("/api/organise/party/list?per_page=20", headers=basic_auth()).status_code == 200
    response = client.get("/api/organise/party/list?per_page=10", headers=basic_auth())
    assert response.status_code == 422
    assert (response.json["error"]["code"], response.json["error"]["field"]) == ("invalid_field", "per_page")


def test_a_nested_field_the_document_refuses_is_named_by_its_path(app, client, event, point, monkeypatch):
    make_organiser(events=[event])
    maximum = "/components/schemas/BulkDecision/properties/items/items/properties/id/maximum"
    stricter_document(app, monkeypatch, (maximum, point))
    response = client.post("/api/organise/party/review/bulk", headers=basic_auth(), json={
        "action": "approve", "items": [{"id": point, "version": 1}, {"id": point + 1, "version": 1}]})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "items[1].id"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("delete", "/api/presets", {"GET", "HEAD", "OPTIONS"}),
    ("put", "/api/events/party/participants", {"POST", "OPTIONS"}),
])
def test_a_method_a_route_does_not_take_is_a_405_that_says_which_it_takes(client, event, method,
                                                                         path, allowed):
    response = getattr(client, method)(path, json={})
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed
    assert response.json["error"]["code"] == "method_not_allowed"
