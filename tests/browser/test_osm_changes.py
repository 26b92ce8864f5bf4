"""The OSM changes page in Chromium, as a new OSM contributor would use it after a party: prepare
the changes, read the diffs, settle a conflict, set the changeset comment, download the
osmChange and the JOSM file; then check with osmium that applying the osmChange to the extract
gives exactly what was reviewed. Also: hostile tag values shown as text, and the OSM API down.

The OSM API is the local stand-in of tests/osm/osm_api.py (the `osm_api` fixture points the
app's OSM_API_URL at it; the live server serves that same session-wide `app`). The OSM data is
../shared/data/osm_api/map_chambery.osm, a real download of Faubourg Montmélian, when it is
there, else a small extract of the same kinds of things written by the test: the same test
body runs on either.
"""

import math
import subprocess
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import osmium
import pytest
from conftest import SHARED_DATA, make_event
from defusedxml import ElementTree
from playwright.sync_api import expect

from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Event, Organiser, Participant, Submission
from cartoparty.osm.conflate import match
from cartoparty.osm.store import import_extract

from .conftest import db_rows, sign_in

OSMIUM = Path("/usr/bin/osmium")
SHARED_EXTRACT = SHARED_DATA / "osm_api" / "map_chambery.osm"
EMAIL, PASSWORD = "osm-changes@example.org", "correct horse"
SLUG = "faubourg"
# Faubourg Montmélian, Chambéry: the extract's features and the walkers' points (lon, lat).
ZONE = {"type": "Polygon", "coordinates": [[
    [5.924, 45.563], [5.937, 45.563], [5.937, 45.568], [5.924, 45.568], [5.924, 45.563]]]}
