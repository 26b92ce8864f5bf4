import pytest
from conftest import a_submission, join, make_organiser
from flask import g

from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.models import AuditEntry, Photo, Submission


@pytest.fixture
def points(client, event, walker):
    """Three trees recorded by a walker; returns their ids."""
    ids = []
    for species in ("Tilia cordata", "Acer campestre", "Tilia cordata"):
        body = a_submission(tags={"species": species})
        response = client.post("/api/events/party/submissions", json=body, headers=walker)
        ids.append(response.json["id"])
    return ids


def csrf(client):
    # The tests' app context outlives requests; Flask-WTF keeps the last token in `g`.
    g.pop("csrf_token", None)
    page = client.get("/organise/party").get_data(as_text=True)
    return {"X-CSRFToken": page.split('name="csrf-token" content="')[1].split('"')[0]}


def api(client, method, path, body=None):
    return getattr(client, method)(f"/api/organise/party{path}", json=body, headers=csrf(client))


def test_organiser_approves_a_point_and_the_change_is_audited(client, organiser, points):
    response = api(client, "post", f"/submissions/{points[0]}/approve", {"version": 1})
    assert response.status_code == 200
    assert response.json["status"] == "approved"
    assert response.json["version"] == 2
    [entry] = response.json["history"]
    assert entry["actor"] == "alice@example.org"
    assert (entry["before"]["status"], entry["after"]["status"]) == ("pending", "approved")


def test_rejecting_needs_a_reason_which_is_kept(client, organiser, points):
    refused = api(client, "post", f"/submissions/{points[0]}/reject", {"version": 1})
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "reason"
    response = api(client, "post", f"/submissions/{points[0]}/reject",
                   {"version": 1, "reason": "<b>photo floue</b>"})
    assert response.json["status"] == "rejected"
    assert response.json["review_reason"] == "<b>photo floue</b>"


def test_second_organiser_saving_a_stale_version_is_refused(client, app, organiser, points):
    other = app.test_client()
    make_organiser("bob@example.org", events=[organiser.events[0]])
    bob = db.session.scalar(db.select(organiser.__class__).filter_by(email="bob@example.org"))
    with other.session_transaction() as session:
        session["organiser_id"] = bob.id
    assert api(client, "post", f"/submissions/{points[0]}/approve", {"version": 1}).status_code == 200
    late = api(other, "post", f"/submissions/{points[0]}/reject", {"version": 1, "reason": "dup"})
    assert late.status_code == 409
    assert late.json["error"]["code"] == "changed_meanwhile"
    assert "nothing was overwritten" in late.json["error"]["message"]
    assert db.session.get(Submission, points[0]).status == "approved"
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 1


def test_organiser_corrects_tags_and_moves_a_point(client, organiser, points):
    edited = api(client, "patch", f"/submissions/{points[1]}",
                 {"version": 1, "tags": {"species": "Acer platanoides", "height": "8"}})
    assert edited.status_code == 200
    assert edited.json["tags"] == {"natural": "tree", "species": "Acer platanoides", "height": "8"}
    moved = api(client, "patch", f"/submissions/{points[1]}",
                {"version": 2, "lat": 45.5655, "lon": 5.9205})
    assert (moved.json["lat"], moved.json["lon"]) == (45.5655, 5.9205)
    assert [e["action"] for e in moved.json["history"]] == ["edit", "move"]
    bad = api(client, "patch", f"/submissions/{points[1]}", {"version": 3, "tags": {"height": "x"}})
    assert bad.status_code == 422
    assert bad.json["error"]["field"] == "tags.height"


def test_merging_keeps_one_feature_with_both_tags_and_photos(client, organiser, walker, points):
    api(client, "patch", f"/submissions/{points[2]}", {"version": 1, "tags": {
        "species": "Tilia cordata", "height": "12"}})
    client.post(f"/api/events/party/submissions/{a_submission_client_id(points[2])}/photos",
                data={"photo": (png(), "p.png")}, headers=walker)
    response = api(client, "post", f"/submissions/{points[0]}/merge",
                   {"version": 1, "duplicate": points[2], "duplicate_version": 2})
    assert response.status_code == 200
    assert response.json["tags"]["height"] == "12"
    assert len(response.json["photos"]) == 1
    duplicate = db.session.get(Submission, points[2])
    assert (duplicate.status, duplicate.duplicate_of_id) == ("rejected", points[0])
    # Its walker reads why, in the language the organiser works in (French by default here).
    assert duplicate.review_reason == f"Même objet que le point n° {points[0]}, gardé à sa place."
    assert db.session.scalar(db.select(db.func.count()).select_from(Photo)
                             .where(Photo.submission_id == points[0])) == 1


