"""Backup and restore of one event: dumped, then restored into a second, empty database (or
under another slug) it gives the same exports, restitution, review map and photo bytes; a bad
archive or a taken slug is refused in one line and leaves nothing behind."""

import csv
import io
import json
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import (
    SignedInClient,
    a_submission,
    a_verdict,
    join,
    load_reference,
    make_event,
    make_organiser,
    overpass_answer,
    rolled_back,
)
from PIL import Image
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cartoparty import backup, create_app, exports, review
from cartoparty.cli import cli
from cartoparty.extensions import db, upgrade_schema
from cartoparty.models import (
    Event,
    Feedback,
    OsmChangesetLog,
    OsmCheck,
    OsmUpload,
    Participant,
    Photo,
    ReferenceDataset,
    ReferenceRow,
    Submission,
    SubmissionOsm,
    Team,
)
from cartoparty.osm import changes, conflate, store
from cartoparty.osm.check import fail_dead_checks
from cartoparty.reference import checks
from cartoparty.restitution import figures

PARIS = ZoneInfo("Europe/Paris")
EVERYWHERE = {"bbox": "5.9,45.55,5.94,45.58", "zoom": "14"}
TREE_IN_OSM = {"type": "node", "id": 101, "lat": 45.565, "lon": 5.92002, "version": 4,
               "timestamp": "2024-05-01T10:00:00Z", "tags": {"natural": "tree", "genus": "Tilia"}}


