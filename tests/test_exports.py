"""Exports of approved points, each read back with a real reader: json, csv, pyogrio,
frictionless (against the official schema-dae when ../shared/data is there), zipfile."""

import csv
import hashlib
import io
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import frictionless
import numpy as np
import pyogrio
import pyogrio.raw
import pytest
from conftest import SHARED_DATA, join, make_event, make_organiser
from PIL import Image

from cartoparty import exports, schemadae
from cartoparty.cli import cli
from cartoparty.exports import common
from cartoparty.extensions import db
from cartoparty.models import Participant, Photo, Status, Submission, hash_token

DAE_SCHEMA = SHARED_DATA / "fr_opendata" / "schemas" / "schema-dae" / "schema-dae_latest_1.0.7.schema.json"
HOSTILE_NAME = "<script>alert('dae')</script> Mairie & « Hôtel »"
OBSERVED = datetime(2026, 6, 13, 8, 15, tzinfo=UTC)

# schema-dae 1.0.7's rules for every column the survey fills, written out here so that the test
# runs without the shared folder.
DAE_PHONE = r"^(\+33|\+590|\+594|\+262|\+596|\+269|\+687|\+689|\+590|\+508|\+681)(\d){6,9}$"
DAE_DAYS = (r"^(7j/7|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|jours fériés|événements)"
            r"(\|(7j/7|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|jours fériés|événements))*$"
            r"|^(non renseigné)$")
DAE_HOURS = (r"^(heures ouvrables|heures de nuit|24h/24)(\|(heures ouvrables|heures de nuit|24h/24))*$"
             r"|^(non renseigné)$")
DAE_RULES = {
    "nom": {"required": True},
    "lat_coor1": {"required": True, "number": (-90, 90)},
    "long_coor1": {"required": True, "number": (-180, 180)},
    "com_cp": {"pattern": r"^\d{5}$"},
    "com_insee": {"pattern": r"^\d[AB\d]\d{3}$"},
    "acc": {"required": True, "enum": ["Intérieur", "Extérieur"]},
    "acc_lib": {"required": True, "enum": ["oui", "non"]},
    "disp_j": {"required": True, "pattern": DAE_DAYS},
    "disp_h": {"required": True, "pattern": DAE_HOURS},
    "tel1": {"required": True, "pattern": DAE_PHONE},
    "tel2": {"pattern": DAE_PHONE},
    "expt_rais": {"required": True},
}
DAE_HEADER = (
    "nom,lat_coor1,long_coor1,adr_num,adr_voie,com_cp,com_insee,com_nom,acc,acc_lib,acc_pcsec,"
    "acc_acc,dae_mobile,acc_etg,acc_complt,photo1,photo2,disp_j,disp_h,disp_complt,tel1,tel2,"
    "site_email,date_instal,etat,etat_fonct,fab_siren,fab_rais,mnt_siren,mnt_rais,modele,num_serie,"
    "id_euro,lc_ped,dtpr_lcped,dtpr_lcad,dtpr_bat,freq_mnt,dispsurv,dermnt,expt_siren,expt_siret,"
    "expt_rais,expt_tel1,expt_tel2,expt_email")
OPERATOR_ONLY = {"etat_fonct", "fab_rais", "modele", "num_serie", "dermnt", "expt_siren", "expt_tel1",
                 "expt_email"}


def _walker(event):
    walker = Participant(event_id=event.id, pseudonym=f"w{uuid.uuid4().hex[:8]}",
                         token_hash=hash_token(uuid.uuid4().hex), consented_at=OBSERVED)
    db.session.add(walker)
    db.session.flush()
    return walker


def add_point(event, preset, tags, status=Status.approved, lat=45.565, lon=5.92, note=""):
    """A submission stored as it is (no checks: hostile values reach the exports)."""
    submission = Submission(
        event_id=event.id, participant_id=_walker(event).id, client_id=uuid.uuid4(), preset=preset,
        geom=f"SRID=4326;POINT({lon} {lat})", accuracy=4.5, tags=tags, note=note,
        observed_at=OBSERVED, status=status, body_sha256="0" * 64)
    db.session.add(submission)
    db.session.flush()
    return submission


