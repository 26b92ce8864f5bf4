"""A walker's personal data: exported whole, erased on request (their own phone, an organiser,
the command line) or by itself once the event's retention period has passed; their points stay,
anonymous, and every page and export still works on them."""

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import a_submission, join, make_event, make_organiser
from test_api import assert_conforms
from test_organise import csrf, says
from test_photos import jpeg_with_exif

from cartoparty import exports, privacy
from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.lookalikes import skeleton
from cartoparty.models import AuditEntry, Event, Feedback, Participant, Photo, Status, Submission
from cartoparty.restitution import figures

NOW = datetime.now(UTC)
NOTE = "sous le porche de chez moi, 12 rue des Lilas"
TAGS = {"natural": "tree", "species": "Tilia cordata"}


@pytest.fixture
def event():
    """An event that ended yesterday (its feedback is open), kept 90 days."""
    return make_event(starts_at=NOW - timedelta(days=1, hours=3), ends_at=NOW - timedelta(days=1))


def record(client, walker, **values):
    """A point with a note and a photo; returns its client_id."""
    body = a_submission(note=NOTE, **values)
    assert client.post("/api/events/party/submissions", json=body, headers=walker).status_code == 201
    photo = client.post(f"/api/events/party/submissions/{body['client_id']}/photos", headers=walker,
                        data={"photo": (io.BytesIO(jpeg_with_exif()), "photo.jpg")})
    assert photo.status_code == 201
    return body["client_id"]


@pytest.fixture
def camille(client, event):
    """A walker with a point (note, photo) and a signed feedback."""
    walker = join(client, "party", "Camille")
    record(client, walker)
    answer = {"learnt": "Les tilleuls", "improve": "", "come_again": "yes", "sign": True}
    assert client.post("/api/events/party/feedback", json=answer, headers=walker).status_code == 201
    return walker


def participant(pseudonym):
    return db.session.scalar(db.select(Participant).filter_by(pseudonym=pseudonym))


def photo_paths(app):
    return {path.name for path in Path(app.config["PHOTO_DIR"]).rglob("*.jpg")}


def assert_erased(app, participant_id, actor, files_before):
    """The participant's personal data is gone; their points stay."""
    db.session.expire_all()
    erased = db.session.get(Participant, participant_id)
    assert erased.pseudonym == f"anonyme-{participant_id}"
    assert erased.erased_at is not None and erased.erased_by == actor
    points = db.session.scalars(db.select(Submission).filter_by(participant_id=participant_id)).all()
    assert points and all(point.note == "" for point in points)
    assert all(point.tags == TAGS for point in points)
    assert not db.session.scalars(db.select(Photo).join(Submission)
                                  .where(Submission.participant_id == participant_id)).all()
    assert len(photo_paths(app)) < len(files_before)
    assert db.session.scalar(db.select(db.func.count()).select_from(Feedback)
                             .where(Feedback.signature.is_not(None))) == 0
    audit = db.session.scalars(db.select(AuditEntry).filter_by(action="erase")).all()
    assert {entry.actor for entry in audit} == {actor}
    assert NOTE not in json.dumps([[entry.before, entry.after] for entry in audit])