def _server(url, database):
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def other_app(database_url, tmp_path_factory):
    """A second app on a second database of the test server, upgraded and empty."""
    name = f"{make_url(database_url).database}_restore"
    with psycopg.connect(_server(database_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    app = create_app({"TESTING": True, "PHOTO_DIR": str(tmp_path_factory.mktemp("other_photos")),
                      "SQLALCHEMY_DATABASE_URI": make_url(database_url).set(database=name)
                      .render_as_string(hide_password=False)})
    app.test_client_class = SignedInClient
    with app.app_context():
        upgrade_schema()
    yield app
    with app.app_context():
        db.engine.dispose()
    with psycopg.connect(_server(database_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def jpeg(colour):
    out = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(out, "JPEG")
    return out.getvalue()


def add_photo(client, walker, client_id, data):
    response = client.post(f"/api/events/party/submissions/{client_id}/photos", headers=walker,
                           data={"photo": (io.BytesIO(data), "photo.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.json


@pytest.fixture
def party(client, fake_overpass):
    """An event with a bit of everything: teams, walkers, points with photos, reviews and their
    audit, a merge, matches from an OSM fetch, a plan of changes, uploads, a check, feedback."""
    answers, _ = fake_overpass
    event = make_event(licence="CC-BY-4.0", match_radii={"tree": 6})
    arbres = Team(event_id=event.id, name="Arbres", presets=["tree"])
    db.session.add(arbres)
    alice = make_organiser(events=[event])
    make_organiser("bob@example.org", events=[event])
    walkers = [join(client, "party", name) for name in ("Camille", "Noor", "Léa")]
    db.session.execute(db.update(Participant).where(Participant.pseudonym == "Noor")
                       .values(team_id=arbres.id))
    bodies = [a_submission(lon=5.92 + step * 0.0004, tags={"species": f"Tilia {step}"})
              for step in range(6)]
    bodies.append(a_submission(preset="bench", lon=5.925, tags={"backrest": "yes"}))
    for number, body in enumerate(bodies):
        response = client.post("/api/events/party/submissions", json=body,
                               headers=walkers[number % 3])
        assert response.status_code == 201, response.json
    add_photo(client, walkers[0], bodies[0]["client_id"], jpeg((20, 120, 40)))
    add_photo(client, walkers[0], bodies[0]["client_id"], jpeg((200, 30, 30)))
    add_photo(client, walkers[1], bodies[1]["client_id"], jpeg((20, 120, 40)))  # the same file
    ids = {body["client_id"]: db.session.scalar(db.select(Submission.id).filter_by(
        client_id=uuid.UUID(body["client_id"]))) for body in bodies}
    review.decide(event, "approve", "alice@example.org", alice.id,
                  client_ids=[body["client_id"] for body in bodies[:5]])
    review.decide(event, "reject", "alice@example.org", alice.id, "gone",
                  client_ids=[bodies[5]["client_id"]])
    # Merged into a point with a higher id: restored in chunks of two, it refers ahead.
    db.session.execute(db.update(Submission).where(Submission.id == ids[bodies[5]["client_id"]])
                       .values(duplicate_of_id=ids[bodies[6]["client_id"]]))
    answers.append(overpass_answer(TREE_IN_OSM))
    store.refresh_from_overpass(event)
    conflate.match(event)
    changes.build(event, "alice@example.org", fetch=False)
    first = ids[bodies[0]["client_id"]]
    db.session.add(SubmissionOsm(submission_id=ids[bodies[2]["client_id"]], osm_type="node",
                                 osm_id=9001, osm_version=1, changeset=42, uploaded_version=1))
    done = OsmUpload(event_id=event.id, organiser_id=alice.id, requested_by="alice", status="done",
                     job_id=7, counts={"sent": 1})
    paused = OsmUpload(event_id=event.id, requested_by="cli", status="paused", job_id=8, counts={})
    db.session.add_all([done, paused, *(OsmCheck(event_id=event.id, job_id=job, status=status,
                                                 fetch_osm=False, requested_by="cli")
                                        for job, status in ((5, "succeeded"), (6, "running")))])
    db.session.flush()
    db.session.add(OsmChangesetLog(
        upload_id=done.id, event_id=event.id, tags={"comment": "party"}, payload_sha256="0" * 64,
        changes=[{"key": f"create/{first}", "action": "create", "submission_ids": [first]}],
        placeholders={"-1": f"create/{first}"}, applied={f"create/{first}": ["node", -1, 1]},
        state="closed", changeset_id=42))
    db.session.add(Feedback(event_id=event.id, learnt="Les tilleuls", improve="", come_again="yes",
                            signature="Noor"))
    db.session.commit()
    return event


def geojson(event, tmp_path):
    """The GeoJSON export without the submissions' ids (new ones in the restored event)."""
    exports.write(event, "geojson", tmp_path / f"{event.slug}.geojson")
    data = json.loads((tmp_path / f"{event.slug}.geojson").read_text(encoding="utf-8"))
    for feature in data["features"]:
        del feature["id"], feature["properties"]["id"]
    return data


def csv_rows(event, tmp_path):
    exports.write(event, "csv", tmp_path / f"{event.slug}.csv")
    with open(tmp_path / f"{event.slug}.csv", encoding="utf-8-sig", newline="") as lines:
        return [row[1:] for row in csv.reader(lines)]  # without the id column


def without_ids(value):
    if isinstance(value, Mapping):  # database rows too
        return {key: without_ids(item) for key, item in value.items()
                if key not in ("id", "participant_id", "team_id")}
    if isinstance(value, list):
        return [without_ids(item) for item in value]
    return value


def review_map(app, slug, email="alice@example.org"):
    """The review map's dashboard and points, as the event's organiser sees them."""
    client = app.test_client()
    organiser_id = db.session.scalar(text("SELECT id FROM organiser WHERE email = :email"),
                                     {"email": email})
    with client.session_transaction() as session:
        session["organiser_id"] = organiser_id
    dashboard = client.get(f"/api/organise/{slug}/dashboard")
    points = client.get(f"/api/organise/{slug}/map", query_string=EVERYWHERE)
    assert dashboard.status_code == points.status_code == 200
    return dashboard.json, without_ids(points.json)


def everything(app, event, tmp_path):
    """What the event shows: exports, restitution, review map, and its photos' bytes."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    photos = db.session.execute(db.select(Photo.sha256, Photo.media_type, Submission.client_id)
                                .join(Submission).where(Submission.event_id == event.id)
                                .order_by(Submission.client_id, Photo.sha256)).all()
    return {
        "geojson": geojson(event, folder),
        "csv": csv_rows(event, folder),
        "restitution": without_ids(figures(event, PARIS)),
        "review_map": review_map(app, event.slug),
        "photos": [(str(client_id), (Path(app.config["PHOTO_DIR"]) / Photo(
            sha256=sha256, media_type=media_type).filename).read_bytes())
            for sha256, media_type, client_id in photos],
    }


def restored_event(slug):
    return db.session.scalar(db.select(Event).filter_by(slug=slug))


def test_an_event_restored_into_an_empty_database_shows_the_same_things(
        app, party, other_app, tmp_path, monkeypatch):
    before = everything(app, party, tmp_path)
    assert len(before["geojson"]["features"]) == 5 and len(before["photos"]) == 3
    manifest = backup.dump(party, tmp_path / "party.zip")
    assert manifest["counts"]["submission"] == 7 and manifest["photos"] == 2
    monkeypatch.setattr(backup, "CHUNK", 2)  # several INSERTs per table, references ahead
    with rolled_back(other_app):
        make_organiser()  # alice has an account there, bob not
        report = backup.restore(tmp_path / "party.zip")
        assert report["organisers"] == ["alice@example.org"]
        assert report["unknown_organisers"] == ["bob@example.org"]
        assert report["photos_copied"] == 2 and report["missing_photos"] == []
        event = restored_event("party")
        assert everything(other_app, event, tmp_path) == before
        assert [organiser.email for organiser in event.organisers] == ["alice@example.org"]
        assert event.join_code == party.join_code  # another database, the same slug: kept


def test_restored_references_point_at_the_restored_rows(app, party, other_app, tmp_path,
                                                        monkeypatch):
    backup.dump(party, tmp_path / "party.zip")
    monkeypatch.setattr(backup, "CHUNK", 2)
    with rolled_back(other_app):
        backup.restore(tmp_path / "party.zip")
        event = restored_event("party")
        client_of = dict(db.session.execute(db.select(Submission.id, Submission.client_id)
                                            .filter_by(event_id=event.id)).all())
        merged = db.session.scalar(db.select(Submission).where(Submission.event_id == event.id,
                                                               Submission.duplicate_of_id.is_not(None)))
        assert merged.duplicate_of_id in client_of and merged.status == "rejected"
        plan = db.session.execute(text("SELECT key, submission_ids FROM osm_change WHERE event_id = :id"),
                                  {"id": event.id}).all()
        assert plan and all(set(ids) <= set(client_of) for _, ids in plan)
        assert all(key.split("/")[1] == str(ids[0]) for key, ids in plan if key.startswith("create/"))
        log = db.session.scalar(db.select(OsmChangesetLog).filter_by(event_id=event.id))
        first = log.changes[0]["submission_ids"][0]
        assert first in client_of and log.placeholders == {"-1": f"create/{first}"}
        assert list(log.applied) == [f"create/{first}"]
        uploads = {upload.status: upload for upload in db.session.scalars(
            db.select(OsmUpload).filter_by(event_id=event.id))}
        assert set(uploads) == {"done", "stopped"} and uploads["done"].job_id is None
        assert uploads["stopped"].error_detail["code"] == "upload_restored"
        assert db.session.scalars(db.select(OsmCheck.job_id).filter_by(event_id=event.id)).all() == [None] * 2
        assert fail_dead_checks(event) == 1  # no job will finish the check that was running


def test_restoring_runs_the_triggers_of_the_walkers_sync_and_the_review_map(party, other_app,
                                                                             tmp_path):
    backup.dump(party, tmp_path / "party.zip")
    with rolled_back(other_app):
        backup.restore(tmp_path / "party.zip")
        event = restored_event("party")
        revision = db.session.scalar(text("SELECT sum(revision) FROM event_revision WHERE event_id = :id"),
                                     {"id": event.id})
        logged = db.session.scalar(text("SELECT sum(sign) FROM submission_change WHERE event_id = :id"),
                                   {"id": event.id})
        stamped = db.session.scalar(text(
            "SELECT bool_and(changed_xid = pg_current_xact_id()) FROM submission WHERE event_id = :id"),
            {"id": event.id})
        assert revision > 0 and logged == 7 and stamped


def test_restored_under_another_slug_in_the_same_database_shows_the_same_things(
        app, runner, party, tmp_path):
    before = everything(app, party, tmp_path)
    dumped = runner.invoke(cli, ["event", "dump", "party", "-o", str(tmp_path / "party.zip")])
    assert dumped.exit_code == 0, dumped.output
    restored = runner.invoke(cli, ["event", "restore", str(tmp_path / "party.zip"), "--slug", "copy"])
    assert restored.exit_code == 0, restored.output
    assert "event copy restored: 7 submission(s)" in restored.output
    copy = restored_event("copy")
    after = everything(app, copy, tmp_path)
    assert after == before
    assert copy.join_code != party.join_code
    codes = db.session.scalars(db.select(Team.join_code).where(Team.name == "Arbres")).all()
    assert len(set(codes)) == 2


def test_every_table_is_dumped_or_left_out_on_purpose(app):
    assert set(db.metadata.tables) == set(backup.TABLES) | set(backup.NOT_DUMPED)


def test_the_archive_holds_every_column_of_every_table_and_no_token(party, tmp_path):
    manifest = backup.dump(party, tmp_path / "party.zip")
    with zipfile.ZipFile(tmp_path / "party.zip") as archive:
        for table in backup.TABLES:
            rows = [json.loads(line) for line in archive.read(f"{table}.jsonl").splitlines()]
            assert len(rows) == manifest["counts"][table]
            if rows:
                assert set(rows[0]) == set(backup._columns(table)), table
        names = archive.namelist()
    assert not any(name.startswith(("osm_account", "organiser_session")) for name in names)
    assert manifest["alembic_revision"] == db.session.scalar(text("SELECT version_num FROM alembic_version"))
    assert manifest["event"] == "party" and manifest["format"] == backup.FORMAT


def rewritten(source, target, change):
    """A copy of the archive with `change(name, bytes)` applied to each member."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            new.writestr(name, change(name, old.read(name)))
    return target


def without_manifest(source, target):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name != "manifest.json":
                new.writestr(name, old.read(name))
    return target


def with_manifest(**values):
    def change(name, data):
        return json.dumps({**json.loads(data), **values}).encode() if name == "manifest.json" else data
    return change


def one_more_submission(name, data):
    if name != "manifest.json":
        return data
    manifest = json.loads(data)
    manifest["counts"]["submission"] += 1
    return json.dumps(manifest).encode()


@pytest.mark.parametrize(("make", "message"), [
    (lambda path, tmp: tmp / "missing.zip", "there is no file"),
    (lambda path, tmp: (tmp / "notes.zip").write_bytes(b"not a zip") and tmp / "notes.zip",
     "notes.zip is not an event archive (not a whole zip file)"),
    (lambda path, tmp: (tmp / "cut.zip").write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
     and tmp / "cut.zip", "cut.zip is not an event archive (not a whole zip file)"),
    (lambda path, tmp: without_manifest(path, tmp / "bare.zip"),
     "bare.zip is not an event archive (no manifest.json)"),
    (lambda path, tmp: rewritten(path, tmp / "new.zip", with_manifest(format=2)),
     "is in archive format 2; this cartoparty reads format 1"),
    (lambda path, tmp: rewritten(path, tmp / "schema.zip", with_manifest(alembic_revision="0123456789ab")),
     "schema 0123456789ab comes from a newer cartoparty"),
    (lambda path, tmp: rewritten(path, tmp / "short.zip", one_more_submission),
     "short.zip is damaged (submission: 7 rows, not 8)"),
])
def test_a_bad_archive_is_refused_in_one_line_and_nothing_is_written(
        runner, party, tmp_path, make, message):
    backup.dump(party, tmp_path / "party.zip")
    db.session.execute(db.update(Event).where(Event.id == party.id).values(slug="before"))
    db.session.commit()
    counts = {table: db.session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
              for table in ("event", "submission", "photo", "submission_change")}
    result = runner.invoke(cli, ["event", "restore", str(make(tmp_path / "party.zip", tmp_path))])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and message in result.output
    assert {table: db.session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
            for table in counts} == counts


def test_a_taken_slug_is_refused_in_one_line(runner, party, tmp_path):
    backup.dump(party, tmp_path / "party.zip")
    result = runner.invoke(cli, ["event", "restore", str(tmp_path / "party.zip")])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: an event 'party' exists already: "
                                     "restore under another slug (--slug)")
    assert db.session.scalar(text("SELECT count(*) FROM event")) == 1


def test_a_damaged_photo_fails_the_restore_and_leaves_no_file_behind(party, other_app, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setitem(other_app.config, "PHOTO_DIR", str(tmp_path / "photos"))
    backup.dump(party, tmp_path / "party.zip")
    names = sorted(name for name in zipfile.ZipFile(tmp_path / "party.zip").namelist()
                   if name.startswith("photos/"))
    damaged = rewritten(tmp_path / "party.zip", tmp_path / "damaged.zip",
                        lambda name, data: jpeg((0, 0, 255)) if name == names[-1] else data)
    with rolled_back(other_app):
        with pytest.raises(backup.BackupError, match="damaged.zip is damaged .* does not match its sha256"):
            backup.restore(damaged)
        assert restored_event("party") is None
        assert db.session.scalar(text("SELECT count(*) FROM submission")) == 0
        assert not [path for path in (tmp_path / "photos").rglob("*") if path.is_file()]


def test_dump_replaces_the_archive_whole_and_warns_of_missing_photo_files(app, runner, party,
                                                                          tmp_path):
    target = tmp_path / "party.zip"
    target.write_bytes(b"an older dump")
    photo = db.session.scalar(db.select(Photo).order_by(Photo.id))
    (Path(app.config["PHOTO_DIR"]) / photo.filename).rename(tmp_path / "aside.jpg")
    try:
        result = runner.invoke(cli, ["event", "dump", "party", "-o", str(target)])
    finally:
        (tmp_path / "aside.jpg").rename(Path(app.config["PHOTO_DIR"]) / photo.filename)
    assert result.exit_code == 0, result.output
    assert f"the file of photo {photo.sha256} is missing" in result.output
    assert zipfile.ZipFile(target).testzip() is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["party.zip"]


def test_a_reference_dataset_its_verdicts_and_settlements_are_restored_linked(client, other_app, tmp_path):
    event = make_event("checked")
    rows = load_reference(event)
    walker = join(client, "checked")
    body = a_verdict(rows["D1"], "moved", lat=45.5652, lon=5.9203)
    assert client.post("/api/events/checked/submissions", json=body, headers=walker).status_code == 201
    verdict = db.session.scalar(db.select(Submission).filter_by(event_id=event.id))
    checks.settle(event, rows["D1"].id, "moved", verdict.id, "alice@example.org")
    db.session.commit()
    backup.dump(event, tmp_path / "checked.zip")
    with rolled_back(other_app):
        backup.restore(tmp_path / "checked.zip")
        restored = restored_event("checked")
        row = db.session.scalar(db.select(ReferenceRow).filter_by(event_id=restored.id, source_id="D1"))
        verdict = db.session.scalar(db.select(Submission).filter_by(event_id=restored.id))
        assert (verdict.reference_row_id, verdict.verdict) == (row.id, "moved")
        assert (row.settled, row.settled_from_id, row.settled_by) == (
            "moved", verdict.id, "alice@example.org")
        assert db.session.get(ReferenceDataset, restored.id).columns[:3] == ["gid", "nom", "lat_coor1"]
        assert {r["source_id"]: r["outcome"] for r in checks.outcomes(restored)} == {
            "D1": "moved", "D2": "not_checked", "D3": "not_checked"}
