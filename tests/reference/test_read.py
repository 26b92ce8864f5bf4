"""Reading towns' dataset files (reference/read.py) on small dirty files written here: encodings,
delimiters, blank lines, placeholders, schema-dae and schema-arbre names, "lat, lon" columns,
GeoJSON, reprojection, and each row's problem; files refused whole."""

import json

import pytest
from pyproj import Transformer

from cartoparty.errors import Invalid
from cartoparty.reference.read import decode, read_file

# Inside the conftest's Chambéry zone, and the same place in Lambert CC45 (EPSG:3945).
LAT, LON = 45.565, 5.92
TO_CC45 = Transformer.from_crs("EPSG:4326", "EPSG:3945", always_xy=True)
DAE_107 = "nom,lat_coor1,long_coor1,acc,disp_j,disp_h\n"
DAE_108 = "c_gid,c_nom,c_lat_coor1,c_long_coor1,c_acc,c_dispo_horaires\n"


def problems(table):
    return {row.number: row.problem.code if row.problem else None for row in table.rows}


def code_of(call):
    with pytest.raises(Invalid) as raised:
        call()
    return raised.value


def test_utf8_with_or_without_bom_and_utf16_read_alike():
    text = "nom,lat,lon\nÉcole,45.565,5.92\n"
    for data, encoding in ((text.encode(), "utf-8"), (b"\xef\xbb\xbf" + text.encode(), "utf-8-sig"),
                           (text.encode("utf-16"), "utf-16")):
        table = read_file(data, "csv")
        assert table.encoding == encoding
        assert table.rows[0].fields == {"nom": "École", "lat": "45.565", "lon": "5.92"}


def test_windows_1252_lines_are_read_as_such_and_counted():
    data = b"nom;lat;lon\n" + "Crèche Edelweiss;45,565;5,92\n".encode("cp1252") \
        + "École;45,566;5,921\n".encode()
    table = read_file(data, "csv")
    assert (table.encoding, table.cp1252_lines) == ("cp1252", 1)
    assert [row.fields["nom"] for row in table.rows] == ["Crèche Edelweiss", "École"]
    assert (table.rows[0].lat, table.rows[0].lon) == (45.565, 5.92)  # decimal commas


def test_characters_lost_before_the_file_are_kept_and_counted():
    table = read_file("nom,lat,lon\nCr\ufffdche,45.565,5.92\nMairie,45.566,5.921\n".encode(), "csv")
    assert table.lost_characters == 1
    assert table.rows[0].fields["nom"] == "Cr\ufffdche"


@pytest.mark.parametrize(("data", "code"), [
    (b"nom,lat,lon\nA,45.565,5.92\n\x00\x01\x02", "reference_not_text"),
    (b"nom,lat,lon\nA\x81,45.565,5.92\n", "reference_encoding"),  # undefined in Windows-1252
    (b"", "reference_empty"),
    (b"\n\n  \n", "reference_empty"),
    (b"nom,adresse\nMairie,1 place\n", "reference_no_coordinates"),
    (b"PK\x03\x04 not a csv", "reference_no_coordinates"),
    (b'{"type": "FeatureCollection", "features": [', "reference_json"),
    (b'{"type": "Point", "coordinates": [5.92, 45.565]}', "reference_not_features"),
    (b'{"type": "FeatureCollection", "features": [{"properties": {"a": "\\u0000"}}]}', "reference_not_text"),
    ("lat,lon\n45.565," + "9" * 200_000 + "\n", "reference_csv"),  # a cell beyond the csv limit
])
def test_a_file_not_readable_as_a_whole_is_refused(data, code):
    data = data.encode() if isinstance(data, str) else data
    assert code_of(lambda: read_file(data, "csv")).code == code


def test_the_line_neither_encoding_reads_is_named():
    data = b"nom;lat;lon\n" + "é;45;5\n".encode("cp1252") + b"\x9d;45;5\n"
    assert code_of(lambda: decode(data)).params == {"line": 3}


@pytest.mark.parametrize(("crs", "code"), [("EPSG:999999", "reference_crs"), ("Lambert 93", "reference_crs"),
                                           ("EPSG:5714", "reference_crs")])  # 5714: heights, not places
def test_an_unknown_crs_refuses_the_file(crs, code):
    assert code_of(lambda: read_file(b"lat,lon\n45,5\n", "csv", crs)).code == code