def read_zip(data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    return json.loads(archive.read("participant.json")), archive.namelist()


# The module


def test_erase_after_counts_from_the_end_else_the_start_else_the_creation():
    end, start = datetime(2026, 6, 13, 13, tzinfo=UTC), datetime(2026, 6, 13, 10, tzinfo=UTC)
    assert privacy.erase_after(Event(ends_at=end, starts_at=start, retention_days=90)) == \
        end + timedelta(days=90)
    assert privacy.erase_after(Event(starts_at=start, retention_days=7)) == start + timedelta(days=7)
    created = make_event("undated", retention_days=30)
    assert privacy.erase_after(created) == created.created_at + timedelta(days=30)


def test_export_holds_everything_about_the_participant_and_their_photos(client, camille):
    data, names = read_zip(privacy.export_participant(participant("Camille")))
    assert data["participant"]["pseudonym"] == "Camille"
    assert data["participant"]["consented_at"]
    assert data["event"]["slug"] == "party"
    [point] = data["points"]
    assert (point["preset"], point["note"], point["tags"]) == ("tree", NOTE, TAGS)
    assert point["status"] == "pending" and point["lat"] and point["lon"]
    assert [name for name in names if name.startswith("photos/")] == point["photos"]
    assert [answer["learnt"] for answer in data["feedback"]] == ["Les tilleuls"]


def test_export_leaves_out_other_walkers_and_unsigned_feedback(client, camille):
    other = join(client, "party", "Noor")
    record(client, other)
    answer = {"learnt": "Rien", "improve": "", "come_again": "no"}
    assert client.post("/api/events/party/feedback", json=answer, headers=other).status_code == 201
    data, names = read_zip(privacy.export_participant(participant("Noor")))
    assert len(data["points"]) == 1 and data["feedback"] == []
    assert len([name for name in names if name.startswith("photos/")]) == 1


def test_erasing_keeps_the_points_and_removes_the_rest(app, client, camille):
    files = photo_paths(app)
    camille_id = participant("Camille").id
    assert privacy.erase([camille_id], "retention") == 1
    assert_erased(app, camille_id, "retention", files)
    assert client.get("/api/events/party/feedback", headers=camille).status_code == 401


def test_erasing_twice_does_nothing_more(app, client, camille):
    camille_id = participant("Camille").id
    assert privacy.erase([camille_id], "walker") == 1
    assert privacy.erase(db.select(Participant.id), "retention") == 0
    assert db.session.get(Participant, camille_id).erased_by == "walker"
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)
                             .filter_by(action="erase")) == 1


def test_a_photo_another_point_shares_keeps_its_file(app, client, camille):
    noor = join(client, "party", "Noor")
    record(client, noor)  # the same picture
    files = photo_paths(app)
    privacy.erase([participant("Camille").id], "walker")
    assert photo_paths(app) == files
    assert db.session.scalar(db.select(db.func.count()).select_from(Photo)) == 1


def test_the_erased_pseudonym_is_free_and_its_name_takes_no_walkers_place(client, camille):
    camille_id = participant("Camille").id
    privacy.erase([camille_id], "walker")
    join(client, "party", "Camille")  # the pseudonym can be taken again
    join(client, "party", f"anonyme-{camille_id}")  # and the neutral one too: no clash
    assert db.session.get(Participant, camille_id).pseudonym_skeleton != skeleton(f"anonyme-{camille_id}")