CENTRE = (45.5655, 5.9305)
SURVEYED_AT = datetime(2026, 6, 13, 9, 30, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"

# What the walkers saw. The bench and the bakery are in OSM; defibrillators and post boxes are not.
BENCH_SURVEY = {"backrest": "yes", "material": "wood"}
HOURS_SURVEYED = "Mo-Sa 07:00-19:30"
HOURS_IN_OSM_NOW = "Tu-Su 06:30-13:00"   # another mapper's, after the match
DEFIBRILLATOR = {"emergency": "defibrillator", "indoor": "yes", "access": "customers"}
POST_BOX = {"amenity": "post_box", "operator": "La Poste", "collection_times": "Mo-Fr 16:00; Sa 12:00"}

# Used when ../shared/data is absent: an API download in miniature, sorted as osmium
# apply-changes wants (no changeset, user or timestamp: nothing here reads them). It has what the
# walk-through needs (a bench at version 1, two bakeries 20 m apart, the first named and without
# opening hours, a few trees) and what must stay as it is (untagged nodes, a street, a bus route).
OWN_EXTRACT = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="CGImap 0.8.3" copyright="OpenStreetMap and contributors">
 <bounds minlat="45.5640000" minlon="5.9280000" maxlat="45.5670000" maxlon="5.9340000"/>
 <node id="101" version="2" lat="45.5650000" lon="5.9300000"/>
 <node id="102" version="1" lat="45.5652000" lon="5.9310000"/>
 <node id="103" version="3" lat="45.5654000" lon="5.9320000"/>
 <node id="201" version="3" lat="45.5660000" lon="5.9290000">
  <tag k="leaf_type" v="broadleaved"/>
  <tag k="natural" v="tree"/>
 </node>
 <node id="202" version="1" lat="45.5661000" lon="5.9292000">
  <tag k="natural" v="tree"/>
 </node>
 <node id="301" version="4" lat="45.5662000" lon="5.9330000">
  <tag k="name" v="La Fournée"/>
  <tag k="shop" v="bakery"/>
 </node>
 <node id="302" version="2" lat="45.5661000" lon="5.9328000">
  <tag k="name" v="Au Pain d'Antan &amp; Cie"/>
  <tag k="opening_hours" v="Mo-Sa 06:30-19:00"/>
  <tag k="shop" v="bakery"/>
 </node>
 <node id="401" version="1" lat="45.5665000" lon="5.9325000">
  <tag k="amenity" v="bench"/>
 </node>
 <node id="501" version="5" lat="45.5655000" lon="5.9315000">
  <tag k="highway" v="bus_stop"/>
  <tag k="name" v="Faubourg"/>
 </node>
 <way id="601" version="7">
  <nd ref="101"/>
  <nd ref="102"/>
  <nd ref="103"/>
  <tag k="highway" v="pedestrian"/>
  <tag k="name" v="Rue du Faubourg Montmélian"/>
 </way>
 <relation id="701" version="2">
  <member type="way" ref="601" role=""/>
  <member type="node" ref="501" role="platform"/>
  <tag k="route" v="bus"/>
  <tag k="type" v="route"/>
 </relation>
</osm>
"""


@dataclass(frozen=True)
class Element:
    """An OSM element as a file holds it: version, shape (a node's lat, lon as 7-decimal
    strings, a way's node ids, a relation's (type, ref, role) members) and tags."""

    version: int
    shape: tuple
    tags: dict


def osm_contents(path):
    """{(type, id): Element} of every node, way and relation of an OSM file ("n", "w", "r")."""
    contents = {}
    for obj in osmium.FileProcessor(str(path)):
        if obj.is_node():
            shape = (f"{obj.location.lat:.7f}", f"{obj.location.lon:.7f}")
        elif obj.is_way():
            shape = tuple(node.ref for node in obj.nodes)
        else:
            shape = tuple((member.type, member.ref, member.role) for member in obj.members)
        contents[obj.type_str(), obj.id] = Element(obj.version, shape, dict(obj.tags))
    return contents


@dataclass(frozen=True)
class Node:
    osm_id: int
    lat: float
    lon: float
    tags: dict


def first_node(path, **tags):
    """The first node of an OSM file carrying all these tags."""
    for obj in osmium.FileProcessor(str(path), osmium.osm.NODE):
        found = dict(obj.tags)
        if tags.items() <= found.items():
            return Node(obj.id, obj.location.lat, obj.location.lon, found)
    raise LookupError(f"no node with {tags} in {path.name}")


def moved(lat, lon, east_m=0.0, north_m=0.0):
    """(lat, lon) some metres east and north of lat, lon (WGS84 degrees), to OSM's 7 decimals."""
    return (round(lat + north_m / 111_320, 7),
            round(lon + east_m / (111_320 * math.cos(math.radians(lat))), 7))


def position(lat, lon):
    """A node's shape in an Element."""
    return (f"{lat:.7f}", f"{lon:.7f}")


@pytest.fixture
def extract(tmp_path):
    """The OSM extract of the party's neighbourhood: the shared real one, else OWN_EXTRACT."""
    if SHARED_EXTRACT.is_file():
        return SHARED_EXTRACT
    path = tmp_path / "faubourg.osm"
    path.write_text(OWN_EXTRACT, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Party:
    """What the tests need of the committed event (an ORM object would outlive its session)."""

    id: int
    slug: str
    walker_id: int

    @property
    def page(self):
        return f"/organise/{self.slug}/osm-changes"

    def survey(self, app, preset, lat, lon, tags):
        """An approved point of the walker at lat, lon; its id."""
        with app.app_context():
            submission = Submission(
                event_id=self.id, participant_id=self.walker_id, client_id=uuid.uuid4(),
                preset=preset, geom=f"SRID=4326;POINT({lon} {lat})", accuracy=4, tags=tags,
                note="", observed_at=SURVEYED_AT, body_sha256="0" * 64, status="approved")
            db.session.add(submission)
            db.session.commit()
            return submission.id


@pytest.fixture
def party(app):
    """The event "faubourg" in Faubourg Montmélian, committed, with a walker and an organiser
    (EMAIL, PASSWORD); deleted after the test with all that hangs from it."""
    with app.app_context():
        event = make_event(SLUG, name="Cartopartie du Faubourg", zone=ZONE,
                           presets=("bench", "bakery", "defibrillator", "post_box", "tree"))
        walker = Participant(event_id=event.id, pseudonym="Camille", token_hash=uuid.uuid4().hex * 2,
                             consented_at=datetime.now(UTC))
        organiser = Organiser(email=EMAIL, password_hash=hash_password(PASSWORD), events=[event])
        db.session.add_all([organiser, walker])
        db.session.commit()
        party = Party(id=event.id, slug=event.slug, walker_id=walker.id)
    yield party
    with app.app_context():
        # The points first, while their event exists: deleting them bumps its revision counter,
        # which must not happen in the cascade of the event's own deletion.
        db.session.execute(db.delete(Submission).where(Submission.event_id == party.id))
        db.session.execute(db.delete(Event).where(Event.id == party.id))
        db.session.execute(db.delete(Organiser).where(Organiser.email == EMAIL))
        db.session.commit()


@dataclass(frozen=True)
class Walked:
    """The party after its walk: the extract, its bench and bakery, and the two new points."""

    extract: Path
    bench: Node
    bakery: Node
    new_points: list  # (lat, lon, tags)


@pytest.fixture
def walked(app, party, extract, osm_api):
    """The party as its organiser finds it after the walk: the OSM data imported from the
    extract (which the OSM API holds too); four approved, matched points: a defibrillator and a
    post box (new: the extract has none), the bench with a backrest (an update) and the
    bakery's opening hours (an update); then, after the match, another mapper set other opening
    hours and a phone number on the bakery in OSM."""
    bench, bakery = first_node(extract, amenity="bench"), first_node(extract, shop="bakery")
    new_points = [(*moved(bench.lat, bench.lon, north_m=-40), DEFIBRILLATOR),
                  (*moved(bench.lat, bench.lon, east_m=-40), POST_BOX)]
    with app.app_context():
        import_extract(db.session.get(Event, party.id), extract)
    osm_api.load_osm_xml(extract)
    ids = [party.survey(app, preset, lat, lon, tags)
           for preset, (lat, lon, tags) in zip(("defibrillator", "post_box"), new_points, strict=True)]
    ids.append(party.survey(app, "bench", *moved(bench.lat, bench.lon, east_m=2),
                            {"amenity": "bench", **BENCH_SURVEY}))
    ids.append(party.survey(app, "bakery", *moved(bakery.lat, bakery.lon, north_m=3),
                            {"shop": "bakery", "name": bakery.tags["name"],
                             "opening_hours": HOURS_SURVEYED}))
    with app.app_context():
        match(db.session.get(Event, party.id))
        db.session.commit()
    outcomes = db_rows(app, "SELECT submission_id, outcome, osm_id FROM match "
                            "WHERE submission_id = ANY(:ids)", ids=ids)
    assert sorted(tuple(row) for row in outcomes) == [
        (ids[0], "new", None), (ids[1], "new", None),
        (ids[2], "update", bench.osm_id), (ids[3], "update", bakery.osm_id)], "unexpected matches"
    osm_api.edit("node", bakery.osm_id, tags={
        **bakery.tags, "opening_hours": HOURS_IN_OSM_NOW, "phone": "+33 4 79 00 00 00"})
    return Walked(extract=extract, bench=bench, bakery=bakery, new_points=new_points)


def download(page, link_name, folder):
    """Click the page's link named link_name; the path of the file it downloads, in folder."""
    with page.expect_download() as started:
        page.get_by_role("link", name=link_name).click()
    path = folder / started.value.suggested_filename
    started.value.save_as(path)
    return path


def change_of(page, node):
    """The page's article about the modify of this node."""
    link = page.get_by_role("link", name=f"node/{node.osm_id}", exact=True)
    return page.locator("#modifies article").filter(has=link)


def apply_changes(extract, osc, folder):
    """What osmium makes of the extract with the osmChange applied: its osm_contents."""
    if not OSMIUM.exists():
        pytest.fail(f"{OSMIUM} is missing: apt-get install osmium-tool", pytrace=False)
    result = folder / "result.osm"
    subprocess.run([str(OSMIUM), "apply-changes", str(extract), str(osc), "-o", str(result)],
                   check=True, capture_output=True)
    return osm_contents(result)


def test_an_organiser_prepares_reviews_and_downloads_the_changes(desk, party, walked, osm_api, tmp_path):
    bench, bakery = walked.bench, walked.bakery
    sign_in(desk, party.page, EMAIL, PASSWORD)
    expect(desk.locator("#plan")).to_contain_text("Les changements n'ont pas encore été préparés.")
    desk.get_by_role("button", name="Préparer les changements").click()

    counts = desk.locator("#counts")
    expect(counts).to_contain_text("2 objets à créer")
    expect(counts).to_contain_text("1 objet à modifier")
    expect(counts).to_contain_text("1 conflit à trancher")
    expect(desk.locator("#built")).to_contain_text("relus dans OSM juste avant")
    # The live server read the elements to modify again, from the stand-in.
    assert any(path.startswith("/api/0.6/nodes?nodes=") for path in osm_api.requests)

    bench_item = change_of(desk, bench)
    backrest = bench_item.locator("table.diff tr", has_text="backrest")
    expect(backrest).to_have_class("added")
    expect(backrest.locator("td")).to_have_text(["(absente)", "yes"])
    # Until it is settled, the conflicted modify stays out of the files and off the map.
    expect(desk.locator("#osm-changes")).to_have_attribute("data-map-ready", "3")

    conflict = change_of(desk, bakery).locator(".conflict-row", has_text="opening_hours")
    expect(conflict.locator("table.three-way td")).to_have_text(
        ["(absente)", HOURS_IN_OSM_NOW, HOURS_SURVEYED])
    conflict.get_by_role("button", name="Prendre la valeur relevée").click()
    expect(counts).to_contain_text("2 objets à modifier")
    expect(counts).to_contain_text("0 conflit à trancher")
    expect(conflict).to_contain_text(f"Tranché ({EMAIL}) : on prend la valeur relevée.")
    expect(desk.locator("#osm-changes")).to_have_attribute("data-map-ready", "4")

    settings = desk.locator("#changeset-settings")
    settings.get_by_label("Commentaire").fill("Relevé du Faubourg Montmélian")
    settings.get_by_role("button", name="Enregistrer").click()
    expect(desk.locator("#changeset-1")).to_contain_text(
        "Relevé du Faubourg Montmélian #cartoparty #faubourg")

    osc = download(desk, "Télécharger l'osmChange (.osc)", tmp_path)
    assert osc.name == "faubourg-1.osc"
    # Each modify at the version OSM has now: the bakery's is the other mapper's; the bench,
    # at version 1, is a modify all the same.
    uploaded = ElementTree.parse(osc).getroot()
    assert {node.get("id"): node.get("version") for node in uploaded.find("modify")} == {
        str(bench.osm_id): str(osm_api.elements["node", bench.osm_id].version),
        str(bakery.osm_id): str(osm_api.elements["node", bakery.osm_id].version)}

    before, after = osm_contents(walked.extract), apply_changes(walked.extract, osc, tmp_path)
    created = {key: element for key, element in after.items() if key[1] < 0}
    assert {(kind, element.shape, tuple(sorted(element.tags.items())))
            for (kind, _), element in created.items()} == {
        ("n", position(lat, lon), tuple(sorted(tags.items()))) for lat, lon, tags in walked.new_points}
    bakery_now = osm_api.elements["node", bakery.osm_id]
    expected = before | {
        ("n", bench.osm_id): replace(before["n", bench.osm_id],
                                     tags=bench.tags | BENCH_SURVEY),
        ("n", bakery.osm_id): Element(bakery_now.version, position(bakery.lat, bakery.lon),
                                      bakery_now.tags | {"opening_hours": HOURS_SURVEYED})}
    assert {key: element for key, element in after.items() if key[1] > 0} == expected
    assert len(after) == len(before) + 2
    assert expected["n", bakery.osm_id].tags["phone"] == "+33 4 79 00 00 00"  # theirs, kept

    changeset = ElementTree.parse(download(desk, "Télécharger pour JOSM (.osm)", tmp_path)).find(
        "changeset")
    assert "id" not in changeset.attrib  # a changeset to open: JOSM pre-fills its upload dialog
    tags = {tag.get("k"): tag.get("v") for tag in changeset.iter("tag")}
    assert tags["comment"] == "Relevé du Faubourg Montmélian #cartoparty #faubourg"
    assert tags["created_by"].startswith("cartoparty ")
    assert tags["source"] == "survey"
    assert tags["hashtags"] == "#cartoparty;#faubourg"


def test_a_walkers_hostile_value_is_shown_as_text(desk, party, osm_api, app):
    dialogs = []
    desk.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    party.survey(app, "defibrillator", *CENTRE, {"emergency": "defibrillator", "name": HOSTILE})
    with app.app_context():
        match(db.session.get(Event, party.id))
        db.session.commit()
    sign_in(desk, party.page, EMAIL, PASSWORD)
    desk.get_by_role("button", name="Préparer les changements").click()

    creates = desk.locator("#creates")
    expect(creates.locator("table.diff tr", has_text="name").locator("td").last).to_have_text(HOSTILE)
    expect(creates.locator("img")).to_have_count(0)
    expect(desk.locator("#osm-changes")).to_have_attribute("data-map-ready", "1")
    desk.locator("#changes-map path.leaflet-interactive").hover()
    tooltip = desk.locator(".leaflet-tooltip")
    expect(tooltip).to_contain_text(f"name={HOSTILE}")
    expect(tooltip.locator("img")).to_have_count(0)
    assert dialogs == []


def test_with_the_osm_api_down_the_plan_rests_on_the_stored_data(desk, party, walked, osm_api):
    osm_api.down()
    sign_in(desk, party.page, EMAIL, PASSWORD)
    desk.get_by_role("button", name="Préparer les changements").click()

    expect(desk.locator("#built")).to_contain_text(
        "L'API d'OSM était injoignable : les changements reposent sur les données OSM enregistrées")
    expect(desk.locator("#plan").get_by_role("status")).to_contain_text(
        "L'API d'OpenStreetMap ne répond pas")
    # The stored data cannot know of the other mapper's edit: no conflict to see, JOSM will.
    counts = desk.locator("#counts")
    expect(counts).to_contain_text("2 objets à créer")
    expect(counts).to_contain_text("2 objets à modifier")
    expect(counts).to_contain_text("0 conflit à trancher")
    changeset = desk.locator("#changeset-1")
    expect(changeset.get_by_role("link", name="Télécharger pour JOSM (.osm)")).to_have_count(1)
    expect(changeset.get_by_role("link", name="Télécharger l'osmChange (.osc)")).to_have_count(0)

    refused = desk.request.get(f"{party.page}/1.osc")
    assert refused.status == 409
    assert "L'osmChange demande les objets relus dans OSM" in unescape(refused.text())
    josm = desk.request.get(f"{party.page}/1.osm")
    assert josm.ok
    versions = {node.get("id"): node.get("version")
                for node in ElementTree.fromstring(josm.body()).iter("node") if node.get("version")}
    # At the stored versions: the bakery's is older than OSM's, which JOSM will find on upload.
    stored = osm_contents(walked.extract)
    assert versions == {str(node.osm_id): str(stored["n", node.osm_id].version)
                        for node in (walked.bench, walked.bakery)}
    assert stored["n", walked.bakery.osm_id].version < osm_api.elements["node", walked.bakery.osm_id].version
