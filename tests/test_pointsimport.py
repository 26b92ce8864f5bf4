import json
from datetime import UTC, datetime

import pytest
from conftest import INSIDE, join, make_event

from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.models import Participant, Submission
from cartoparty.pointsimport import import_points

OUTSIDE = {"lat": 45.60, "lon": 5.92}
GPX_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def geojson(*features):
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def feature(properties, lat=INSIDE["lat"], lon=INSIDE["lon"], **members):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": properties, **members}


def gpx(*waypoints, head=GPX_HEAD):
    return (f'{head}<gpx version="1.1" creator="a GPS" xmlns="http://www.topografix.com/GPX/1/1">'
            + "".join(waypoints) + "</gpx>")


def waypoint(name=None, lat=INSIDE["lat"], lon=INSIDE["lon"], desc=None, time=None):
    children = "".join(f"<{tag}>{value}</{tag}>" for tag, value in
                       (("ele", "270.5"), ("time", time), ("name", name), ("desc", desc)) if value)
    return f'<wpt lat="{lat}" lon="{lon}">{children}</wpt>'


# One file of each format, three points each, all valid.
SAMPLES = {
    "points.geojson": geojson(*(feature({"id": f"t{n}", "species": "Tilia cordata"},
                                        lon=5.92 + n / 10_000) for n in range(3))),
    "points.csv": "id,lat,lon,species\n" + "".join(f"t{n},45.565,{5.92 + n / 10_000},Tilia cordata\n"
                                                     for n in range(3)),
    "points.gpx": gpx(*(waypoint(f"00{n}", lon=5.92 + n / 10_000) for n in range(3))),
}


def write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def submissions():
    return db.session.scalars(db.select(Submission).order_by(Submission.id)).all()


def position(submission):
    return db.session.execute(db.select(db.func.ST_Y(Submission.geom), db.func.ST_X(Submission.geom))
                              .where(Submission.id == submission.id)).one()


def test_geojson_properties_or_tags_become_pending_points_of_the_preset(event, tmp_path):
    path = write(tmp_path, "odk.geojson", geojson(
        feature({"id": "a1", "species": "Tilia cordata", "height": 12, "time": "2026-06-13T10:15:00+02:00"}),
        feature({"tags": {"leaf_type": "broadleaved"}, "note": "by the school"}, id=7, lon=5.921),
    ))
    report = import_points(event, path, "tree")
    assert (report.read, report.taken, report.already, report.refused) == (2, 2, 0, [])
    first, second = submissions()
    assert first.tags == {"species": "Tilia cordata", "height": "12", "natural": "tree"}
    assert first.status == "pending" and first.preset == "tree" and first.version == 1
    assert first.observed_at == datetime(2026, 6, 13, 8, 15, tzinfo=UTC)
    assert position(first) == (INSIDE["lat"], INSIDE["lon"])
    assert second.tags == {"leaf_type": "broadleaved", "natural": "tree"}
    assert second.note == "by the school"
    assert first.participant_id == second.participant_id
    participant = db.session.get(Participant, first.participant_id)
    assert participant.pseudonym == "import: odk.geojson"
    assert ":" in participant.token_hash  # no SHA-256 of a token: no one signs in as it


@pytest.mark.parametrize(("header", "delimiter", "encoding"), [
    ("lat,lon", ",", "utf-8"),
    ("Latitude;Longitude", ";", "utf-8-sig"),
    ("Y;X", ";", "utf-8"),
    ("LAT\tlng", "\t", "utf-8-sig"),
])
def test_csv_columns_delimiters_and_bom_are_recognised(event, tmp_path, header, delimiter, encoding):
    decimal = "," if delimiter == ";" else "."
    rows = [header + f"{delimiter}species{delimiter}time"]
    rows += [delimiter.join([f"45{decimal}565", f"5{decimal}92{n}", "Acer campestre", "13/06/2026 10:15"])
             for n in range(2)]
    path = write(tmp_path, "paper.csv", "\r\n".join(rows) + "\r\n", encoding)
    report = import_points(event, path, "tree")
    assert (report.read, report.taken, report.refused) == (2, 2, [])
    points = submissions()
    assert [position(point) for point in points] == [(45.565, 5.920), (45.565, 5.921)]
    assert points[0].tags == {"species": "Acer campestre", "natural": "tree"}
    assert points[0].observed_at == datetime(2026, 6, 13, 8, 15, tzinfo=UTC)  # Paris, summer time