def add_photo(app, submission, colour):
    """A real JPEG file in PHOTO_DIR and its row."""
    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, format="JPEG")
    data = out.getvalue()
    photo = Photo(submission_id=submission.id, sha256=hashlib.sha256(data).hexdigest(),
                  media_type="image/jpeg", size=len(data), width=8, height=6)
    path = Path(app.config["PHOTO_DIR"]) / photo.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    db.session.add(photo)
    db.session.flush()
    return photo, data


@pytest.fixture
def points(app, event):
    """Approved points of three presets with hostile and unicode values, plus a pending and a
    rejected one that no export may show."""
    event.licence = "etalab-2.0"
    made = {
        "tree": add_point(event, "tree", {"natural": "tree", "species": "Érable « champêtre » 🌳",
                                          "height": "12.5", "leaf_type": "broadleaved"},
                          lat=45.5651, lon=5.9201, note="=1+1"),
        "hostile": add_point(event, "tree", {
            "natural": "tree", "species": "@SUM(A1)", "genus": "-2+3",
            "denotation": "+cmd|' /C calc'!A0", "fixme": "=HYPERLINK(\"http://x\")"},
            lat=45.5652, lon=5.9202, note="\tTabbed"),
        "bench": add_point(event, "bench", {"amenity": "bench", "backrest": "yes",
                                            "material": "  =2*3"}, lat=45.5653, lon=5.9203),
        "dae": add_point(event, "defibrillator", {
            "emergency": "defibrillator", "name": HOSTILE_NAME, "indoor": "yes", "access": "yes",
            "level": "-1", "defibrillator:location": "Dans le hall, à gauche de l'accueil",
            "opening_hours": "Mo-Fr 08:00-18:00; PH off", "phone": "04 79 12 34 56",
            "operator": "Ville de Chambéry", "addr:housenumber": "1",
            "addr:street": "Place de l'Hôtel de Ville",
            "addr:postcode": "73000", "addr:city": "Chambéry"}, lat=45.5654, lon=5.9204),
        "bare_dae": add_point(event, "defibrillator", {"emergency": "defibrillator", "indoor": "no",
                                                        "access": "private"}, lat=45.5655, lon=5.9205),
        "pending": add_point(event, "tree", {"natural": "tree", "species": "Pending"},
                             status=Status.pending, lat=45.5661, lon=5.9211),
        "rejected": add_point(event, "defibrillator", {"emergency": "defibrillator", "name": "Rejected"},
                              status=Status.rejected, lat=45.5662, lon=5.9212),
    }
    db.session.commit()
    return made


def export(event, fmt, tmp_path, name=None):
    path = tmp_path / (name or f"export-{fmt}")
    count = exports.write(event, fmt, path)
    return path, count


# GeoJSON


def test_geojson_is_rfc7946_with_only_approved_points_and_its_licence(event, points, tmp_path):
    path, count = export(event, "geojson", tmp_path)
    collection = json.loads(path.read_text(encoding="utf-8"))
    assert count == 5
    assert collection["type"] == "FeatureCollection"
    assert "crs" not in collection
    assert collection["licence"] == "ODbL-1.0"
    assert collection["licence_url"].startswith("https://opendatacommons.org/licenses/odbl")
    assert "Cartopartie du quartier" in collection["attribution"]
    features = {feature["id"]: feature for feature in collection["features"]}
    assert set(features) == {points[name].id for name in ("tree", "hostile", "bench", "dae", "bare_dae")}
    tree = features[points["tree"].id]
    assert tree["geometry"] == {"type": "Point", "coordinates": [5.9201, 45.5651]}  # lon, lat
    assert tree["properties"]["preset"] == "tree"
    assert tree["properties"]["tags"]["species"] == "Érable « champêtre » 🌳"
    assert tree["properties"]["observed_at"] == "2026-06-13T08:15:00+00:00"
    assert tree["properties"]["note"] == "=1+1"  # JSON is not a spreadsheet: values as typed
    assert tree["properties"]["client_id"] == str(points["tree"].client_id)


# CSV


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("-2+3", "'-2+3"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("\tTabbed", "'\tTabbed"), ("\r=1", "'\r=1"),
    ("  =2*3", "'  =2*3"), ("-1", "-1"), ("+33479123456", "+33479123456"), ("12.5", "12.5"),
    ("Tilia", "Tilia"), ("a=b", "a=b"), ("", ""), (None, ""), (7, "7"),
])
def test_cells_a_spreadsheet_would_run_are_neutralised(value, cell):
    assert common.safe_cell(value) == cell


