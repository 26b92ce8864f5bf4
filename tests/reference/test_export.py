"""The town's dataset back, corrected by the approved checks, in its own layout (CSV columns,
delimiter, CRS and decimal separator; GeoJSON properties), with the change report, the
organiser's download links, hostile cells neutralised, and validation against a Table Schema."""

import csv
import html
import io
import json
from zoneinfo import ZoneInfo

import pytest
from conftest import SHARED_DATA, TOWN_DAE, a_verdict, join, load_reference, make_event, make_organiser
from pyproj import Transformer

from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.models import ReferenceRow, Status, Submission
from cartoparty.reference import checks, export
from cartoparty.reference.mapping import row_tags

SCHEMA_DAE = SHARED_DATA / "fr_opendata" / "schemas" / "schema-dae" / "schema-dae_latest_1.0.7.schema.json"
# TOWN_DAE and three more rows, so that each outcome has its row.
SIX_DAE = TOWN_DAE + ("D4,Piscine,45.5645,5.9250,Intérieur,oui,0,Accueil,7j/7,24h/24,\n"
                      "D5,Stade,45.5655,5.9260,Extérieur,oui,,Tribune,7j/7,24h/24,\n"
                      "D6,Crèche,45.5635,5.9180,Intérieur,non,,Entrée,lundi,heures ouvrables,\n")
HEADER = TOWN_DAE.split("\n", 1)[0].split(",")
ADDED = ["verification_terrain", "date_verification"]
MINI_SCHEMA = {"name": "mini-dae", "title": "Mini DAE", "fields": [
    {"name": "gid", "type": "string", "constraints": {"required": True}},
    {"name": "nom", "type": "string", "constraints": {"required": True}},
    {"name": "lat_coor1", "type": "number", "constraints": {"required": True, "minimum": -90, "maximum": 90}},
    {"name": "long_coor1", "type": "number", "constraints": {"required": True}},
    {"name": "acc", "type": "string", "constraints": {"required": True, "enum": ["Intérieur", "Extérieur"]}}]}


def check(client, who, row, verdict, approved=True, preset="defibrillator", slug="party", **values):
    """A walker's verdict on `row`, approved by the organiser (as test_checks does) unless not."""
    body = a_verdict(row, verdict, preset=preset, **values)
    answer = client.post(f"/api/events/{slug}/submissions", json=body, headers=who)
    assert answer.status_code == 201, answer.json
    if approved:
        db.session.execute(db.update(Submission).filter_by(client_id=body["client_id"])
                           .values(status=Status.approved))
        db.session.commit()


def own_tags(row, preset="defibrillator", **changed):
    """The tags the row's fields say, some of them changed (None: removed)."""
    tags = {**row_tags(preset, row.fields), **changed}
    return {key: value for key, value in tags.items() if value is not None}


def read_csv(path, delimiter=","):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


@pytest.fixture
def checked(client, event, walker):
    """SIX_DAE checked: D1 corrected, D2 moved, D3 missing, D4 confirmed with another level,
    D5 confirmed as it is, D6 with a verdict still waiting for review."""
    rows = load_reference(event, SIX_DAE)
    check(client, walker, rows["D1"], "different", tags=own_tags(rows["D1"], access="customers"))
    check(client, walker, rows["D2"], "moved", lat=45.5662, lon=5.9213, tags=own_tags(rows["D2"]))
    check(client, walker, rows["D3"], "missing", observed_at="2026-06-14T00:30:00+02:00")
    check(client, walker, rows["D4"], "confirmed", tags=own_tags(rows["D4"], level="2"))
    check(client, walker, rows["D5"], "confirmed", tags=own_tags(rows["D5"]))
    check(client, walker, rows["D6"], "different", approved=False, tags=own_tags(rows["D6"], indoor="no"))
    return rows


