"""Loading a reference dataset into an event (reference/store.py), from files written here and
from the shared Montpellier, Toulouse and Grenoble files when present; the command and the
organiser's page."""

import io
import json

import pytest
from conftest import SHARED_DATA, make_event, make_organiser
from test_organise import csrf

from cartoparty.cli import cli
from cartoparty.errors import Invalid
from cartoparty.extensions import db
from cartoparty.models import Event, ReferenceDataset, ReferenceRow
from cartoparty.reference.store import import_reference

OPENDATA = SHARED_DATA / "fr_opendata"
TOULOUSE = OPENDATA / "dae" / "toulouse" / "defibrillateurs_toulouse.csv"
MONTPELLIER = OPENDATA / "dae" / "montpellier" / "MMM_MMM_DAE.csv"
GRENOBLE = OPENDATA / "trees" / "grenoble" / "donnees-defi-egc_2017_grenoble_arbres.csv"

# Rows about the conftest's Chambéry zone: in it, in it once swapped (Montpellier's mistake),
# outside it either way, and with no position.
DAE = ("nom,lat_coor1,long_coor1,acc,disp_j\n"
       "Mairie,45.565,5.92,libre,lundi\n"
       "\n"
       "Ecole,5.921,45.566,libre,mardi\n"
       "Gare,45.60,5.92,libre,-\n"
       "Cr\ufffdche, , ,libre,-\n")


def rows(event):
    return db.session.execute(
        db.select(ReferenceRow.row_number, ReferenceRow.source_id, ReferenceRow.fixed,
                  db.func.ST_Y(ReferenceRow.geom), db.func.ST_X(ReferenceRow.geom))
        .where(ReferenceRow.event_id == event.id).order_by(ReferenceRow.row_number)).all()


def zone(west, south, east, north):
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                [west, north], [west, south]]]}


def test_rows_inside_are_loaded_swapped_ones_fixed_and_the_others_refused_with_a_reason(event):
    report = import_reference(event, DAE.encode(), "dae.csv", "dae")
    assert (report.read, report.loaded, report.replaced, report.schema) == (4, 2, 0, "schema-dae 1.0.7")
    assert report.fixed == [(4, "lat_lon_swapped")]
    assert [(number, problem.code) for number, problem in report.refused] == [
        (5, "reference_outside_zone"), (6, "reference_no_position")]
    assert report.lost_characters == 1
    assert rows(event) == [(2, "2", None, 45.565, 5.92), (4, "4", "lat_lon_swapped", 45.566, 5.921)]
    stored = db.session.scalar(db.select(ReferenceRow).filter_by(event_id=event.id, row_number=4))
    # All the original fields, as the file has them (the swap is in the position, not the fields).
    assert stored.fields == {"nom": "Ecole", "lat_coor1": "5.921", "long_coor1": "45.566",
                             "acc": "libre", "disp_j": "mardi"}
    assert (stored.kind, stored.imported_at is not None) == ("dae", True)


def test_the_report_reads_as_a_summary_with_reasons():
    report = import_reference(make_event(), DAE.encode(), "dae.csv", "dae")
    lines = report.lines(show=1)
    assert lines[0] == ("dae.csv (dae, schema-dae 1.0.7, utf-8, EPSG:4326): 4 read, 2 loaded (1 fixed), "
                        "2 refused")
    assert "  fixed: 1 × latitude and longitude swapped" in lines
    assert "  row 5: outside the event's zone (with coordinates swapped too)" in lines
    assert lines[-1] == "  … and 1 more refused"


def test_importing_again_replaces_the_events_dataset_and_leaves_other_events_alone(event):
    other = make_event("other")
    import_reference(other, DAE.encode(), "dae.csv", "dae")
    import_reference(event, DAE.encode(), "dae.csv", "dae")
    again = import_reference(event, b"nom,lat_coor1,long_coor1\nMairie,45.5651,5.9201\n", "v2.csv", "dae")
    assert (again.loaded, again.replaced, again.kept) == (1, 2, 0)
    assert rows(event) == [(2, "2", None, 45.5651, 5.9201)]
    assert len(rows(other)) == 2


def test_a_file_of_which_nothing_loads_keeps_the_dataset_there(event):
    import_reference(event, DAE.encode(), "dae.csv", "dae")
    report = import_reference(event, b"nom,lat,lon\nLyon,45.76,4.83\n", "lyon.csv", "csv",
                              preset="defibrillator")
    assert (report.loaded, report.replaced, report.kept) == (0, 0, 2)
    assert [problem.code for _, problem in report.refused] == ["reference_outside_zone"]
    assert len(rows(event)) == 2