def read_csv(path, encoding="utf-8-sig"):
    with open(path, encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_reads_back_with_one_column_per_preset_field_and_no_formula(event, points, tmp_path):
    path, count = export(event, "csv", tmp_path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfid,preset,lat,lon,observed_at,note,")
    rows = {int(row["id"]): row for row in read_csv(path)}
    assert count == len(rows) == 5
    assert points["pending"].id not in rows and points["rejected"].id not in rows
    header = list(next(iter(rows.values())))
    for key in ("species", "height", "leaf_type", "backrest", "material", "defibrillator:location",
                "opening_hours", "other_tags"):
        assert key in header
    assert len(header) == len(set(header))
    tree, hostile = rows[points["tree"].id], rows[points["hostile"].id]
    assert (tree["lat"], tree["lon"], tree["preset"]) == ("45.5651", "5.9201", "tree")
    assert tree["species"] == "Érable « champêtre » 🌳"
    assert tree["height"] == "12.5"
    assert tree["note"] == "'=1+1"
    assert hostile["species"] == "'@SUM(A1)"
    assert hostile["genus"] == "'-2+3"
    assert hostile["denotation"] == "'+cmd|' /C calc'!A0"
    assert hostile["note"] == "'\tTabbed"
    assert json.loads(hostile["other_tags"].lstrip("'")) == {"fixme": "=HYPERLINK(\"http://x\")"}
    assert rows[points["bench"].id]["material"] == "'  =2*3"
    assert rows[points["dae"].id]["level"] == "-1"
    for row in rows.values():
        for cell in row.values():
            assert not re.match(r"\s*[=+@\t\r]", cell) and not re.match(r"\s*-\D", cell), cell


# GeoPackage


def test_gpkg_has_one_wgs84_layer_per_preset_with_its_fields(event, points, tmp_path):
    path, count = export(event, "gpkg", tmp_path, "points.gpkg")
    assert count == 5
    layers = dict(pyogrio.list_layers(path))
    assert layers == {"tree": "Point", "bench": "Point", "defibrillator": "Point"}
    info = pyogrio.read_info(path, layer="tree")
    assert info["crs"] == "EPSG:4326"
    assert info["features"] == 2
    assert list(info["fields"]) == ["id", "client_id", "observed_at", "note", "accuracy_m", "leaf_type",
                                    "leaf_cycle", "genus", "species", "denotation", "height",
                                    "circumference", "other_tags", "osm"]
    assert dict(zip(info["fields"], info["dtypes"], strict=True))["height"] == "float64"
    assert info["dataset_metadata"] == {"LICENCE": "ODbL-1.0", "ATTRIBUTION": exports.licence(
        event, "gpkg")["attribution"]}
    assert "ODbL-1.0" in info["layer_metadata"]["DESCRIPTION"]
    meta, _, geometry, values = pyogrio.raw.read(path, layer="tree")
    columns = dict(zip(meta["fields"], values, strict=True))
    first = list(columns["id"]).index(points["tree"].id)
    assert columns["species"][first] == "Érable « champêtre » 🌳"
    assert columns["height"][first] == 12.5
    assert np.isnan(columns["circumference"][first])
    assert columns["observed_at"][first] == np.datetime64("2026-06-13T08:15:00")
    assert pyogrio.read_info(path, layer="defibrillator")["features"] == 2
    assert geometry[first][-16:] == np.array([5.9201, 45.5651], dtype="<f8").tobytes()  # lon, lat


# schema-dae


def test_dae_has_the_schema_columns_and_fills_what_the_survey_knows(event, points, tmp_path):
    path, count = export(event, "dae", tmp_path, "dae.csv")
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8").splitlines()[0] == DAE_HEADER
    rows = read_csv(path, "utf-8")
    assert count == len(rows) == 2
    full, bare = rows
    assert full["nom"] == HOSTILE_NAME
    assert (full["lat_coor1"], full["long_coor1"]) == ("45.5654", "5.9204")
    assert (full["acc"], full["acc_lib"], full["acc_etg"]) == ("Intérieur", "oui", "-1")
    assert full["acc_complt"] == "Dans le hall, à gauche de l'accueil"
    assert full["disp_j"] == "lundi|mardi|mercredi|jeudi|vendredi"
    assert full["disp_h"] == "heures ouvrables"
    assert full["disp_complt"] == "Mo-Fr 08:00-18:00; PH off"
    assert full["tel1"] == "+33479123456"
    assert full["expt_rais"] == "Ville de Chambéry"
    assert (full["adr_num"], full["adr_voie"], full["com_cp"], full["com_nom"]) == (
        "1", "Place de l'Hôtel de Ville", "73000", "Chambéry")
    assert (bare["acc"], bare["acc_lib"], bare["disp_j"], bare["disp_h"]) == (
        "Extérieur", "non", "non renseigné", "non renseigné")
    assert bare["nom"] == f"DAE Cartopartie du quartier n°{points['bare_dae'].id}"
    for row in rows:
        assert all(row[field] == "" for field in OPERATOR_ONLY)
        for field, value in row.items():
            if value:
                assert_dae_rule(field, value)
    for field, rule in DAE_RULES.items():
        if rule.get("required") and field not in ("tel1", "expt_rais"):
            assert full[field] and bare[field], field


def assert_dae_rule(field, value):
    rule = DAE_RULES.get(field, {})
    if "enum" in rule:
        assert value in rule["enum"], (field, value)
    if "pattern" in rule:
        assert re.search(rule["pattern"], value), (field, value)
    if "number" in rule:
        low, high = rule["number"]
        assert low <= float(value) <= high, (field, value)


def frictionless_errors(path):
    if not DAE_SCHEMA.is_file():
        pytest.skip("../shared/data/fr_opendata/schemas/schema-dae is not here")
    schema = frictionless.Schema.from_descriptor(json.loads(DAE_SCHEMA.read_text(encoding="utf-8")))
    resource = frictionless.Resource(path=path.name, basepath=str(path.parent), schema=schema)
    report = resource.validate()
    return [(error.type, getattr(error, "field_name", None), error.note, getattr(error, "row_number", None))
            for error in report.errors + [error for task in report.tasks for error in task.errors]]


def test_dae_is_valid_against_the_official_schema_but_for_operator_fields(event, points, tmp_path):
    path, _ = export(event, "dae", tmp_path, "dae.csv")
    errors = frictionless_errors(path)
    for kind, field, note, row in errors:
        assert kind == "constraint-error" and 'constraint "required"' in note, (kind, field, note)
        # Only what the operator alone knows is missing; the bare point (row 3) also lacks a
        # phone and an operator, which its walker did not record.
        assert field in (OPERATOR_ONLY if row == 2 else OPERATOR_ONLY | {"tel1", "expt_rais"}), (field, row)
    assert {field for _, field, _, row in errors if row == 2} == OPERATOR_ONLY
    assert {field for _, field, _, row in errors if row == 3} == OPERATOR_ONLY | {"tel1", "expt_rais"}


@pytest.mark.parametrize(("opening_hours", "expected"), [
    (None, ("non renseigné", "non renseigné", "")),
    ("24/7", ("7j/7", "24h/24", "")),
    ("Mo-Su 00:00-24:00", ("7j/7", "24h/24", "Mo-Su 00:00-24:00")),
    ("Mo-Fr 08:00-12:00, 14:00-18:00; Sa 09:00-12:00",
     ("lundi|mardi|mercredi|jeudi|vendredi|samedi", "heures ouvrables",
      "Mo-Fr 08:00-12:00, 14:00-18:00; Sa 09:00-12:00")),
    ("Fr-Mo 18:00-23:00; PH 10:00-12:00",
     ("lundi|vendredi|samedi|dimanche|jours fériés", "heures ouvrables|heures de nuit",
      "Fr-Mo 18:00-23:00; PH 10:00-12:00")),
    ("22:00-02:00", ("7j/7", "heures de nuit", "22:00-02:00")),
    ("sunrise-sunset", ("non renseigné", "non renseigné", "sunrise-sunset")),
    ("Jan-Mar Mo 10:00-12:00", ("non renseigné", "non renseigné", "Jan-Mar Mo 10:00-12:00")),
    ("Mo-Fr 08:00-18:00; Mo-Fr off", ("non renseigné", "non renseigné", "Mo-Fr 08:00-18:00; Mo-Fr off")),
])
def test_dae_availability_comes_from_opening_hours_when_it_can(opening_hours, expected):
    disp_j, disp_h, disp_complt = schemadae.availability(opening_hours)
    assert (disp_j, disp_h, disp_complt) == expected
    assert_dae_rule("disp_j", disp_j)
    assert_dae_rule("disp_h", disp_h)


@pytest.mark.parametrize(("phone", "expected"), [
    ("+33 4 79 12 34 56", "+33479123456"), ("04.79.12.34.56", "+33479123456"),
    ("+33 (0)4 79 12 34 56", "+33479123456"), ("0033479123456", "+33479123456"),
    ("0262 12 34 56", "+262262123456"), ("112", ""), ("+41 22 123 45 67", ""), ("", ""),
])
def test_dae_phone_numbers_take_the_schema_form_or_stay_empty(phone, expected):
    assert schemadae.phone(phone) == expected
    if expected:
        assert_dae_rule("tel1", expected)


def test_dae_leaves_out_values_the_schema_would_refuse():
    row = schemadae.row({"id": 3, "lat": 45.5, "lon": 5.9, "tags": {
        "emergency": "defibrillator", "indoor": "maybe", "access": "delivery",
        "addr:postcode": "7300", "phone": "+44 20 7946 0000", "opening_hours": "Mo 10:00+"}}, "Party")
    assert (row["acc"], row["acc_lib"], row["com_cp"], row["tel1"]) == ("", "", "", "")
    assert (row["disp_j"], row["disp_h"], row["disp_complt"]) == ("non renseigné", "non renseigné",
                                                                  "Mo 10:00+")
    assert list(row) == DAE_HEADER.split(",")


# HTML map


def test_html_map_is_self_contained_and_escapes_what_walkers_typed(event, points, tmp_path):
    path, count = export(event, "html", tmp_path, "map.html")
    page = path.read_text(encoding="utf-8")
    assert count == 5
    assert "<script src=" not in page and "<link " not in page  # Leaflet is inlined
    assert "L.map(" in page and "L.circleMarker(" in page
    assert "45.5651" in page and "5.9201" in page and "45.5654" in page
    assert "45.5661" not in page and "Pending" not in page and "Rejected" not in page
    assert "<script>alert" not in page
    assert "\\u003cscript\\u003ealert" in page  # the name, as JSON data read with textContent
    assert "textContent" in page and "innerHTML" not in page.split("var data")[1]
    assert "<title>Cartopartie du quartier</title>" in page
    assert "Licence: ODbL-1.0" in page
    assert json.dumps("Érable « champêtre » 🌳")[1:-1] in page


# folium's call on its map (named map_<hex>), not Leaflet's own source inlined in the page.
FIT_BOUNDS = re.compile(r"\bmap_[0-9a-f]+\.fitBounds\(\s*(\[\[[^\]]*\], \[[^\]]*\]\])\s*,\s*(\{[^}]*\})\s*\)")


def fitted_bounds(page):
    """The bounds and options of the map's one fitBounds call, read back from the HTML file."""
    [(bounds, options)] = FIT_BOUNDS.findall(page)
    return json.loads(bounds), json.loads(options)


def test_html_map_opens_on_the_bounds_of_its_points(event, points, tmp_path):
    page = export(event, "html", tmp_path, "map.html")[0].read_text(encoding="utf-8")
    bounds, options = fitted_bounds(page)
    # The five approved points, from 45.5651, 5.9201 to 45.5655, 5.9205; not the pending one.
    assert bounds == [[pytest.approx(45.5651), pytest.approx(5.9201)],
                      [pytest.approx(45.5655), pytest.approx(5.9205)]]
    assert options == {"maxZoom": 18}


def test_html_map_without_points_opens_on_the_zone(event, tmp_path):
    page = export(event, "html", tmp_path, "map.html")[0].read_text(encoding="utf-8")
    bounds, _ = fitted_bounds(page)
    assert bounds == [[pytest.approx(45.560), pytest.approx(5.915)],
                      [pytest.approx(45.570), pytest.approx(5.930)]]  # conftest.ZONE


def test_html_comment_cannot_be_closed_by_an_event_name(event, tmp_path):
    event.name = "Fin de l'été --> <script>alert(1)</script>"
    db.session.commit()
    page = export(event, "html", tmp_path, "map.html")[0].read_text(encoding="utf-8")
    comment = page.split("<!--", 1)[1].split("-->", 1)[0]
    assert "Licence: ODbL-1.0" in comment
    assert "«Fin de l'été - -&gt; &lt;script&gt;alert(1)&lt;/script&gt;»" in comment
    assert "<script>alert(1)" not in page
    assert "<title>Fin de l&#39;été --&gt; &lt;script&gt;" in page


# Photos


def test_photos_zip_holds_approved_points_photos_an_index_and_the_licence(app, event, points, tmp_path):
    kept, kept_data = add_photo(app, points["tree"], "green")
    add_photo(app, points["pending"], "red")
    missing, _ = add_photo(app, points["dae"], "blue")
    (Path(app.config["PHOTO_DIR"]) / missing.filename).unlink()
    db.session.commit()
    path, count = export(event, "photos", tmp_path, "photos.zip")
    assert count == 1
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(["README.txt", "index.csv",
                                        f"photos/{points['tree'].id}_{kept.sha256}.jpg"])
        assert archive.read(f"photos/{points['tree'].id}_{kept.sha256}.jpg") == kept_data
        readme = archive.read("README.txt").decode("utf-8")
        index = list(csv.DictReader(io.StringIO(archive.read("index.csv").decode("utf-8"))))
    assert "Licence: etalab-2.0" in readme and "Cartopartie du quartier" in readme
    assert [(row["submission_id"], row["sha256"]) for row in index] == [
        (str(points["tree"].id), kept.sha256), (str(points["dae"].id), missing.sha256)]
    assert index[0]["file"].startswith("photos/") and index[1]["file"] == ""


# Nothing approved


@pytest.mark.parametrize("fmt", list(exports.FORMATS))
def test_event_with_no_approved_point_gives_an_empty_valid_file(event, tmp_path, fmt):
    add_point(event, "tree", {"natural": "tree"}, status=Status.pending)
    db.session.commit()
    path, count = export(event, fmt, tmp_path, f"empty{exports.FORMATS[fmt].file_name}")
    assert count == 0
    if fmt == "geojson":
        collection = json.loads(path.read_text(encoding="utf-8"))
        assert collection["features"] == [] and collection["type"] == "FeatureCollection"
    elif fmt in ("csv", "dae"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
        assert len(lines) == 1
        assert lines[0][:2] == (["id", "preset"] if fmt == "csv" else ["nom", "lat_coor1"])
    elif fmt == "gpkg":
        assert dict(pyogrio.list_layers(path)) == {
            "tree": "Point", "bench": "Point", "defibrillator": "Point"}
        assert pyogrio.read_info(path, layer="defibrillator")["features"] == 0
        assert pyogrio.read_info(path, layer="defibrillator")["crs"] == "EPSG:4326"
    elif fmt == "html":
        page = path.read_text(encoding="utf-8")
        assert '"points": []' in page and "L.map(" in page
    else:
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == ["README.txt", "index.csv"]
            assert archive.read("index.csv").decode().startswith("file,submission_id")


def test_empty_dae_file_is_valid_against_the_official_schema(event, tmp_path):
    path, _ = export(event, "dae", tmp_path, "dae.csv")
    assert frictionless_errors(path) == []


# Command line


def test_cli_writes_each_export_and_states_the_csv_licence_beside_it(runner, event, points, tmp_path):
    target = tmp_path / "party.csv"
    result = runner.invoke(cli, ["export", "csv", "--event", "party", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"5 approved point(s) of party written to {target}; "
                                     f"licence in {target}.licence.txt")
    assert len(read_csv(target)) == 5
    assert "Licence: ODbL-1.0" in Path(f"{target}.licence.txt").read_text(encoding="utf-8")
    result = runner.invoke(cli, ["export", "dae", "--event", "party", "-o", str(tmp_path / "dae.csv")])
    assert result.exit_code == 0, result.output
    assert "Licence: etalab-2.0" in (tmp_path / "dae.csv.licence.txt").read_text(encoding="utf-8")
    result = runner.invoke(cli, ["export", "geojson", "--event", "party", "-o", str(tmp_path / "p.geojson")])
    assert result.exit_code == 0 and "licence in" not in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "dae.csv", "dae.csv.licence.txt", "p.geojson", "party.csv", "party.csv.licence.txt"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["export", "xls", "--event", "party", "-o", "{tmp}/x.xls"], "unknown format 'xls': one of geojson, csv"),
    (["export", "csv", "--event", "nowhere", "-o", "{tmp}/x.csv"], "there is no event 'nowhere'"),
    (["export", "csv", "--event", "party", "-o", "{tmp}/missing/x.csv"], "cannot write {tmp}/missing/x.csv"),
    (["export", "csv", "--event", "party", "-o", "{tmp}"], "is a folder"),
])
def test_cli_errors_are_one_line_and_exit_1(runner, event, tmp_path, arguments, message):
    result = runner.invoke(cli, [part.format(tmp=tmp_path) for part in arguments])
    assert result.exit_code == 1
    assert message.format(tmp=tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_the_previous_file_whole(runner, event, points, tmp_path, monkeypatch):
    target = tmp_path / "party.geojson"
    target.write_text("previous export")

    def disk_full(event, path, lang):
        Path(path).write_text('{"type": "FeatureCollection", "features": [')
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(exports.FORMATS, "geojson", exports.FORMATS["geojson"]._replace(write=disk_full))
    result = runner.invoke(cli, ["export", "geojson", "--event", "party", "-o", str(target)])
    assert result.exit_code == 1
    assert f"cannot write {target}: No space left on device" in result.output
    assert target.read_text() == "previous export"
    assert [path.name for path in tmp_path.iterdir()] == ["party.geojson"]


# Organiser downloads


def test_exports_page_lists_every_format_and_is_linked_from_the_organiser_pages(client, organiser, points):
    page = client.get("/organise/party/exports")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for fmt in exports.FORMATS:
        assert f'href="/organise/party/exports/{fmt}"' in html
    assert "5 points, dont 2 défibrillateurs." in html
    english = client.get("/organise/party/exports?lang=en").get_data(as_text=True)
    assert "5 points, 2 of them defibrillators." in english
    assert "etalab-2.0" in html and "ODbL-1.0" in html
    for other in ("/organise/party", "/organise/party/settings"):
        assert 'href="/organise/party/exports"' in client.get(other).get_data(as_text=True)


@pytest.mark.parametrize(("fmt", "media_type", "file_name", "licence"), [
    ("geojson", "application/geo+json", "party.geojson", "ODbL-1.0"),
    ("csv", "text/csv; charset=utf-8", "party.csv", "ODbL-1.0"),
    ("gpkg", "application/geopackage+sqlite3", "party.gpkg", "ODbL-1.0"),
    ("dae", "text/csv; charset=utf-8", "party-dae.csv", "etalab-2.0"),
    ("html", "text/html; charset=utf-8", "party-map.html", "ODbL-1.0"),
    ("photos", "application/zip", "party-photos.zip", "etalab-2.0"),
])
def test_organiser_downloads_each_export_with_its_licence(client, organiser, points, tmp_path, fmt,
                                                          media_type, file_name, licence):
    response = client.get(f"/organise/party/exports/{fmt}")
    assert response.status_code == 200
    assert response.mimetype == media_type.split(";")[0]
    assert response.headers["Content-Disposition"] == f"attachment; filename={file_name}"
    assert response.headers["X-Licence"] == licence
    assert "no-store" in response.headers["Cache-Control"]
    assert "%C2%AB" in response.headers["X-Attribution"]  # « percent-encoded
    if licence == "ODbL-1.0":
        assert response.headers["Link"] == '<https://opendatacommons.org/licenses/odbl/1-0/>; rel="license"'
    body = response.get_data()
    if fmt == "geojson":
        assert len(json.loads(body)["features"]) == 5
    elif fmt == "gpkg":
        (tmp_path / "d.gpkg").write_bytes(body)
        assert pyogrio.read_info(tmp_path / "d.gpkg", layer="tree")["features"] == 2
    elif fmt == "photos":
        assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["README.txt", "index.csv"]
    else:
        assert b"45.5654" in body


def test_unknown_export_is_a_404(client, organiser, event):
    response = client.get("/organise/party/exports/shapefile?lang=en")
    assert response.status_code == 404
    assert "There is no export shapefile" in response.get_data(as_text=True)
    french = client.get("/organise/party/exports/shapefile").get_data(as_text=True)
    assert "Il n&#39;y a pas d&#39;export shapefile" in french


@pytest.mark.parametrize("path", ["/organise/party/exports", "/organise/party/exports/csv"])
def test_signed_out_visitors_and_walkers_are_sent_to_sign_in(client, event, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=/organise/party/exports")
    walker = join(client, "party")
    assert client.get(path, headers=walker).status_code == 302


@pytest.mark.parametrize("path", ["/organise/party/exports", "/organise/party/exports/geojson"])
def test_organiser_of_another_event_is_refused(client, event, path):
    other = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = other.id
    response = client.get(path)
    assert response.status_code == 403
    assert "Cartopartie" not in response.get_data(as_text=True)