def test_only_the_same_preset_can_be_merged(client, organiser, walker, points):
    bench = client.post("/api/events/party/submissions", headers=walker,
                        json=a_submission(preset="bench", tags={})).json["id"]
    response = api(client, "post", f"/submissions/{points[0]}/merge",
                   {"version": 1, "duplicate": bench, "duplicate_version": 1})
    assert response.status_code == 422


def test_bulk_approval_skips_what_changed_meanwhile(client, organiser, points):
    api(client, "post", f"/submissions/{points[1]}/reject", {"version": 1, "reason": "flou"})
    response = api(client, "post", "/review/bulk", {"action": "approve", "items": [
        {"id": points[0], "version": 1}, {"id": points[1], "version": 1},
        {"id": points[2], "version": 1}]})
    assert response.status_code == 200
    assert response.json == {"done": [points[0], points[2]], "not_changed": [points[1]]}
    statuses = db.session.scalars(db.select(Submission.status).order_by(Submission.id)).all()
    assert statuses == ["approved", "rejected", "approved"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/submissions/{id}/approve", {}, "version"),
    ("/submissions/{id}/approve", {"version": "1"}, "version"),
    ("/submissions/{id}/reject", {"version": 1, "reason": "x" * 501}, "reason"),
    ("/submissions/{id}/approve", {"version": 1, "colour": "red"}, "colour"),
    ("/review/bulk", {"action": "delete", "items": [{"id": 1, "version": 1}]}, "action"),
    ("/review/bulk", {"action": {}, "items": [{"id": 1, "version": 1}]}, "action"),  # found by schemathesis
    ("/review/bulk", {"action": ["approve"], "items": [{"id": 1, "version": 1}]}, "action"),
    ("/review/bulk", {"action": "approve", "items": []}, "items"),
    ("/review/bulk", {"action": "approve", "items": [{"id": "1", "version": 1}]}, "items"),
    ("/submissions/{id}/merge", {"version": 1, "duplicate": "{id}"}, "duplicate"),
])
def test_bad_review_requests_are_refused_naming_the_field(client, organiser, points, path, body,
                                                          field):
    body = {key: (points[0] if value == "{id}" else value) for key, value in body.items()}
    response = api(client, "post", path.format(id=points[0]), body)
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 0


def test_review_actions_need_the_csrf_token(client, organiser, points):
    response = client.post(f"/api/organise/party/submissions/{points[0]}/approve",
                           json={"version": 1})
    assert response.status_code == 400
    assert db.session.get(Submission, points[0]).status == "pending"


def test_unknown_submission_is_404(client, organiser):
    assert api(client, "get", "/submissions/999999").status_code == 404


@pytest.mark.parametrize("which", ["deleted", "too large an id"])
def test_a_point_that_is_gone_or_cannot_be_is_a_404_naming_it(client, organiser, points, which):
    # The review page may ask for a point's details just after its walker deleted it.
    if which == "deleted":
        submission_id = points[0]
        db.session.execute(db.delete(Submission).where(Submission.id == submission_id))
    else:
        submission_id = 2 ** 70
    response = api(client, "get", f"/submissions/{submission_id}")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "no_such_point"
    assert response.json["error"]["field"] == "submission_id"


def test_cli_approves_all_pending_as_an_organiser(runner, organiser, points):
    result = runner.invoke(cli, ["review", "approve", "--event", "party", "--all-pending",
                                 "--as", "alice@example.org"])
    assert result.exit_code == 0, result.output
    assert "approved 3 submission(s)" in result.output
    actors = db.session.scalars(db.select(AuditEntry.actor)).all()
    assert actors == ["alice@example.org (command line)"] * 3


def test_cli_rejects_named_points_with_a_reason(runner, organiser, points):
    client_id = a_submission_client_id(points[1])
    result = runner.invoke(cli, ["review", "reject", "--event", "party", client_id,
                                 "--reason", "hors zone", "--as", "alice@example.org"])
    assert result.exit_code == 0, result.output
    rejected = db.session.get(Submission, points[1])
    assert (rejected.status, rejected.review_reason) == ("rejected", "hors zone")


