import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import ZONE, _server_dsn, make_event
from psycopg import sql
from sqlalchemy.engine import make_url

from cartoparty.auth import find_organiser
from cartoparty.cli import cli
from cartoparty.demo import SAMPLE_POINTS
from cartoparty.extensions import db
from cartoparty.models import Event, Organiser, Submission

CARTOPARTY = Path(sys.executable).parent / "cartoparty"


@pytest.fixture
def zone_file(tmp_path):
    path = tmp_path / "zone.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": ZONE}))
    return path


def test_organiser_add_reads_the_password_from_stdin(runner):
    result = runner.invoke(cli, ["organiser", "add", "Alice@Example.org"],
                           input="correct horse\n")
    assert result.exit_code == 0, result.output
    assert find_organiser("alice@example.org", "correct horse") is not None
    assert find_organiser("alice@example.org", "wrong") is None
    stored = db.session.scalar(db.select(Organiser))
    assert "correct horse" not in stored.password_hash


@pytest.mark.parametrize(("email", "password", "message"), [
    ("not-an-email", "correct horse", "is not an email address"),
    ("alice@example.org", "short", "at least 8 characters"),
])
def test_organiser_add_refuses_bad_input(runner, email, password, message):
    result = runner.invoke(cli, ["organiser", "add", email], input=password + "\n")
    assert result.exit_code == 1
    assert message in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(Organiser)) == 0


def test_organiser_add_twice_is_refused(runner):
    runner.invoke(cli, ["organiser", "add", "alice@example.org"], input="correct horse\n")
    result = runner.invoke(cli, ["organiser", "add", "alice@example.org"], input="other pass\n")
    assert result.exit_code == 1
    assert "exists already" in result.output


def test_event_create_with_all_presets_and_an_organiser(runner, zone_file):
    runner.invoke(cli, ["organiser", "add", "alice@example.org"], input="correct horse\n")
    result = runner.invoke(cli, ["event", "create", "bissy-2026", "--name", "Bissy à pied",
                                 "--zone", str(zone_file), "--organiser", "alice@example.org",
                                 "--starts", "2026-06-13T10:00", "--ends", "2026-06-13T13:00"])
    assert result.exit_code == 0, result.output
    event = db.session.scalar(db.select(Event).filter_by(slug="bissy-2026"))
    assert event.name == "Bissy à pied"
    assert "defibrillator" in event.presets and len(event.presets) >= 11
    assert [o.email for o in event.organisers] == ["alice@example.org"]
    assert event.ends_at > event.starts_at
    assert db.session.scalar(db.select(db.func.ST_GeometryType(Event.zone))) == "ST_MultiPolygon"