def test_an_unknown_kind_or_missing_named_column_refuses_the_file():
    data = b"nom,lat,lon\nA,45.565,5.92\n"
    assert code_of(lambda: read_file(data, "benches")).code == "reference_kind"
    assert code_of(lambda: read_file(data, "csv", lat="Y", lon="lon")).params == {"name": "Y"}
    assert code_of(lambda: read_file(data, "csv", lat="lat")).code == "reference_lat_and_lon"
    assert code_of(lambda: read_file(data, "csv", id_name="gid")).code == "reference_no_column"


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers():
    data = b"nom,lat,lon\n\nA,45.565,5.92\n\n\nB,45.566,5.921\n"
    table = read_file(data, "csv")
    assert [(row.number, row.source_id) for row in table.rows] == [(3, "3"), (6, "6")]


def test_semicolons_crlf_and_a_lat_lon_text_column_as_toulouse_writes_them():
    data = (b'## Geo Point;Geo Shape;id;nom_site\r\n'
            b'45.565, 5.92;"{""type"": ""Point"", ""coordinates"": [5.92, 45.565]}";6.0;Salle Mermoz\r\n'
            b';;7.0;Gymnase\r\n'
            b'45.565 5.92;;8.0;Piscine\r\n')
    table = read_file(data, "dae", id_name="id")
    first = table.rows[0]
    assert (first.source_id, first.lat, first.lon) == ("6.0", 45.565, 5.92)
    assert first.fields["Geo Shape"] == '{"type": "Point", "coordinates": [5.92, 45.565]}'
    assert first.fields["## Geo Point"] == "45.565, 5.92"
    assert problems(table) == {2: None, 3: "reference_no_position", 4: "reference_not_pair"}


def test_schema_dae_107_and_108_names_and_the_register_identifier():
    old = read_file((DAE_107 + "Mairie,45.565,5.92,libre,lundi,heures ouvrables\n").encode(), "dae")
    assert (old.schema, old.rows[0].source_id, old.rows[0].lat) == ("schema-dae 1.0.7", "2", 45.565)
    new = read_file((DAE_108 + "D-12,Mairie,45.565,5.92,libre,Mo-Fr 09:00-17:00\n").encode(), "dae")
    assert (new.schema, new.rows[0].source_id, new.rows[0].lon) == ("schema-dae 1.0.8", "D-12", 5.92)
    assert new.rows[0].fields["c_dispo_horaires"] == "Mo-Fr 09:00-17:00"


def test_schema_arbre_02_and_03_names_and_their_id():
    old = read_file(b"id;longitude;latitude;genre_arbre\n41;5.92;45.565;Acer\n", "trees")
    new = read_file(b"id,longitude,latitude,genre\n42,5.92,45.565,Tilia\n", "trees")
    assert (old.schema, old.rows[0].source_id, old.rows[0].lon) == ("schema-arbre 0.2", "41", 5.92)
    assert (new.schema, new.rows[0].source_id, new.rows[0].lat) == ("schema-arbre 0.3", "42", 45.565)


def test_dirty_rows_are_named_one_by_one():
    data = (b"id,lat,lon,nom\n"
            b"1,45.565,5.92,ok\n"
            b"2, , ,blank\n"
            b"3,-,-,placeholders\n"
            b"4,0,0,zero\n"
            b"5,45.565,0,zero longitude\n"
            b"6,nord,5.92,not a number\n"
            b"7,45.565,inf,not finite\n"
            b",45.565,5.92,no id\n"
            b"-,45.565,5.92,placeholder id\n"
            b"1,45.566,5.921,same id\n"
            b"11,45.565,5.92,extra,cells\n"
            b"12,45.565,5.92,trailing,\n"
            b"13,45.565\n")
    table = read_file(data, "csv", id_name="id")
    assert problems(table) == {
        2: None, 3: "reference_no_position", 4: "reference_no_position", 5: "reference_zero_position",
        6: "reference_zero_position", 7: "reference_not_number", 8: "reference_not_number",
        9: "reference_no_id", 10: "reference_no_id", 11: "reference_duplicate_id",
        12: "reference_extra_cells", 13: None, 14: "reference_no_position"}
    assert table.rows[9].problem.params == {"id": "1", "row": 2}
    assert table.rows[11].fields == {"id": "12", "lat": "45.565", "lon": "5.92", "nom": "trailing"}
    assert table.rows[12].fields == {"id": "13", "lat": "45.565"}  # a short row keeps what it has