def test_each_outcome_changes_the_written_file_as_it_should(event, checked, tmp_path):
    path = tmp_path / "out.csv"
    counts = export.export(event, path)
    assert counts == {"corrected": 1, "moved": 1, "missing": 1, "confirmed": 2, "not_checked": 1}
    header, *lines = read_csv(path)
    assert header == HEADER + ADDED
    original = {cells[0]: cells for cells in csv.reader(io.StringIO(SIX_DAE)) if cells[0] != "gid"}
    written = {cells[0]: cells for cells in lines}
    assert list(written) == ["D1", "D2", "D3", "D4", "D5", "D6"]  # the file's order

    def expected(source_id, verification, day="2026-06-13", **cells):
        values = original[source_id].copy()
        for name, value in cells.items():
            values[HEADER.index(name)] = value
        return [*values, verification, day]

    assert written["D1"] == expected("D1", "corrigé", acc_lib="non")
    assert written["D2"] == expected("D2", "déplacé", lat_coor1="45.5662", long_coor1="5.9213")
    # not found: the town decides; the day is the walker's (Paris time, past midnight)
    assert written["D3"] == expected("D3", "introuvable", "2026-06-14")
    assert written["D4"] == expected("D4", "confirmé", acc_etg="2")
    assert written["D5"] == expected("D5", "confirmé")
    assert written["D6"] == expected("D6", "non vérifié", "")  # its verdict waits for review


def test_the_organisers_settlement_decides_what_goes_back(client, event, walker, tmp_path):
    rows = load_reference(event)
    check(client, walker, rows["D1"], "moved", lat=45.5662, lon=5.9213, tags=own_tags(rows["D1"], level="1"))
    verdict = db.session.scalar(db.select(Submission.id).filter_by(reference_row_id=rows["D1"].id))
    # the tags of a "moved" verdict, not its position; a row called missing with no verdict
    checks.settle(event, rows["D1"].id, "corrected", verdict, "alice@example.org")
    checks.settle(event, rows["D2"].id, "missing", None, "alice@example.org")
    db.session.commit()
    export.export(event, tmp_path / "out.csv")
    _, d1, d2, d3 = read_csv(tmp_path / "out.csv")
    assert d1[2:4] == ["45.5650", "5.9200"] and d1[6] == "1" and d1[-2] == "corrigé"
    settled_at = db.session.scalar(db.select(ReferenceRow.settled_at).filter_by(id=rows["D2"].id))
    assert d2[-2:] == ["introuvable", settled_at.astimezone(ZoneInfo("Europe/Paris")).date().isoformat()]
    assert d3[-2:] == ["non vérifié", ""]


def test_the_change_report_lists_each_checked_row_and_each_changed_field(event, checked, tmp_path):
    report = [(row["source_id"], row["row_number"], row["verification"], row["field"], row["old"], row["new"])
              for row in export.changes(event)]
    assert report == [
        ("D1", 2, "corrigé", "acc_lib", "oui", "non"),
        ("D2", 3, "déplacé", "lat_coor1", "45.5660", "45.5662"),
        ("D2", 3, "déplacé", "long_coor1", "5.9210", "5.9213"),
        ("D3", 4, "introuvable", "", "", ""),
        ("D4", 5, "confirmé", "acc_etg", "0", "2"),
        ("D5", 6, "confirmé", "", "", ""),
    ]  # row numbers are the file's lines, the header being line 1; D6 was not checked
    export.export(event, tmp_path / "out.csv", tmp_path / "changes.csv")
    header, *lines = read_csv(tmp_path / "changes.csv")
    assert header == ["source_id", "row_number", "verification", "field", "old", "new"]
    assert [tuple(line) for line in lines] == [tuple(map(str, row)) for row in report]