def test_gpx_waypoints_keep_their_name_as_id_and_desc_as_note(event, tmp_path):
    path = write(tmp_path, "garmin.gpx", gpx(
        waypoint("001", desc="vieux tilleul", time="2026-06-13T08:20:00Z"), waypoint("002", lon=5.921)))
    report = import_points(event, path, "tree")
    assert (report.read, report.taken, report.refused) == (2, 2, [])
    first, second = submissions()
    assert first.note == "vieux tilleul" and first.tags == {"natural": "tree"}
    assert first.observed_at == datetime(2026, 6, 13, 8, 20, tzinfo=UTC)
    assert second.note == ""


@pytest.mark.parametrize("name", SAMPLES)
def test_importing_the_same_file_again_adds_nothing(event, tmp_path, name):
    path = write(tmp_path, name, SAMPLES[name])
    first = import_points(event, path, "tree")
    again = import_points(event, path, "tree")
    assert (first.taken, first.already) == (3, 0)
    assert (again.read, again.taken, again.already, again.refused) == (3, 0, 3, [])
    assert len(submissions()) == 3
    assert db.session.scalar(db.select(db.func.count()).select_from(Participant)) == 1


def test_points_without_an_id_are_known_again_by_their_content(event, tmp_path):
    path = write(tmp_path, "paper.csv", "lat,lon,species\n45.565,5.92,Tilia\n45.566,5.92,Tilia\n")
    assert import_points(event, path, "tree").taken == 2
    assert import_points(event, path, "tree").already == 2


def test_the_same_ids_under_another_preset_are_other_points(event, tmp_path):
    path = write(tmp_path, "points.csv", SAMPLES["points.csv"].replace(",species", ",backrest")
                 .replace("Tilia cordata", "yes"))
    assert import_points(event, path, "tree").taken == 3
    assert import_points(event, path, "bench").taken == 3


def test_a_bad_row_is_refused_with_its_reason_and_the_others_are_taken(event, tmp_path):
    path = write(tmp_path, "kobo.csv", "id,lat,lon,leaf_type,height\n"
                 "a,45.565,5.920,broadleaved,12\n"
                 "b,45.565,5.921,purple,\n"
                 "c,north,5.922,,\n"
                 "\n"
                 "d,45.565,5.923,,200\n"
                 "a,45.565,5.924,,\n"
                 "e,45.565,5.925,,3\n")
    report = import_points(event, path, "tree")
    assert (report.read, report.taken, report.already) == (6, 2, 0)
    assert [where for where, _ in report.refused] == ["line 3", "line 4", "line 6", "line 7"]
    reasons = dict(report.refused)
    assert reasons["line 3"].startswith("leaf_type must be one of ")
    assert reasons["line 4"] == "lat must be a number."
    assert reasons["line 6"] == "height must be between 0 and 150."
    assert reasons["line 7"] == "Another point of the file has the id a."
    assert sorted(point.tags.get("height") for point in submissions()) == ["12", "3"]


def test_points_outside_the_zone_are_refused_unless_the_event_allows_them(event, tmp_path):
    rows = f"id,lat,lon\nin,{INSIDE['lat']},{INSIDE['lon']}\nout,{OUTSIDE['lat']},{OUTSIDE['lon']}\n"
    path = write(tmp_path, "points.csv", rows)
    report = import_points(event, path, "tree")
    assert (report.taken, report.outside) == (1, 1)
    assert report.refused == [("line 3", "This point is outside the event's zone.")]
    assert "(1 outside the zone)" in report.summary()
    anywhere = make_event("anywhere", allow_outside_zone=True)
    assert import_points(anywhere, path, "tree").taken == 2


def test_an_explicit_id_field_is_needed_on_every_row(event, tmp_path):
    path = write(tmp_path, "odk.geojson", geojson(feature({"uuid": "x1"}), feature({"name": "Tilleul"})))
    report = import_points(event, path, "tree", id_field="uuid")
    assert report.taken == 1
    assert report.refused == [("feature 2", "No uuid to identify the point.")]