def test_placeholders_stay_in_the_fields_as_read():
    table = read_file(b"nom,lat,lon,tel1\nMairie,45.565,5.92,-\n", "csv")
    assert table.rows[0].fields["tel1"] == "-"


def test_repeated_column_names_keep_every_cell():
    table = read_file(b"nom,lat,lon,nom\nMairie,45.565,5.92,Hotel de ville\n", "csv")
    assert table.rows[0].fields == {"nom": "Mairie", "lat": "45.565", "lon": "5.92",
                                    "nom (2)": "Hotel de ville"}


def test_columns_named_by_the_organiser_are_found_whatever_their_case():
    table = read_file(b"Nom,Y_WGS84,X_WGS84,Code\nA,45.565,5.92,T-1\n", "csv", lat="y_wgs84", lon="X_WGS84",
                      id_name="code")
    assert (table.rows[0].lat, table.rows[0].lon, table.rows[0].source_id) == (45.565, 5.92, "T-1")


def test_the_same_column_for_lat_and_lon_is_a_lat_lon_text():
    table = read_file(b'nom;position\nA;"45.565, 5.92"\n', "csv", lat="position", lon="position")
    assert (table.rows[0].lat, table.rows[0].lon) == (45.565, 5.92)


def test_every_position_comes_with_its_swap():
    table = read_file(b"lat,lon\n5.92,45.565\n", "csv")
    assert ((table.rows[0].lon, table.rows[0].lat), table.rows[0].swapped) == ((45.565, 5.92), (5.92, 45.565))


def test_lambert_cc45_is_reprojected_to_wgs84():
    x, y = TO_CC45.transform(LON, LAT)
    data = f"coord_x,coord_y,GENRE_BOTA\n{x:.3f},{y:.3f},Tilia\n{y:.3f},{x:.3f},Acer\n".encode()
    table = read_file(data, "trees", "EPSG:3945")
    straight, swapped = table.rows
    assert straight.lon == pytest.approx(LON, abs=1e-6) and straight.lat == pytest.approx(LAT, abs=1e-6)
    assert swapped.swapped == pytest.approx((LON, LAT), abs=1e-6)  # store.py decides with the zone
    assert straight.fields["coord_x"] == f"{x:.3f}"  # the file's own values, as read


def test_a_position_no_direction_can_reproject_is_refused():
    table = read_file(b"x,y\n1e300,1e300\n", "csv", "EPSG:32631")  # UTM 31N: PROJ gives inf
    assert problems(table) == {2: "reference_reprojection"}


def test_geojson_points_their_ids_and_their_problems():
    def feature(geometry, properties=None, **members):
        return {"type": "Feature", "geometry": geometry, "properties": properties or {}, **members}

    point = {"type": "Point", "coordinates": [LON, LAT]}
    data = json.dumps({"type": "FeatureCollection", "features": [
        feature(point, {"nom": "Mairie", "hauteur": 12}, id=7),
        feature(point, {"nom": "École"}),
        feature(None),
        feature({"type": "LineString", "coordinates": [[LON, LAT], [LON, LAT]]}),
        feature({"type": "Point", "coordinates": ["5.92", True]}),
        feature({"type": "Point", "coordinates": [0, 0]}),
        "not a feature",
    ]}).encode()
    table = read_file(data, "geojson")
    assert table.format == "geojson"
    assert [row.source_id for row in table.rows[:2]] == ["7", "2"]
    assert table.rows[0].fields == {"nom": "Mairie", "hauteur": 12}
    assert problems(table) == {1: None, 2: None, 3: "reference_no_position", 4: "reference_not_point",
                               5: "reference_not_number", 6: "reference_zero_position",
                               7: "reference_no_position"}


def test_a_geojson_property_named_as_identifier():
    data = json.dumps({"type": "Feature", "id": 1, "geometry": {"type": "Point", "coordinates": [LON, LAT]},
                       "properties": {"ref": "A-12"}}).encode()
    assert read_file(data, "geojson", id_name="ref").rows[0].source_id == "A-12"
    assert code_of(lambda: read_file(data, "geojson", id_name="gid")).code == "reference_no_column"