def test_the_organiser_downloads_the_dataset_and_the_report(client, event, organiser, checked, tmp_path):
    answer = client.get("/organise/party/reference/export")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == "attachment; filename=town-verifie.csv"
    export.export(event, tmp_path / "out.csv")
    assert answer.data == (tmp_path / "out.csv").read_bytes()
    answer = client.get("/organise/party/reference/changes.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == "attachment; filename=town-verifie-changements.csv"
    assert answer.data.decode().splitlines()[1] == "D1,2,corrigé,acc_lib,oui,non"


def test_only_the_events_organisers_download_it(app, client, event, checked):
    for path in ("/organise/party/reference/export", "/organise/party/reference/changes.csv"):
        assert app.test_client().get(path).status_code == 302  # to the sign-in page
    other = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = other.id
    assert client.get("/organise/party/reference/export").status_code == 403
    assert client.get("/organise/party/reference/changes.csv").status_code == 403


def test_without_a_dataset_the_download_is_a_404_that_says_why(client, event, organiser):
    for path in ("/organise/party/reference/export", "/organise/party/reference/changes.csv"):
        answer = client.get(path, headers={"Accept-Language": "en"})
        assert answer.status_code == 404
        assert "This event has no reference dataset: import the town" in answer.data.decode()
    answer = client.get("/organise/party/reference/export", headers={"Accept-Language": "fr"})
    assert "n'a pas de jeu de données de référence" in html.unescape(answer.data.decode())


def lambert(lon, lat):
    """(x, y) in Lambert CC45 (EPSG:3945) of a WGS84 position."""
    return Transformer.from_crs("EPSG:4326", "EPSG:3945", always_xy=True).transform(lon, lat)


def test_a_lambert_file_gets_its_moved_row_back_in_lambert_with_its_decimal_commas(
        client, event, walker, tmp_path):
    x, y = lambert(5.9206, 45.5655)
    data = ("ID;genre;espece;hauteur;coord_x;coord_y\n"
            "A1;Tilia;cordata;1200;1927901,016;4266895,185\n"
            f"A2;Acer;campestre;800;{x:.3f};{y:.3f}\n")
    rows = load_reference(event, data, kind="trees", crs="EPSG:3945", id_name="ID")
    check(client, walker, rows["A1"], "moved", preset="tree", lat=45.5652, lon=5.9203,
          tags=own_tags(rows["A1"], "tree"))
    check(client, walker, rows["A2"], "different", preset="tree",
          tags=own_tags(rows["A2"], "tree", height="9", species="Acer platanoides"))
    export.export(event, tmp_path / "trees.csv")
    header, a1, a2 = read_csv(tmp_path / "trees.csv", ";")
    assert header == ["ID", "genre", "espece", "hauteur", "coord_x", "coord_y", *ADDED]
    new_x, new_y = lambert(5.9203, 45.5652)
    assert a1[:4] == ["A1", "Tilia", "cordata", "1200"] and a1[6] == "déplacé"
    assert "," in a1[4] and float(a1[4].replace(",", ".")) == pytest.approx(new_x, abs=0.01)
    assert "," in a1[5] and float(a1[5].replace(",", ".")) == pytest.approx(new_y, abs=0.01)
    # the file held the epithet alone; the height in centimetres; its point as it was
    assert a2 == ["A2", "Acer", "platanoides", "900", f"{x:.3f}", f"{y:.3f}", "corrigé", "2026-06-13"]


def test_a_geojson_dataset_comes_back_as_geojson_with_the_same_properties(client, event, walker, tmp_path):
    data = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "arbre-9", "geometry": {"type": "Point", "coordinates": [5.92, 45.565]},
         "properties": {"genre": "Tilia", "espece": "cordata", "hauteur": 1200, "quartier": "Centre"}},
        {"type": "Feature", "id": "arbre-10", "geometry": {"type": "Point", "coordinates": [5.921, 45.566]},
         "properties": {"quartier": "Centre", "genre": "Acer", "hauteur": 800}},
        {"type": "Feature", "id": "arbre-11", "geometry": {"type": "Point", "coordinates": [5.922, 45.567]},
         "properties": {"genre": "Quercus"}}]})
    rows = load_reference(event, data, kind="geojson", preset="tree")
    check(client, walker, rows["arbre-9"], "different", preset="tree",
          tags=own_tags(rows["arbre-9"], "tree", height="15"))
    check(client, walker, rows["arbre-10"], "moved", preset="tree", lat=45.5662, lon=5.9213,
          tags=own_tags(rows["arbre-10"], "tree"))
    export.export(event, tmp_path / "trees.geojson")
    written = json.loads((tmp_path / "trees.geojson").read_text(encoding="utf-8"))
    assert written["type"] == "FeatureCollection"
    first, second, third = written["features"]
    assert first == {"type": "Feature", "id": "arbre-9",
                     "geometry": {"type": "Point", "coordinates": [5.92, 45.565]},
                     "properties": {"genre": "Tilia", "espece": "cordata", "hauteur": 1500,
                                    "quartier": "Centre", "verification_terrain": "corrigé",
                                    "date_verification": "2026-06-13"}}
    assert list(first["properties"]) == ["genre", "espece", "hauteur", "quartier", *ADDED]
    assert second["geometry"]["coordinates"] == [5.9213, 45.5662]
    assert second["properties"] == {"quartier": "Centre", "genre": "Acer", "hauteur": 800,
                                    "verification_terrain": "déplacé", "date_verification": "2026-06-13"}
    assert third["properties"]["verification_terrain"] == "non vérifié"
    assert [row["field"] for row in export.changes(event)] == ["hauteur", "geometry"]