def test_earlier_audit_entries_forget_the_note(client, camille, event):
    organiser = make_organiser(events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    point = db.session.scalar(db.select(Submission))
    response = client.post(f"/api/organise/party/submissions/{point.id}/approve",
                           json={"version": point.version},
                           headers={"X-CSRFToken": csrf(client, "/organise/party/settings")})
    assert response.status_code == 200, response.json
    privacy.erase([participant("Camille").id], organiser.email, organiser.id)
    entries = db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [entry.action for entry in entries] == ["approve", "erase"]
    assert entries[0].before["note"] == entries[0].after["note"] == ""
    assert entries[0].after["status"] == "approved"  # the rest of the history stays


# The walker's own routes


def test_walker_downloads_their_data_then_erases_it(app, client, camille):
    response = client.get("/api/events/party/me/data", headers=camille)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    assert_conforms(response, "/api/events/{slug}/me/data", "get")
    data, _ = read_zip(response.data)
    assert data["participant"]["pseudonym"] == "Camille"
    files, camille_id = photo_paths(app), participant("Camille").id
    response = client.delete("/api/events/party/me", headers=camille)
    assert response.status_code == 200 and response.json == {"erased": True}
    assert_conforms(response, "/api/events/{slug}/me", "delete")
    assert_erased(app, camille_id, "walker", files)
    for again in (client.get("/api/events/party/me/data", headers=camille),
                  client.delete("/api/events/party/me", headers=camille)):
        assert again.status_code == 401
        assert again.json["error"]["field"] == "Authorization"


@pytest.mark.parametrize("method", ["get", "delete"])
def test_my_data_needs_a_walker_of_this_event(client, camille, method):
    make_event("other")
    path = {"get": "/api/events/{slug}/me/data", "delete": "/api/events/{slug}/me"}[method]
    url = path.format(slug="party")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 401
        assert_conforms(response, path, method)
    assert getattr(client, method)(path.format(slug="other"), headers=camille).status_code == 401
    missing = getattr(client, method)(path.format(slug="nowhere"), headers=camille)
    assert missing.status_code == 404 and missing.json["error"]["field"] == "slug"
    assert participant("Camille").erased_at is None


# The organiser's page


def test_the_participants_page_lists_walkers_with_their_points_and_says_what_stays(
        client, organiser, camille):
    join(client, "party", "<b>Noor</b>")
    page = client.get("/organise/party/participants").get_data(as_text=True)
    assert "Camille" in page and "&lt;b&gt;Noor&lt;/b&gt;" in page and "<b>Noor" not in page
    assert "ODbL" in page
    assert "/organise/party/participants/" in page
    assert 'href="/organise/party/participants"' in client.get("/organise/party").get_data(as_text=True)


def test_organiser_downloads_a_walkers_data(client, organiser, camille):
    camille_id = participant("Camille").id
    response = client.get(f"/organise/party/participants/{camille_id}/data.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert read_zip(response.data)[0]["participant"]["pseudonym"] == "Camille"


def test_organiser_erases_a_walker_after_confirming(app, client, organiser, camille):
    camille_id, files = participant("Camille").id, photo_paths(app)
    url = f"/organise/party/participants/{camille_id}/erase"
    token = csrf(client, "/organise/party/participants")
    unconfirmed = client.post(url, data={"csrf_token": token})
    assert unconfirmed.status_code == 422 and says(unconfirmed, "erase_unconfirmed")
    assert participant("Camille").erased_at is None
    response = client.post(url, data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 302
    assert_erased(app, camille_id, organiser.email, files)
    page = client.get(response.location).get_data(as_text=True)
    assert f"anonyme-{camille_id}" in page


def test_erasing_needs_the_csrf_token_and_an_organiser_of_the_event(client, organiser, camille):
    camille_id = participant("Camille").id
    url = f"/organise/party/participants/{camille_id}/erase"
    assert client.post(url, data={"confirm": "yes"}).status_code == 400
    other = make_event("other")
    make_organiser("bob@example.org", events=[other])
    foreign = db.session.scalar(db.select(Participant.id).filter_by(pseudonym="Camille"))
    assert client.post(f"/organise/other/participants/{foreign}/erase",
                       data={"csrf_token": csrf(client, "/organise/party/participants"),
                             "confirm": "yes"}).status_code == 403
    assert client.get(f"/organise/party/participants/{camille_id + 1000}/data.zip").status_code == 404
    assert participant("Camille").erased_at is None


# The command line


def test_cli_exports_a_participant(runner, camille, tmp_path):
    target = tmp_path / "camille.zip"
    result = runner.invoke(cli, ["participant", "export", "--event", "party", "Camille",
                                 "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert read_zip(target.read_bytes())[0]["participant"]["pseudonym"] == "Camille"


def test_cli_erases_after_asking(app, runner, camille):
    camille_id, files = participant("Camille").id, photo_paths(app)
    refused = runner.invoke(cli, ["participant", "erase", "--event", "party", "Camille"], input="n\n")
    assert refused.exit_code == 1 and participant("Camille") is not None
    result = runner.invoke(cli, ["participant", "erase", "--event", "party", "Camille"], input="y\n")
    assert result.exit_code == 0, result.output
    assert_erased(app, camille_id, "command line", files)


@pytest.mark.parametrize("command", [["erase", "--yes"], ["export", "-o", "unused.zip"]])
def test_cli_says_an_unknown_pseudonym_in_one_line(runner, camille, command):
    result = runner.invoke(cli, ["participant", command[0], "--event", "party", "Nobody", *command[1:]])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: no participant 'Nobody' in party"]


# Retention


def past_retention(client):
    """An event that ended 91 days ago, with a walker who recorded a point."""
    make_event("old", starts_at=NOW - timedelta(days=91, hours=3), ends_at=NOW - timedelta(days=91))
    walker = join(client, "old", "Ancien")
    body = a_submission(note=NOTE)
    assert client.post("/api/events/old/submissions", json=body, headers=walker).status_code == 201
    return walker


def test_retention_erases_only_events_past_their_period(app, client, camille):
    old = past_retention(client)
    old_id = participant("Ancien").id
    erased, _ = privacy.run_retention()
    assert erased == 1
    assert db.session.get(Participant, old_id).erased_by == "retention"
    assert db.session.scalar(db.select(Submission.note).filter_by(participant_id=old_id)) == ""
    assert client.get("/api/events/old/feedback", headers=old).status_code == 401
    assert participant("Camille").erased_at is None  # ended yesterday: kept 90 days
    assert client.get("/api/events/party/feedback", headers=camille).status_code == 200
    assert privacy.run_retention() == (0, 0)


def test_a_shorter_retention_period_erases_sooner(client, camille, event):
    event.retention_days = 1
    db.session.commit()
    assert privacy.run_retention()[0] == 1
    assert participant("Camille") is None


def test_retention_deletes_jobs_finished_long_ago(app, client):
    rows = db.session.execute(db.text("""
        INSERT INTO procrastinate_jobs (queue_name, task_name)
        VALUES ('default', 'old'), ('default', 'recent'), ('default', 'waiting')
        RETURNING id, task_name""")).all()
    ids = {name: id_ for id_, name in rows}
    # As a worker moves them along (procrastinate's triggers write the events).
    for status in ("doing", "succeeded"):
        db.session.execute(db.text("UPDATE procrastinate_jobs SET status = :status "
                                   "WHERE task_name IN ('old', 'recent')"), {"status": status})
    db.session.execute(db.text("UPDATE procrastinate_jobs SET status = 'failed' "
                               "WHERE task_name = 'recent'"))
    db.session.execute(db.text("UPDATE procrastinate_events SET at = now() - interval '31 days' "
                               "WHERE job_id IN (:old, :waiting)"), ids)
    assert privacy.run_retention() == (0, 1)
    # (other tests' committed jobs may be there too: only these three count)
    left = set(db.session.scalars(db.text("SELECT task_name FROM procrastinate_jobs "
                                          "WHERE id = ANY(:ids)"), {"ids": list(ids.values())}))
    assert left == {"recent", "waiting"}


def test_the_worker_defers_retention_every_hour(app):
    from cartoparty import jobs

    queue = jobs.queue(app)
    [periodic] = [task for task in queue.periodic_registry.periodic_tasks.values()
                  if task.task.name == "retention"]
    assert periodic.cron == privacy.RETENTION_CRON


def test_the_retention_job_runs_as_the_worker_calls_it(client):
    past_retention(client)
    privacy.retention_job(timestamp=int(NOW.timestamp()))
    assert participant("Ancien") is None


def test_cli_runs_retention_once(runner, client):
    past_retention(client)
    result = runner.invoke(cli, ["retention", "run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 participant(s) erased")


# What works on anonymous data


def test_exports_restitution_and_review_work_after_erasure(app, client, camille, event, tmp_path):
    from zoneinfo import ZoneInfo

    organiser = make_organiser(events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    db.session.execute(db.update(Submission).values(status=Status.approved))
    db.session.commit()
    camille_id = participant("Camille").id
    privacy.erase([camille_id], "walker")
    written = {fmt: exports.write(event, fmt, tmp_path / f"export-{fmt}") for fmt in exports.FORMATS}
    assert written["geojson"] == written["csv"] == 1 and written["photos"] == 0
    by_participant = figures(event, ZoneInfo("Europe/Paris"))["by_participant"]
    assert [row["pseudonym"] for row in by_participant] == [f"anonyme-{camille_id}"]
    assert client.get("/organise/party/restitution").status_code == 200
    listed = client.get("/api/organise/party/list")
    assert listed.status_code == 200, listed.json
    assert client.get("/api/events/party/submissions.geojson").status_code == 200