def test_nothing_is_written_when_the_file_is_not_readable_as_a_whole(event):
    import_reference(event, DAE.encode(), "dae.csv", "dae")
    for data, crs in ((b"nom,adresse\nMairie,1 place\n", None), (DAE.encode(), "EPSG:0000"),
                      (b"\x00\x01binary", None)):
        with pytest.raises(Invalid):
            import_reference(event, data, "bad.csv", "dae", crs)
    assert len(rows(event)) == 2


def test_a_lambert_file_is_stored_in_wgs84(event):
    # Place Saint-Léger in Lambert CC45 (EPSG:3945), x and y swapped on the second row.
    data = b"ID;coord_x;coord_y\nA1;1927901,016;4266895,185\nA2;4266895.185;1927901.016\n"
    report = import_reference(event, data, "cc45.csv", "trees", "EPSG:3945", id_name="ID")
    assert (report.loaded, report.fixed) == (2, [(3, "lat_lon_swapped")])
    for _, _, _, lat, lon in rows(event):
        assert (lat, lon) == (pytest.approx(45.565, abs=1e-6), pytest.approx(5.92, abs=1e-6))
    assert [row[1] for row in rows(event)] == ["A1", "A2"]


def test_geojson_features_are_loaded_with_their_properties(event):
    data = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "arbre-9", "geometry": {"type": "Point", "coordinates": [5.92, 45.565]},
         "properties": {"genre": "Tilia", "hauteur": 12, "tags": {"a": [1, 2]}}}]}).encode()
    assert import_reference(event, data, "trees.geojson", "geojson", preset="tree").loaded == 1
    stored = db.session.scalar(db.select(ReferenceRow).filter_by(event_id=event.id))
    assert stored.source_id == "arbre-9"
    assert stored.fields == {"genre": "Tilia", "hauteur": 12, "tags": {"a": [1, 2]}}


def test_the_command_prints_the_report(runner, event, tmp_path):
    path = tmp_path / "dae.csv"
    path.write_text(DAE, encoding="utf-8")
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", event.slug, "--kind", "dae"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith("4 read, 2 loaded (1 fixed), 2 refused")
    assert "  row 6: no coordinates" in result.output
    assert len(rows(event)) == 2


def test_the_command_refuses_an_unreadable_file_in_one_line(runner, event, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("nom,adresse\nMairie,1 place\n", encoding="utf-8")
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", event.slug, "--kind", "csv"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: notes.csv: No latitude and longitude columns found: name them "
        "(the file's columns: nom, adresse)."]
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", event.slug, "--kind", "csv",
                                 "--crs", "EPSG:1"])
    assert result.exit_code == 1 and "EPSG:1" in result.output
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", "nope", "--kind", "csv"])
    assert result.exit_code == 1 and "no event 'nope'" in result.output
    assert rows(event) == []


def test_the_command_takes_the_organisers_columns(runner, event, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("Code;Nord;Est\nB-7;45,565;5,92\n", encoding="cp1252")
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", event.slug, "--kind", "csv",
                                 "--lat", "Nord", "--lon", "Est", "--id", "Code"])
    assert result.exit_code == 1
    assert "choose the preset walkers will check the rows with" in result.output
    assert rows(event) == []
    result = runner.invoke(cli, ["reference", "import", str(path), "--event", event.slug, "--kind", "csv",
                                 "--lat", "Nord", "--lon", "Est", "--id", "Code",
                                 "--preset", "bicycle_parking"])
    assert result.exit_code == 0, result.output
    assert rows(event) == [(2, "B-7", None, 45.565, 5.92)]
    db.session.expire_all()
    dataset = db.session.get(ReferenceDataset, event.id)
    assert (dataset.preset, dataset.columns, dataset.delimiter) == (
        "bicycle_parking", ["Code", "Nord", "Est"], ";")
    assert (dataset.lat_column, dataset.lon_column, dataset.crs) == ("Nord", "Est", "EPSG:4326")
    assert "bicycle_parking" in db.session.get(Event, event.id).presets
    assert "now offers the preset bicycle_parking" in result.output