def test_an_opendatasoft_file_gets_its_point_columns_and_delimiter_back(client, event, walker, tmp_path):
    data = ('## Geo Point;Geo Shape;id;nom_site;adresse\n'
            '45.5650789334, 5.92001;"{""type"": ""Point"", ""coordinates"": [5.92001, 45.5650789334]}";'
            '6.0;Salle Jean Mermoz;ALL GABRIEL BIENES\n'
            '45.566, 5.921;"{""type"": ""Point"", ""coordinates"": [5.921, 45.566]}";11.0;Espace Bonnefoy;\n')
    rows = load_reference(event, data, kind="csv", preset="defibrillator", id_name="id")
    check(client, walker, rows["6.0"], "moved", lat=45.5662, lon=5.9213, tags=own_tags(rows["6.0"]))
    export.export(event, tmp_path / "toulouse.csv")
    lines = (tmp_path / "toulouse.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "## Geo Point;Geo Shape;id;nom_site;adresse;verification_terrain;date_verification",
        '45.5662, 5.9213;"{""type"": ""Point"", ""coordinates"": [5.9213, 45.5662]}";6.0;'
        "Salle Jean Mermoz;ALL GABRIEL BIENES;déplacé;2026-06-13",
        '45.566, 5.921;"{""type"": ""Point"", ""coordinates"": [5.921, 45.566]}";11.0;Espace Bonnefoy;;'
        "non vérifié;"]


def test_cells_a_spreadsheet_would_run_are_neutralised(client, event, walker, tmp_path):
    data = ("gid,nom,lat_coor1,long_coor1,acc,acc_lib,acc_etg,acc_complt,disp_j,disp_h,tel1\n"
            "D1,=cmd|' /C calc'!A0,45.5650,5.9200,Intérieur,oui,-,@SUM(A1),7j/7,24h/24,+33479000000\n")
    rows = load_reference(event, data)
    check(client, walker, rows["D1"], "different",
          tags=own_tags(rows["D1"], **{"defibrillator:location": '=HYPERLINK("http://evil.example")'}))
    export.export(event, tmp_path / "out.csv", tmp_path / "changes.csv")
    _, row = read_csv(tmp_path / "out.csv")
    assert row[1] == "'=cmd|' /C calc'!A0"
    assert row[6:8] == ["-", '\'=HYPERLINK("http://evil.example")']  # "-" is no formula
    assert row[10] == "+33479000000"  # a phone number is a plain number
    _, change = read_csv(tmp_path / "changes.csv")
    assert change[3:] == ["acc_complt", "'@SUM(A1)", '\'=HYPERLINK("http://evil.example")']
    assert export.changes(event)[0]["new"] == '=HYPERLINK("http://evil.example")'  # the page escapes


def test_a_failed_export_leaves_the_previous_file_whole(event, checked, tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("the previous export\n", encoding="utf-8")

    def half_then_fail(handle, dataset, rows):
        handle.write("gid,nom\nD1,")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "write_csv", half_then_fail)
    with pytest.raises(OSError):
        export.export(event, path)
    assert path.read_text(encoding="utf-8") == "the previous export\n"
    assert [file.name for file in tmp_path.iterdir()] == ["out.csv"]


def write_schema(tmp_path, schema=MINI_SCHEMA):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def test_a_broken_required_enum_is_listed_and_the_command_exits_1(runner, client, event, walker, tmp_path):
    rows = load_reference(event, TOWN_DAE.replace("Extérieur", "dehors"))
    check(client, walker, rows["D1"], "confirmed", tags=own_tags(rows["D1"]))
    export.export(event, tmp_path / "out.csv")
    errors = export.validate(tmp_path / "out.csv", MINI_SCHEMA)
    assert [(error["row"], error["field"], error["type"]) for error in errors] == [
        (3, "acc", "constraint-error")]
    assert "dehors" in errors[0]["message"]
    schema = write_schema(tmp_path)
    result = runner.invoke(cli, ["reference", "export", "--event", "party", "-o", str(tmp_path / "cli.csv"),
                                 "--schema", str(schema)])
    assert result.exit_code == 1
    assert "  row 3, acc: " in result.output
    assert result.output.strip().splitlines()[-1] == "Error: 1 error against Mini DAE"
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()