def test_a_walker_holding_the_pseudonym_keeps_their_own_points_apart(client, event, tmp_path):
    join(client, event.slug, pseudonym="Import: points.csv")
    import_points(event, write(tmp_path, "points.csv", SAMPLES["points.csv"]), "tree")
    names = db.session.scalars(db.select(Participant.pseudonym).order_by(Participant.id)).all()
    assert names == ["Import: points.csv", "import: points.csv (2)"]


def test_a_walker_whose_pseudonym_only_looks_like_the_import_keeps_their_points_apart(
        client, event, tmp_path):
    join(client, event.slug, pseudonym="ｉｍｐｏｒｔ: points.csv")  # fullwidth letters
    import_points(event, write(tmp_path, "points.csv", SAMPLES["points.csv"]), "tree")
    names = db.session.scalars(db.select(Participant.pseudonym).order_by(Participant.id)).all()
    assert names == ["ｉｍｐｏｒｔ: points.csv", "import: points.csv (2)"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.txt", "just some notes", "Unknown format"),
    ("points.csv", "lat,lon,species\n45.565,5.92,Érable\n".encode("latin-1"), "not UTF-8 text (line 2)"),
    ("points.geojson", '{"type": "FeatureCollection", "features": [', "not valid JSON (line 1"),
    ("points.json", '{"type": "Point", "coordinates": [5.92, 45.565]}', "FeatureCollection"),
    ("points.csv", "name,species\nTilleul,Tilia\n", "No latitude and longitude columns"),
    ("points.gpx", "<gpx><wpt lat='45.565'", "not valid XML"),
    ("points.gpx", gpx(head='<?xml version="1.0"?>\n<!DOCTYPE gpx>\n'), "DOCTYPE or entities"),
    ("points.gpx", gpx(waypoint("&lol;"), head='<!DOCTYPE gpx [<!ENTITY lol "lol">]>'),
     "DOCTYPE or entities"),
])
def test_an_unreadable_file_exits_1_with_one_line_and_writes_nothing(runner, event, tmp_path, name,
                                                                      content, message):
    path = write(tmp_path, name, content)
    result = runner.invoke(cli, ["submissions", "import", str(path), "--event", event.slug,
                                 "--preset", "tree"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert message in result.output and name in result.output
    assert submissions() == []
    assert db.session.scalar(db.select(db.func.count()).select_from(Participant)) == 0


def test_the_command_prints_a_summary_and_the_first_refusals(runner, event, tmp_path):
    rows = "".join(f"w{n},45.565,5.92,purple\n" for n in range(4))
    path = write(tmp_path, "kobo.csv", "id,lat,lon,leaf_type\n" + rows + "ok,45.565,5.92,\n")
    args = ["submissions", "import", str(path), "--event", event.slug, "--preset", "tree", "--show", "2"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "kobo.csv: 5 read, 1 taken, 0 already there, 4 refused"
    assert lines[1].startswith("  line 2: leaf_type must be one of ") and lines[2].startswith("  line 3: ")
    assert lines[3:] == ["  … and 2 more refused"]
    result = runner.invoke(cli, args)
    assert result.output.splitlines()[0] == "kobo.csv: 5 read, 0 taken, 1 already there, 4 refused"
    assert len(submissions()) == 1


@pytest.mark.parametrize(("preset", "message"), [
    ("volcano", "Unknown kind of point 'volcano'"),
    ("pharmacy", "'pharmacy' is not part of this event"),
])
def test_a_preset_outside_the_event_is_refused(runner, event, tmp_path, preset, message):
    path = write(tmp_path, "points.csv", SAMPLES["points.csv"])
    result = runner.invoke(cli, ["submissions", "import", str(path), "--event", event.slug,
                                 "--preset", preset])
    assert result.exit_code == 1 and message in result.output
    assert submissions() == []


def test_twenty_thousand_rows_go_in_through_one_copy(event, tmp_path):
    rows = "".join(f"{n},{45.5605 + (n // 200) * 0.00009},{5.9155 + (n % 200) * 0.00007},Tilia\n"
                   for n in range(20_000))
    path = write(tmp_path, "inventory.csv", "id,lat,lon,species\n" + rows)
    report = import_points(event, path, "tree")
    assert (report.read, report.taken, report.refused) == (20_000, 20_000, [])
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == 20_000