def sign_in(client, event, email="alice@example.org"):
    organiser = make_organiser(email, events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id


def upload(client, event, content, name="dae.csv", **form):
    values = {"csrf_token": csrf(client, f"/organise/{event.slug}/reference"), "kind": "dae",
              "crs": "EPSG:4326", "lat": "", "lon": "", "id": "", **form}
    if content is not None:
        values["file"] = (io.BytesIO(content), name)
    return client.post(f"/organise/{event.slug}/reference", data=values,
                       content_type="multipart/form-data")


def test_the_page_imports_a_file_and_shows_the_report_escaped(client, event):
    sign_in(client, event)
    page = client.get(f"/organise/{event.slug}/reference?lang=en").get_data(as_text=True)
    assert "The dataset holds 0 rows." in page
    data = "gid,nom,lat_coor1,long_coor1\n<b>1</b>,A,45.565,5.92\n<b>1</b>,B,45.566,5.921\n"
    response = upload(client, event, data.encode(), name="<i>dae</i>.csv")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("&lt;i&gt;dae&lt;/i&gt;.csv — lignes lues : 2 ; chargées : 1 (dont corrigées : 0) ; "
            "refusées : 1.") in page
    assert "identifiant &lt;b&gt;1&lt;/b&gt; déjà pris par la ligne 2" in page
    assert "<b>1</b>" not in page and "<i>dae</i>" not in page
    assert "Le jeu de données compte 1 ligne." in page
    assert rows(event)[0][1] == "<b>1</b>"


def test_the_page_shows_why_a_file_is_refused(client, event):
    sign_in(client, event)
    response = upload(client, event, b"nom\nMairie\n")
    assert response.status_code == 422
    assert "Aucune colonne de latitude et de longitude trouvée" in response.get_data(as_text=True)
    response = upload(client, event, None)
    assert response.status_code == 422
    assert "Choisissez un fichier à importer." in response.get_data(as_text=True)
    response = upload(client, event, DAE.encode(), crs="<script>")
    assert response.status_code == 422 and "&lt;SCRIPT&gt;" in response.get_data(as_text=True)
    assert rows(event) == []


def test_the_page_is_for_the_events_organisers_with_a_csrf_token(client, event):
    assert client.get(f"/organise/{event.slug}/reference").status_code == 302  # to sign in
    other = make_event("other")
    sign_in(client, other, "bob@example.org")
    assert client.get(f"/organise/{event.slug}/reference").status_code == 403
    sign_in(client, event)
    response = client.post(f"/organise/{event.slug}/reference", data={"kind": "dae"})
    assert response.status_code == 400
    assert rows(event) == []


def shared(path):
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data); the files written here test the same cases")
    return path.read_bytes()


def test_toulouse_every_row_is_loaded_or_refused_with_its_reason():
    data = shared(TOULOUSE)
    city = make_event("toulouse", zone=zone(1.30, 43.54, 1.52, 43.67))
    report = import_reference(city, data, TOULOUSE.name, "dae", id_name="id")
    assert (report.read, report.loaded, report.refused) == (93, 93, [])
    assert rows(city)[0][1] == "6.0"
    # Only the west of the city: the others are refused, each for being outside.
    west = make_event("toulouse-west", zone=zone(1.30, 43.54, 1.44, 43.67))
    report = import_reference(west, data, TOULOUSE.name, "dae")
    assert report.loaded + len(report.refused) == 93 and 0 < report.loaded < 93
    assert {problem.code for _, problem in report.refused} == {"reference_outside_zone"}


def test_montpellier_swapped_coordinates_are_detected_and_fixed():
    data = shared(MONTPELLIER)
    city = make_event("montpellier", zone=zone(3.78, 43.55, 3.97, 43.68))
    report = import_reference(city, data, MONTPELLIER.name, "dae")
    assert report.schema == "schema-dae 1.0.7"
    assert (report.read, report.loaded, len(report.fixed)) == (275, 245, 245)
    assert {code for _, code in report.fixed} == {"lat_lon_swapped"}
    assert {problem.code for _, problem in report.refused} == {"reference_no_position"}
    assert len(report.refused) == 30 and report.lost_characters > 0
    for _, _, _, lat, lon in rows(city):
        assert 43.55 < lat < 43.68 and 3.78 < lon < 3.97


def test_grenoble_trees_are_reprojected_from_lambert_cc45():
    data = shared(GRENOBLE)
    city = make_event("grenoble", zone=zone(5.68, 45.14, 5.77, 45.22))
    report = import_reference(city, data, GRENOBLE.name, "trees", "EPSG:3945")
    assert (report.read, report.loaded, report.fixed, report.refused) == (15_375, 15_375, [], [])
    box = db.session.execute(db.select(db.func.min(db.func.ST_Y(ReferenceRow.geom)),
                                       db.func.max(db.func.ST_Y(ReferenceRow.geom)),
                                       db.func.min(db.func.ST_X(ReferenceRow.geom)),
                                       db.func.max(db.func.ST_X(ReferenceRow.geom)))
                             .where(ReferenceRow.event_id == city.id)).one()
    assert 45.14 < box[0] < box[1] < 45.22 and 5.68 < box[2] < box[3] < 5.77


@pytest.mark.parametrize("path", ["/organise/{slug}", "/organise/{slug}/settings"])
def test_the_review_and_settings_pages_lead_to_the_reference_dataset(client, event, path):
    sign_in(client, event)
    page = client.get(path.format(slug=event.slug)).get_data(as_text=True)
    assert f'href="/organise/{event.slug}/reference"' in page