def test_the_command_writes_both_files_and_says_the_file_is_valid(runner, event, checked, tmp_path):
    out, report = tmp_path / "town-verifie.csv", tmp_path / "changes.csv"
    result = runner.invoke(cli, ["reference", "export", "--event", "party", "-o", str(out),
                                 "--report", str(report), "--schema", str(write_schema(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{out}: 6 rows (2 confirmed, 1 corrected, 1 moved, 1 missing, 1 not checked); "
        "rows refused at import are not in it",
        f"{report}: the change report",
        "valid against Mini DAE"]
    assert read_csv(out)[0] == HEADER + ADDED and len(read_csv(report)) == 7
    result = runner.invoke(cli, ["reference", "export", "--event", "party", "-o", str(out)])
    assert result.exit_code == 0 and "valid" not in result.output


def test_the_command_refuses_in_one_line(runner, event, tmp_path):
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["reference", "export", "--event", "party", "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: This event has no reference dataset: "
                                     "import the town's file first.")
    assert not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    load_reference(event)
    result = runner.invoke(cli, ["reference", "export", "--event", "party", "-o", str(out),
                                 "--schema", str(bad)])
    assert result.exit_code == 1 and result.output.startswith("Error: This Table Schema cannot be read: ")
    assert not out.exists()
    other = make_event("trees")
    load_reference(other, json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [
        5.92, 45.565]}, "properties": {"genre": "Tilia"}}), kind="geojson", preset="tree")
    result = runner.invoke(cli, ["reference", "export", "--event", "trees", "-o", str(out),
                                 "--schema", str(write_schema(tmp_path))])
    assert result.exit_code == 1 and "this dataset is GeoJSON" in result.output
    result = runner.invoke(cli, ["reference", "export", "--event", "nope", "-o", str(out)])
    assert result.exit_code == 1 and "no event 'nope'" in result.output


def schema_dae_row(**values):
    """One defibrillator with every column of schema-dae 1.0.7, valid against it."""
    row = {"nom": "Mairie", "lat_coor1": "45.565", "long_coor1": "5.92", "adr_num": "1",
           "adr_voie": "place de l'Hôtel de Ville", "com_cp": "73000", "com_insee": "73065",
           "com_nom": "Chambéry", "acc": "Intérieur", "acc_lib": "oui", "acc_pcsec": "non",
           "acc_acc": "oui", "dae_mobile": "non", "acc_etg": "0", "acc_complt": "Hall d'accueil",
           "photo1": "", "photo2": "", "disp_j": "7j/7", "disp_h": "24h/24", "disp_complt": "",
           "tel1": "+33479000000", "tel2": "", "site_email": "", "date_instal": "2020-01-15",
           "etat": "Actif", "etat_fonct": "En fonctionnement", "fab_siren": "", "fab_rais": "ZOLL",
           "mnt_siren": "", "mnt_rais": "", "modele": "AED Plus", "num_serie": "X1", "id_euro": "",
           "lc_ped": "non", "dtpr_lcped": "", "dtpr_lcad": "", "dtpr_bat": "", "freq_mnt": "",
           "dispsurv": "non", "dermnt": "2026-01-10", "expt_siren": "217300656", "expt_siret": "",
           "expt_rais": "Ville de Chambéry", "expt_tel1": "+33479000000", "expt_tel2": "",
           "expt_email": "dae@example.org"}
    return {**row, **values}


def as_csv(rows):
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue()


def error_set(errors):
    return {(error["row"], error["field"], error["type"]) for error in errors}