def test_event_create_with_chosen_presets(runner, zone_file):
    result = runner.invoke(cli, ["event", "create", "trees", "--name", "Arbres",
                                 "--zone", str(zone_file), "--presets", "tree, bench"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(db.select(Event.presets)) == ["tree", "bench"]


@pytest.mark.parametrize(("args", "message"), [
    (["Bad Slug", "--name", "X"], "is not a slug"),
    (["ok", "--name", "X", "--presets", "tree,volcano"], "unknown preset 'volcano'"),
    (["ok", "--name", "X", "--organiser", "nobody@example.org"], "no organiser"),
    (["ok", "--name", "   "], "--name"),
    (["ok", "--name", "X", "--starts", "2026-06-13T10:00", "--ends", "2026-06-12T10:00"],
     "before --starts"),
])
def test_event_create_refuses_bad_options(runner, zone_file, args, message):
    result = runner.invoke(cli, ["event", "create", *args, "--zone", str(zone_file)])
    assert result.exit_code == 1
    assert message in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"type": "Point", "coordinates": [5.9, 45.5]}', "Polygon or MultiPolygon"),
    ('{"type": "Polygon", "coordinates": [[[0,0],[1,1],[1,0],[0,1],[0,0]]]}', "not valid"),
    ('{"type": "Polygon", "coordinates": [[[45.5,5.9],[45.6,5.9],[45.6,95],[45.5,5.9]]]}',
     "out of range"),
    ('{"type": "FeatureCollection", "features": []}', "no features"),
    ('{"type": "Polygon", "coordinates": [[[0,0],[1,0],[0,0]]]}', "zone"),
])
def test_event_create_refuses_bad_zones(runner, tmp_path, content, message):
    path = tmp_path / "zone.geojson"
    path.write_text(content)
    result = runner.invoke(cli, ["event", "create", "ok", "--name", "X", "--zone", str(path)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_event_create_with_missing_zone_file(runner, tmp_path):
    result = runner.invoke(cli, ["event", "create", "ok", "--name", "X",
                                 "--zone", str(tmp_path / "nope.geojson")])
    assert result.exit_code != 0
    assert "nope.geojson" in result.output


@pytest.fixture
def committed_events(app):
    """Two committed events, one with a point: `event list` reads them on its own connection."""
    from test_exports import add_point

    alpha = make_event("alpha", name="Alpha <walk>")
    make_event("beta", name="Bêta")
    add_point(alpha, "tree", {"species": "Tilia"})
    db.session.commit()
    yield
    db.session.execute(db.delete(Event).where(Event.slug.in_(["alpha", "beta"])))
    db.session.commit()


@pytest.mark.commits
def test_event_list_shows_events_and_counts_without_building_the_app(committed_events,
                                                                     database_url):
    environment = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-c", EVENT_LIST_THEN_MODULES], capture_output=True,
                            text=True, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    *lines, modules = result.stdout.splitlines()
    assert [line.split("\t") for line in lines] == [
        ["alpha", "-", "1 submissions", "Alpha <walk>"], ["beta", "-", "0 submissions", "Bêta"]]
    # Neither the ORM nor the app's modules: that is what makes it start in a quarter second.
    imported = {name.partition(".")[0] for name in json.loads(modules)}
    assert not imported & {"sqlalchemy", "flask_sqlalchemy", "geoalchemy2"}
    assert "cartoparty.models" not in json.loads(modules)


def test_demo_loads_and_refreshes_the_demo_event(runner):
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, ["demo"])
    assert again.exit_code == 0, again.output
    event = db.session.scalar(db.select(Event).filter_by(slug="demo"))
    assert set(event.presets) >= {"tree", "defibrillator", "bakery"}
    submissions = db.session.scalar(db.select(db.func.count()).select_from(Submission)
                                    .where(Submission.event_id == event.id))
    assert submissions == len(SAMPLE_POINTS)
    outside = db.session.scalar(
        db.select(db.func.count()).select_from(Submission).join(Event)
        .where(~db.func.ST_Covers(Event.zone, Submission.geom)))
    assert outside == 0
    assert find_organiser("organiser@demo.cartoparty.test", "cartoparty-demo") is not None


def test_demo_keep_leaves_walkers_points_alone(runner):
    runner.invoke(cli, ["demo"])
    db.session.execute(db.delete(Submission).where(Submission.id == db.select(
        db.func.min(Submission.id)).scalar_subquery()))
    result = runner.invoke(cli, ["demo", "--keep"])
    assert result.exit_code == 0
    assert "kept" in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == len(SAMPLE_POINTS) - 1
    runner.invoke(cli, ["demo"])
    assert db.session.scalar(db.select(db.func.count()).select_from(Submission)) == len(SAMPLE_POINTS)


def test_console_script_reports_an_unreachable_database_in_one_line():
    environment = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    result = subprocess.run([str(CARTOPARTY), "event", "list"], capture_output=True, text=True,
                            env=environment, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("cartoparty: cannot reach the database")
    assert len(result.stderr.strip().splitlines()) == 1


def test_console_script_asks_for_the_migrations_on_a_database_without_tables(database_url):
    empty = f"{make_url(database_url).database}_no_tables"
    with psycopg.connect(_server_dsn(database_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(empty)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(empty)))
    try:
        environment = {**os.environ, "DATABASE_URL": _server_dsn(database_url, empty)}
        result = subprocess.run([str(CARTOPARTY), "reference", "export", "--event", "party", "-o", "x.csv"],
                                capture_output=True, text=True, env=environment, timeout=60)
    finally:
        with psycopg.connect(_server_dsn(database_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(empty)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cartoparty: the database lacks cartoparty's tables: run `cartoparty db upgrade` (make run does it)"]


# Imported only by the commands, jobs and pages that use them (issue 11): not by a plain command.
HEAVY = {"folium", "branca", "numpy", "scipy", "pyogrio", "osmium", "procrastinate", "PIL", "segno",
         "overpy", "alembic", "flask_migrate"}
EVENT_LIST_THEN_MODULES = """
import json, sys
from cartoparty.cli import main
sys.argv = ["cartoparty", "event", "list"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted(sys.modules)))
"""


def test_a_plain_command_does_not_import_the_heavy_libraries(database_url):
    environment = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-c", EVENT_LIST_THEN_MODULES], capture_output=True,
                            text=True, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    modules = {name.partition(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    assert "cartoparty" in modules
    assert modules & HEAVY == set()


def test_the_db_command_brings_its_migrations_with_it(database_url):
    # Flask-Migrate is bound only when `db` runs: the command must still see the project's
    # migrations and the database's revision.
    environment = {**os.environ, "DATABASE_URL": database_url}
    command = [str(Path(sys.executable).with_name("cartoparty")), "db"]
    heads = subprocess.run([*command, "heads"],
                           capture_output=True, text=True, env=environment, timeout=60)
    current = subprocess.run([*command, "current"],
                             capture_output=True, text=True, env=environment, timeout=60)
    assert heads.returncode == 0 and current.returncode == 0, heads.stderr + current.stderr
    head = heads.stdout.split()[0]
    assert f"{head} (head)" in current.stdout


@pytest.fixture
def surveyed_party(event, osm_api):
    """Three new trees and one OSM tree whose species changed in OSM since the match."""
    from osm.test_changes import mapped, surveyed

    from cartoparty.models import Participant
    from cartoparty.osm.conflate import match

    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash="c" * 64,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    party = (event, walker)
    for east in (0, 30, 60):
        surveyed(party, {"species": "Acer"}, east_m=east)
    mapped(party, osm_api, 101, {"natural": "tree", "species": "Tilia"}, east_m=200)
    surveyed(party, {"species": "Tilia cordata"}, east_m=200)
    osm_api.edit("node", 101, tags={"natural": "tree", "species": "Tilia x"})
    match(event)
    db.session.commit()
    return event


def osmium_counts(path):
    answer = subprocess.run(["osmium", "fileinfo", "-e", "-g", "data.count.nodes", str(path)],
                            capture_output=True, text=True, check=True)
    return int(answer.stdout)


def test_export_osc_writes_one_file_per_changeset_and_lists_the_conflicts(runner, surveyed_party,
                                                                          tmp_path):
    target = tmp_path / "party.osc"
    result = runner.invoke(cli, ["export", "osc", "--event", surveyed_party.slug, "-o", str(target),
                                 "--max-changes", "2"])
    assert result.exit_code == 0, result.output
    files = [tmp_path / "party-1.osc", tmp_path / "party-2.osc"]
    assert sorted(tmp_path.iterdir()) == files
    assert sum(osmium_counts(path) for path in files) == 3      # the conflicted modify left out
    for path in files:
        assert f"written to {path}" in result.output
    assert "conflict left out: node/101 species" in result.output and "'Tilia x'" in result.output


def test_export_josm_without_the_osm_api_warns_and_still_writes(runner, surveyed_party, osm_api,
                                                                tmp_path):
    osm_api.down()
    target = tmp_path / "party.osm"
    result = runner.invoke(cli, ["export", "josm", "--event", surveyed_party.slug, "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "only the JOSM file" in result.output
    # The stored data does not know OSM's later edit: the tree is modified at the version
    # stored, which JOSM checks against OSM itself when it uploads.
    assert osmium_counts(target) == 4
    import defusedxml.ElementTree as ElementTree

    (tree,) = [node for node in ElementTree.parse(target).getroot().iter("node")
               if node.get("id") == "101"]
    assert (tree.get("version"), tree.get("action")) == ("3", "modify")


def test_export_osc_without_the_osm_api_fails_in_one_line(runner, surveyed_party, osm_api, tmp_path):
    osm_api.down()
    result = runner.invoke(cli, ["export", "osc", "--event", surveyed_party.slug,
                                 "-o", str(tmp_path / "party.osc")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: The osmChange needs")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arguments, message", [
    (["export", "osc", "--event", "nowhere", "-o", "x.osc"], "no event"),
    (["export", "osc", "--event", "party", "-o", "x.osc", "--max-changes", "10001"], "10001"),
])
def test_export_osc_refuses_bad_arguments(runner, event, arguments, message):
    result = runner.invoke(cli, arguments)
    assert result.exit_code != 0 and message in result.output


def test_upload_sends_the_prepared_changes_with_the_token_of_the_environment(
        runner, surveyed_party, osm_api, app, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_READBACK_DELAY", 0)
    osm_api.add_account("cli-token", display_name="Camille", hourly_limit=10_000)
    from cartoparty.osm import changes

    changes.build(surveyed_party, "cli")
    db.session.commit()
    dry = runner.invoke(cli, ["upload", "--event", surveyed_party.slug, "--dry-run"])
    assert dry.exit_code == 0 and "changeset 1: 3 change(s), 3 new" in dry.output
    assert not [c for c in osm_api.calls if c[0] in ("PUT", "POST")]
    monkeypatch.setenv("OSM_ACCESS_TOKEN", "cli-token")
    result = runner.invoke(cli, ["upload", "--event", surveyed_party.slug])
    assert result.exit_code == 0, result.output
    (changeset,) = list(osm_api.changesets)
    assert f"https://www.openstreetmap.org/changeset/{changeset}" in result.output
    assert "upload of party done" in result.output
    again = runner.invoke(cli, ["upload", "--event", surveyed_party.slug])
    assert again.exit_code == 0 and list(osm_api.changesets) == [changeset]


def test_upload_without_a_token_fails_in_one_line(runner, surveyed_party, monkeypatch):
    monkeypatch.delenv("OSM_ACCESS_TOKEN", raising=False)
    result = runner.invoke(cli, ["upload", "--event", surveyed_party.slug])
    assert result.exit_code == 1 and "no OSM token" in result.output
    assert len(result.output.strip().splitlines()) == 1
