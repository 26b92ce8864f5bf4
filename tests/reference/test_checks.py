"""Walkers check a town's rows: the rows on their map with the tags their fields say, verdicts
stored once and refused when they name another event's row or the wrong preset, each row's
outcome from the approved verdicts or the organiser's settlement, and "missing" verdicts kept
out of the OSM check, the OSM changes, the open-data exports and other walkers' maps."""

import html
import uuid

import pytest
from conftest import TOWN_DAE, a_submission, a_verdict, join, load_reference, make_event, make_organiser

from cartoparty.errors import Invalid
from cartoparty.exports.common import approved_points
from cartoparty.extensions import db
from cartoparty.models import OsmChange, OsmElement, ReferenceRow, Status, Submission
from cartoparty.osm import changes, conflate
from cartoparty.reference import checks


def post(client, walker, body):
    return client.post("/api/events/party/submissions", json=body, headers=walker)


def approve(*client_ids):
    db.session.execute(db.update(Submission).where(Submission.client_id.in_(client_ids))
                       .values(status=Status.approved))
    db.session.commit()


@pytest.fixture
def rows(event):
    return load_reference(event)


def test_walkers_get_the_rows_with_the_tags_their_fields_say(client, walker, rows):
    answer = client.get("/api/events/party/reference.geojson", headers=walker)
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    assert (answer.json["preset"], answer.json["kind"]) == ("defibrillator", "dae")
    by_source = {f["properties"]["source_id"]: f for f in answer.json["features"]}
    mairie = by_source["D1"]
    assert mairie["geometry"]["coordinates"] == [5.92, 45.565]
    assert mairie["id"] == mairie["properties"]["id"] == rows["D1"].id
    assert mairie["properties"]["title"] == "Mairie"
    assert mairie["properties"]["tags"] == {
        "emergency": "defibrillator", "indoor": "yes", "access": "yes", "level": "0",
        "defibrillator:location": "Hall d'accueil", "opening_hours": "24/7"}
    # "non" says the public cannot walk up to it, not who can: the walker answers on the spot
    assert by_source["D2"]["properties"]["tags"] == {
        "emergency": "defibrillator", "indoor": "no", "defibrillator:location": "Sous le préau"}
    assert not any(f["properties"]["checked"] for f in answer.json["features"])


def test_strangers_cannot_read_the_rows_and_an_event_without_dataset_has_none(client, event, walker):
    assert client.get("/api/events/party/reference.geojson").status_code == 401
    other = make_event("other")
    assert client.get("/api/events/other/reference.geojson", headers=join(client, other.slug)).json == {
        "type": "FeatureCollection", "preset": None, "kind": None, "features": []}
    assert client.get("/api/events/party/reference.geojson", headers=walker).json["features"] == []


