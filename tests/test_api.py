"""The OpenAPI description in cartoparty/openapi.json matches the app: every route is in it, its
schemas are valid JSON Schema, and what the routes really answer conforms to them."""

import io
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import a_submission
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import cartoparty
from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Organiser

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
    assert response.json == DOCUMENT
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


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.is_json
    assert response.json["error"]
    validator(pointer("components", "schemas", "Error")).validate(response.json)