@pytest.mark.parametrize(("args", "message"), [
    (["approve", "--event", "party", "--all-pending", "--as", "nobody@example.org"], "not an organiser"),
    (["approve", "--event", "nowhere", "--all-pending", "--as", "alice@example.org"], "no event"),
    (["approve", "--event", "party", "--as", "alice@example.org"], "CLIENT_IDs or give --all-pending"),
    (["reject", "--event", "party", "--all-pending", "--as", "alice@example.org"], "--reason"),
    (["approve", "--event", "party", "not-a-uuid", "--as", "alice@example.org"], "not a UUID"),
    (["approve", "--event", "party", "0b1f3c1e-4a4f-4a53-9a8e-1d2b3c4d5e6f", "--as",
      "alice@example.org"], "no submission"),
])
def test_cli_review_refuses_bad_requests(runner, organiser, points, args, message):
    result = runner.invoke(cli, ["review", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 0


def test_walker_of_the_event_cannot_review(client, event, points):
    walker = join(client, "party", "Noor")
    response = client.post(f"/api/organise/party/submissions/{points[0]}/approve",
                           json={"version": 1}, headers=walker)
    assert response.status_code in (400, 401)
    assert db.session.get(Submission, points[0]).status == "pending"


def a_submission_client_id(submission_id):
    return str(db.session.get(Submission, submission_id).client_id)


def png():
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    out.seek(0)
    return out


def test_scripts_review_with_basic_auth_and_no_csrf_token(client, organiser, points):
    import base64
    credentials = base64.b64encode(b"alice@example.org:correct horse").decode()
    with client.session_transaction() as session:
        session.clear()
    response = client.post(f"/api/organise/party/submissions/{points[0]}/approve",
                           json={"version": 1}, headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 200
    assert response.json["status"] == "approved"


def test_walker_correction_makes_an_organisers_view_stale(client, organiser, walker, points):
    client_id = a_submission_client_id(points[0])
    changed = client.put(f"/api/events/party/submissions/{client_id}", headers=walker,
                         json={"preset": "tree", "lat": 45.565, "lon": 5.92,
                               "tags": {"species": "Tilia platyphyllos"}})
    assert changed.status_code == 200
    response = api(client, "post", f"/submissions/{points[0]}/approve", {"version": 1})
    assert response.status_code == 409
    assert db.session.get(Submission, points[0]).status == "pending"


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("post", "/submissions/{big}/approve", {"version": 1}, 404, "submission_id"),
    ("patch", "/submissions/{big}", {"version": 1, "note": "x"}, 404, "submission_id"),
    ("post", "/submissions/{id}/merge", {"version": 1, "duplicate": 2**70, "duplicate_version": 1},
     422, "duplicate"),
    ("post", "/submissions/{id}/merge", {"version": 1, "duplicate": 999999, "duplicate_version": 1},
     422, "duplicate"),
    ("post", "/submissions/{id}/approve", {"version": 2**40}, 422, "version"),
    ("post", "/review/bulk", {"action": "approve", "items": [{"id": 2**70, "version": 1}]}, 422, "items"),
    ("post", "/review/bulk", {"action": "reject", "items": [{"id": 1, "version": 1}], "reason": 5},
     422, "reason"),
    ("patch", "/submissions/{id}", {"version": 1, "lat": 48.85, "lon": 2.35}, 422, "lat"),
])
def test_out_of_range_and_outside_values_are_refused(client, organiser, points, method, path, body,
                                                     status, field):
    response = api(client, method, path.format(id=points[0], big=2**70), body)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)) == 0


def test_merge_reports_a_stale_duplicate_by_its_own_field(client, organiser, points):
    response = api(client, "post", f"/submissions/{points[0]}/merge",
                   {"version": 1, "duplicate": points[2], "duplicate_version": 7})
    assert response.status_code == 409
    assert response.json["error"]["field"] == "duplicate_version"


def test_bulk_decision_takes_its_documented_5000_items(client, organiser, points):
    items = [{"id": id_, "version": 1} for id_ in points]
    # The rest at the longest id and version: the largest body 5,000 items make.
    items += [{"id": 9_000_000_000_000_000_000 + n, "version": 2_000_000_000}
              for n in range(5000 - len(items))]
    response = api(client, "post", "/review/bulk", {"action": "approve", "items": items})
    assert response.status_code == 200, response.json
    assert response.json["done"] == sorted(points)
    assert len(response.json["not_changed"]) == 5000 - len(points)


def test_bulk_decision_body_is_still_limited(client, organiser, points):
    items = [{"id": points[0], "version": 1, "padding": "x" * 200} for _ in range(3000)]
    response = api(client, "post", "/review/bulk", {"action": "approve", "items": items})
    assert (response.status_code, response.json["error"]["code"]) == (413, "too_large")