@pytest.mark.skipif(not SCHEMA_DAE.exists(), reason="the official schema-dae is not in ../shared/data")
def test_corrections_keep_a_schema_dae_file_valid_against_the_official_schema(
        client, event, walker, tmp_path):
    original = tmp_path / "dae.csv"
    original.write_text(as_csv([schema_dae_row(), schema_dae_row(nom="Ecole", lat_coor1="45.566",
                                                                 long_coor1="5.921", num_serie="X2")]),
                        encoding="utf-8")
    assert export.validate(original, SCHEMA_DAE) == []
    rows = load_reference(event, original.read_text(encoding="utf-8"))  # no gid: rows by number
    check(client, walker, rows["2"], "different", tags=own_tags(
        rows["2"], indoor="no", access="customers", level="-1", opening_hours="Mo-Fr 08:00-18:00"))
    check(client, walker, rows["3"], "moved", lat=45.5662, lon=5.9213, tags=own_tags(rows["3"]))
    export.export(event, tmp_path / "out.csv")
    _, first, second = read_csv(tmp_path / "out.csv")
    assert first[8:10] + first[13:14] + first[17:20] == [
        "Extérieur", "non", "-1", "lundi|mardi|mercredi|jeudi|vendredi", "heures ouvrables",
        "Mo-Fr 08:00-18:00"]
    assert second[1:3] == ["45.5662", "5.9213"]
    assert export.validate(tmp_path / "out.csv", SCHEMA_DAE) == []
    assert export.schema_title(SCHEMA_DAE) == "DAE"


@pytest.mark.skipif(not SCHEMA_DAE.exists(), reason="the official schema-dae is not in ../shared/data")
def test_corrections_add_no_error_a_dirty_file_did_not_have(client, event, walker, tmp_path):
    original = tmp_path / "town.csv"
    original.write_text(SIX_DAE, encoding="utf-8")
    rows = load_reference(event, SIX_DAE)
    check(client, walker, rows["D1"], "different", tags=own_tags(rows["D1"], access="customers", level="3",
                                                                  opening_hours="Sa-Su 10:00-12:00"))
    check(client, walker, rows["D2"], "moved", lat=45.5662, lon=5.9213,
          tags=own_tags(rows["D2"], indoor="yes"))
    check(client, walker, rows["D3"], "missing")
    export.export(event, tmp_path / "out.csv")
    before = error_set(export.validate(original, SCHEMA_DAE))
    after = error_set(export.validate(tmp_path / "out.csv", SCHEMA_DAE))
    assert before  # the town's file lacks most of the schema's columns, and tel1 on some rows
    assert after <= before


MONTPELLIER = SHARED_DATA / "fr_opendata" / "dae" / "montpellier" / "MMM_MMM_DAE.csv"
MONTPELLIER_ZONE = {"type": "Polygon", "coordinates": [[
    [3.70, 43.50], [4.10, 43.50], [4.10, 43.75], [3.70, 43.75], [3.70, 43.50]]]}


@pytest.mark.skipif(not (SCHEMA_DAE.exists() and MONTPELLIER.exists()),
                    reason="schema-dae or Montpellier's defibrillators are not in ../shared/data")
def test_montpellier_corrected_has_no_error_its_own_file_did_not_have(client, tmp_path):
    event = make_event("montpellier", zone=MONTPELLIER_ZONE)
    rows = load_reference(event, MONTPELLIER.read_text(encoding="utf-8"))
    who = join(client, event.slug)
    first, second, third = list(rows.values())[:3]
    for row, verdict, values in ((first, "different", {"tags": own_tags(first, indoor="no", access="yes")}),
                                 (second, "moved", {"lat": 43.6111, "lon": 3.8767, "tags": own_tags(second)}),
                                 (third, "missing", {})):
        check(client, who, row, verdict, slug=event.slug, **values)
    export.export(event, tmp_path / "out.csv")
    # A row is known by its first line in the file; frictionless numbers records (some cells
    # hold line breaks); the export's rows are the stored ones, in file order.
    record_of_line = records(MONTPELLIER.read_text(encoding="utf-8"))
    record_of_export_row = {number: record_of_line[row.row_number]
                            for number, row in enumerate(export.plan(event), start=2)}
    before = error_set(export.validate(MONTPELLIER, SCHEMA_DAE))
    after = {(record_of_export_row.get(row), name, kind) for row, name, kind in error_set(
        export.validate(tmp_path / "out.csv", SCHEMA_DAE))}
    assert after <= before
    # "int�rieur", not in the schema's list, is now "Extérieur", which is
    assert (record_of_line[first.row_number], "acc", "constraint-error") in before - after


def records(text):
    """{line a CSV record starts on: its number as frictionless counts them (the header is 1)}."""
    reader = csv.reader(io.StringIO(text, newline=""))
    found, line = {}, 1
    for number, _ in enumerate(reader, start=1):
        found[line] = number
        line = reader.line_num + 1
    return found