def test_a_verdict_is_stored_once_and_shown_back_to_its_walker(client, walker, rows):
    body = a_verdict(rows["D1"], "confirmed", tags={"indoor": "yes", "access": "yes"})
    first, again = post(client, walker, body), post(client, walker, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert (first.json["reference"], first.json["verdict"]) == (rows["D1"].id, "confirmed")
    assert again.json == first.json
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == 1
    mine = client.get("/api/events/party/submissions.geojson", headers=walker).json["features"]
    assert [(f["properties"]["reference"], f["properties"]["verdict"]) for f in mine] == [
        (rows["D1"].id, "confirmed")]


def test_a_batch_checks_every_reference_in_one_go(client, walker, rows):
    other = load_reference(make_event("other"), TOWN_DAE.replace("D1,", "X1,"))
    bodies = [a_verdict(rows["D1"], "moved", lat=45.5655, lon=5.9205),
              a_verdict(other["X1"], "confirmed"),
              a_verdict(rows["D2"], "different", preset="tree", tags={"genus": "Tilia"}),
              a_verdict(rows["D3"], "missing"),
              a_submission()]
    results = client.post("/api/events/party/submissions/batch", json={"submissions": bodies},
                          headers=walker).json["results"]
    assert [r["status"] for r in results] == [201, 404, 422, 201, 201]
    assert results[1]["error"]["code"] == "no_such_reference_row"
    assert (results[2]["error"]["code"], results[2]["error"]["params"]) == (
        "verdict_preset", {"preset": "defibrillator"})
    assert results[3]["submission"]["tags"] == {"emergency": "defibrillator"}
    assert results[4]["submission"]["verdict"] is None


@pytest.mark.parametrize(("change", "code"), [
    ({"verdict": None}, "verdict_unknown"),
    ({"reference": None}, "verdict_reference"),
    ({"verdict": "gone"}, "verdict_unknown"),
    ({"reference": "1"}, "verdict_reference"),
    ({"reference": True}, "verdict_reference"),
    ({"reference": 2**63}, "verdict_reference"),
    ({"tags": {"indoor": "yes"}}, "verdict_missing_tags"),
])
def test_a_wrong_verdict_is_refused_naming_what_is_wrong(client, walker, rows, change, code):
    body = {**a_verdict(rows["D3"], "missing"), **change}
    answer = post(client, walker, body)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == code
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == 0


def test_a_pending_verdict_can_be_corrected_by_its_walker(client, walker, rows):
    body = a_verdict(rows["D2"], "confirmed")
    post(client, walker, body)
    changed = {**body, "verdict": "different", "tags": {"access": "customers"}}
    del changed["client_id"]
    answer = client.put(f"/api/events/party/submissions/{body['client_id']}", json=changed, headers=walker)
    assert answer.status_code == 200, answer.json
    assert (answer.json["verdict"], answer.json["tags"]["access"]) == ("different", "customers")
    changed["reference"] = load_reference(make_event("other"))["D2"].id
    answer = client.put(f"/api/events/party/submissions/{body['client_id']}", json=changed, headers=walker)
    assert answer.json["error"]["code"] == "no_such_reference_row"


def test_other_walkers_see_approved_verdicts_but_never_a_missing_one(client, event, walker, rows):
    found, missing = a_verdict(rows["D1"], "confirmed"), a_verdict(rows["D3"], "missing")
    post(client, walker, found)
    post(client, walker, missing)
    approve(found["client_id"], missing["client_id"])
    seen = client.get("/api/events/party/submissions.geojson", headers=join(client, event.slug, "Bob"))
    assert [f["id"] for f in seen.json["features"]] == [found["client_id"]]
    reference = client.get("/api/events/party/reference.geojson", headers=walker).json["features"]
    assert {f["properties"]["source_id"] for f in reference if f["properties"]["checked"]} == {"D1", "D3"}


def test_each_rows_outcome_comes_from_its_approved_verdicts(client, event, walker, rows):
    bob = join(client, event.slug, "Bob")
    carol = join(client, event.slug, "Carol")
    verdicts = [(walker, a_verdict(rows["D1"], "moved", lat=45.5651, lon=5.9201)),
                (bob, a_verdict(rows["D1"], "confirmed")),
                (carol, a_verdict(rows["D1"], "moved", lat=45.5652, lon=5.9202)),
                (walker, a_verdict(rows["D2"], "different", tags={"access": "customers"})),
                (bob, a_verdict(rows["D3"], "missing"))]
    for who, body in verdicts:
        post(client, who, body)
    approve(*[body["client_id"] for _, body in verdicts[:4]])  # the "missing" one waits
    outcome = {row["source_id"]: row for row in checks.outcomes(event)}
    # two approved "moved" against one "confirmed": moved, where the latest of them put it
    assert (outcome["D1"]["outcome"], outcome["D1"]["verdict_lat"]) == ("moved", 45.5652)
    assert (outcome["D2"]["outcome"], outcome["D2"]["verdict_tags"]["access"]) == ("corrected", "customers")
    assert (outcome["D3"]["outcome"], outcome["D3"]["verdict_id"], outcome["D3"]["verdicts"]) == (
        "not_checked", None, 1)
    assert checks.summary(event) == {"rows": 3, "checked": 2, "confirmed": 0, "corrected": 1,
                                     "moved": 1, "missing": 0, "not_checked": 1}
    assert checks.summary(make_event("other")) is None


def test_a_missing_verdict_goes_to_no_osm_check_change_or_export(client, event, walker, rows):
    found, missing = a_verdict(rows["D1"], "confirmed"), a_verdict(rows["D3"], "missing")
    post(client, walker, found)
    post(client, walker, missing)
    approve(found["client_id"], missing["client_id"])
    db.session.add(OsmElement(event_id=event.id, osm_type="node", osm_id=7, version=1,
                              tags={"emergency": "defibrillator"},
                              geom="SRID=4326;POINT(5.919 45.564)"))  # where D3 was said to be
    db.session.commit()
    assert conflate.match(event)["new"] == 1
    changes.build(event, "alice@example.org", fetch=False)
    db.session.commit()
    planned = db.session.scalars(db.select(OsmChange).filter_by(event_id=event.id)).all()
    by_submission = {s for change in planned for s in change.submission_ids}
    ids = dict(db.session.execute(db.select(Submission.client_id, Submission.id)).all())
    assert ids[uuid.UUID(missing["client_id"])] not in by_submission
    assert ids[uuid.UUID(found["client_id"])] in by_submission
    assert [point["client_id"] for point in approved_points(event)] == [found["client_id"]]


def settle(client, **form):
    page = client.get("/organise/party/reference")
    return client.post("/organise/party/reference/settle?lang=en",
                       data={"csrf_token": csrf_of(page), **form})


def csrf_of(page):
    text = page.get_data(as_text=True)
    return text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_the_organiser_reviews_each_rows_verdicts_and_settles_it(client, event, organiser, walker, rows):
    moved = a_verdict(rows["D1"], "moved", lat=45.5652, lon=5.9203, note="<b>derrière</b> la porte")
    different = a_verdict(rows["D2"], "different", tags={"indoor": "no", "access": "customers"})
    for body in (moved, different):
        post(client, walker, body)
    approve(moved["client_id"])
    page = client.get("/organise/party/reference?lang=en").get_data(as_text=True)
    assert "&lt;b&gt;derrière&lt;/b&gt; la porte" in page and "<b>derrière" not in page
    assert "<code>access</code> : ∅ → customers" in page
    page = html.unescape(page)
    assert "Of the town's 3 rows, 1 checked: 0 as described, 1 moved, 0 different, 0 missing." in page
    assert "OpenStreetMap's import guidelines" in page
    ids = dict(db.session.execute(db.select(Submission.client_id, Submission.id)).all())
    # the pending "different" verdict may ground a correction, a "moved" one cannot ground "missing"
    answer = settle(client, row=rows["D2"].id, settled="corrected",
                    verdict=ids[uuid.UUID(different["client_id"])])
    assert answer.status_code == 303
    refused = settle(client, row=rows["D1"].id, settled="missing",
                     verdict=ids[uuid.UUID(moved["client_id"])])
    assert refused.status_code == 422
    assert "This verdict cannot ground this outcome" in refused.get_data(as_text=True)
    assert settle(client, row=rows["D1"].id, settled="corrected").status_code == 422
    other = load_reference(make_event("other"))["D1"]
    assert settle(client, row=other.id, settled="confirmed").status_code == 404
    assert settle(client, row=rows["D1"].id, settled="burnt").status_code == 422
    outcome = {row["source_id"]: row for row in checks.outcomes(event)}
    assert (outcome["D1"]["outcome"], outcome["D1"]["settled"]) == ("moved", None)
    assert (outcome["D2"]["outcome"], outcome["D2"]["settled_by"]) == ("corrected", "alice@example.org")
    # "settle as proposed" takes the approved verdicts' word for every row not settled yet
    page = client.get("/organise/party/reference")
    answer = client.post("/organise/party/reference/settle-proposed", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    db.session.expire_all()
    assert (rows["D1"].settled, rows["D3"].settled) == ("moved", None)
    assert settle(client, row=rows["D1"].id, settled="proposed").status_code == 303
    db.session.expire_all()
    assert rows["D1"].settled is None


def test_the_settle_routes_are_for_the_events_organisers_only(client, event, rows):
    bob = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = bob.id
    page = client.get("/organise/other/reference")
    answer = client.post("/organise/party/reference/settle",
                         data={"csrf_token": csrf_of(page), "row": rows["D1"].id, "settled": "missing"})
    assert answer.status_code == 403
    db.session.expire_all()
    assert rows["D1"].settled is None


def test_the_dashboard_and_the_restitution_say_how_much_of_the_dataset_was_checked(
        client, event, organiser, walker, rows):
    bodies = [a_verdict(rows["D1"], "confirmed"), a_verdict(rows["D3"], "missing")]
    for body in bodies:
        post(client, walker, body)
    approve(*[body["client_id"] for body in bodies])
    dashboard = client.get("/api/organise/party/dashboard").json
    assert dashboard["reference"] == {"rows": 3, "checked": 2, "confirmed": 1, "corrected": 0,
                                      "moved": 0, "missing": 1, "not_checked": 1}
    page = html.unescape(client.get("/r/party?lang=fr").get_data(as_text=True))
    assert ("Sur les 3 lignes du jeu de données de la ville, 2 vérifiées : 1 comme décrites, "
            "0 déplacées, 0 différentes, 1 introuvables.") in page
    assert client.get("/api/organise/other/dashboard").status_code == 404
    make_event("plain")
    assert "reference-checks" not in client.get("/r/plain").get_data(as_text=True)


def test_a_dataset_walkers_checked_is_not_replaced(client, event, walker, rows):
    post(client, walker, a_verdict(rows["D1"], "confirmed"))
    with pytest.raises(Invalid) as refused:
        load_reference(event, TOWN_DAE.replace("Mairie", "Hôtel de ville"))
    assert (refused.value.code, refused.value.params) == ("reference_checked", {"checks": 1})
    db.session.rollback()
    assert {source: row.fields["nom"] for source, row in load_rows(event).items()} == {
        "D1": "Mairie", "D2": "Ecole", "D3": "Gymnase"}


def load_rows(event):
    return {row.source_id: row for row in db.session.scalars(
        db.select(ReferenceRow).filter_by(event_id=event.id))}


def test_the_reference_page_offers_the_downloads_and_the_restitution_lists_the_changes(
        client, event, organiser, walker, rows):
    body = a_verdict(rows["D2"], "different", tags={"indoor": "no", "access": "yes",
                                                    "defibrillator:location": "<i>Sous</i> le préau"})
    post(client, walker, body)
    approve(body["client_id"])
    page = client.get("/organise/party/reference").get_data(as_text=True)
    assert 'href="/organise/party/reference/export"' in page
    assert 'href="/organise/party/reference/changes.csv"' in page
    restitution = client.get("/r/party?lang=en").get_data(as_text=True)
    assert "<td>D2</td><td>corrigé</td><td>acc_lib</td><td>non</td><td>oui</td>" in restitution
    assert "&lt;i&gt;Sous&lt;/i&gt; le préau" in restitution and "<i>Sous" not in restitution
