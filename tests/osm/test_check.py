"""Checks against OSM as background jobs: the organisers' routes, checks run by procrastinate's
worker in-process against a local Overpass, and the `cartoparty worker` command."""

import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import a_submission, join, make_event, make_organiser, overpass_answer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from test_api import assert_conforms, csrf

from cartoparty import jobs
from cartoparty.cli import cli
from cartoparty.extensions import db
from cartoparty.models import Event, Match, Organiser, OsmCheck, OsmElement, OsmSnapshot
from cartoparty.osm import check as osm_check
from cartoparty.osm import conflate, store
from cartoparty.osm.overpass import Element

CARTOPARTY = Path(sys.executable).parent / "cartoparty"
OSM = "/api/organise/party/osm"
CHECK = "/api/organise/party/osm/check"
OVERVIEW, ASK = "/api/organise/{slug}/osm", "/api/organise/{slug}/osm/check"
# 2 m east of the walkers' default point (conftest.INSIDE), the same kind, without species.
TREE = {"type": "node", "id": 101, "lat": 45.565, "lon": 5.92002, "version": 4,
        "timestamp": "2024-05-01T10:00:00Z", "tags": {"natural": "tree", "genus": "Tilia"}}
BENCH = {"type": "way", "id": 201, "center": {"lat": 45.566, "lon": 5.921}, "version": 2,
         "timestamp": "2023-01-01T00:00:00Z", "nodes": [1, 2, 3, 1], "tags": {"amenity": "bench"}}
NO_COUNTS = {"new": 0, "existing": 0, "update": 0, "ambiguous": 0, "duplicate": 0}


def jobs_of(check_ids):
    """procrastinate's rows for these checks' jobs: (task name, args, status)."""
    return db.session.execute(text("""
        SELECT j.task_name, j.args, j.status::text FROM procrastinate_jobs j
        JOIN osm_check c ON c.job_id = j.id WHERE c.id = ANY(:ids) ORDER BY j.id"""),
        {"ids": list(check_ids)}).all()


def fetched(event, minutes_ago, source="overpass http://127.0.0.1/api/interpreter"):
    """Pretend the event's OSM data was fetched (or imported) that many minutes ago."""
    db.session.add(OsmSnapshot(event_id=event.id, source=source, element_count=0,
                               fetched_at=datetime.now(UTC) - timedelta(minutes=minutes_ago)))
    db.session.commit()


# The routes, in the test's rolled-back transaction: jobs are queued, no worker runs them.

def test_overview_of_an_event_never_checked(client, organiser, walker):
    client.post("/api/events/party/submissions", json=a_submission(), headers=walker)
    response = client.get(OSM)
    assert response.status_code == 200
    assert response.json == {"snapshot": None, "checks": [],
                             "outcomes": {**NO_COUNTS, "unmatched": 1}}
    assert_conforms(response, OVERVIEW, "get")


def test_asking_queues_a_check_and_its_job_together(client, event, organiser):
    response = client.post(CHECK, json={}, headers=csrf(client))
    assert response.status_code == 202
    assert_conforms(response, ASK, "post")
    check = response.json["check"]
    assert {key: check[key] for key in ("status", "step", "fetch", "error", "counts",
                                        "requested_by", "started_at", "finished_at")} == {
        "status": "queued", "step": "", "fetch": True, "error": None, "counts": None,
        "requested_by": "alice@example.org", "started_at": None, "finished_at": None}
    assert jobs_of([check["id"]]) == [("osm_check", {"check_id": check["id"], "force": False}, "todo")]
    overview = client.get(OSM).json
    assert overview["checks"] == [check]


def test_a_body_may_be_left_out(client, organiser):
    response = client.post(CHECK, headers=csrf(client))
    assert response.status_code == 202
    assert response.json["check"]["fetch"] is True


def test_asking_again_meanwhile_gets_the_same_check(client, organiser):
    first = client.post(CHECK, json={"fetch": True}, headers=csrf(client))
    again = client.post(CHECK, json={"force": True}, headers=csrf(client))
    assert again.status_code == 200
    assert again.json == first.json
    assert_conforms(again, ASK, "post")
    assert len(jobs_of([first.json["check"]["id"]])) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 1


def test_a_check_inserted_meanwhile_by_another_request_is_the_answer(client, event, organiser,
                                                                     monkeypatch):
    other = queued_check(event, job_status="todo")
    seen = iter([None])  # the other request had not committed when this one looked
    real = osm_check.active_check
    monkeypatch.setattr(osm_check, "active_check", lambda event: next(seen, None) or real(event))
    response = client.post(CHECK, json={}, headers=csrf(client))
    assert response.status_code == 200
    assert response.json["check"]["id"] == other.id
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 1


def test_a_running_check_is_answered_too(client, organiser):
    first = client.post(CHECK, json={}, headers=csrf(client)).json["check"]
    db.session.execute(text("UPDATE osm_check SET status = 'running' WHERE id = :id"), {"id": first["id"]})
    db.session.execute(text("""UPDATE procrastinate_jobs SET status = 'doing', worker_id = (
        SELECT procrastinate_register_worker_v1()) WHERE id = (SELECT job_id FROM osm_check
        WHERE id = :id)"""), {"id": first["id"]})
    db.session.commit()
    again = client.post(CHECK, json={}, headers=csrf(client))
    assert again.status_code == 200
    assert (again.json["check"]["id"], again.json["check"]["status"]) == (first["id"], "running")


def test_fetching_again_within_five_minutes_is_429_unless_forced(client, event, organiser):
    fetched(event, minutes_ago=2)
    refused = client.post(CHECK, json={"fetch": True}, headers=csrf(client))
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "osm_too_soon"
    assert "less than 5 minutes ago" in refused.json["error"]["message"]
    assert_conforms(refused, ASK, "post")
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0
    forced = client.post(CHECK, json={"fetch": True, "force": True}, headers=csrf(client))
    assert forced.status_code == 202
    assert jobs_of([forced.json["check"]["id"]])[0][1] == {
        "check_id": forced.json["check"]["id"], "force": True}


@pytest.mark.parametrize(("minutes_ago", "source"), [
    (6, "overpass http://127.0.0.1/api/interpreter"), (1, "file chambery.osm.pbf")])
def test_fetching_is_allowed_after_five_minutes_or_after_an_import(client, event, organiser,
                                                                     minutes_ago, source):
    fetched(event, minutes_ago, source)
    assert client.post(CHECK, json={}, headers=csrf(client)).status_code == 202


def test_matching_again_needs_no_wait(client, event, organiser):
    fetched(event, minutes_ago=1)
    response = client.post(CHECK, json={"fetch": False}, headers=csrf(client))
    assert response.status_code == 202
    assert response.json["check"]["fetch"] is False


def test_matching_without_any_osm_data_is_refused(client, event, organiser):
    db.session.add(OsmSnapshot(event_id=event.id, source="", element_count=0,
                               last_error="Overpass failed", last_error_at=datetime.now(UTC)))
    db.session.commit()
    response = client.post(CHECK, json={"fetch": False}, headers=csrf(client))
    assert response.status_code == 422
    assert response.json["error"]["field"] == "fetch"
    assert_conforms(response, ASK, "post")


@pytest.mark.parametrize(("body", "field"), [
    ({"fetch": "yes"}, "fetch"), ({"fetch": None}, "fetch"), ({"force": 1}, "force"),
    ({"fetch": True, "colour": "red"}, "colour"), ({"event": "party"}, "event"),
])
def test_bad_bodies_are_422_naming_the_field(client, organiser, body, field):
    response = client.post(CHECK, json=body, headers=csrf(client))
    assert response.status_code == 422
    assert response.json["error"]["field"] == field
    assert_conforms(response, ASK, "post")
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("fetch=true", "application/x-www-form-urlencoded", 415), ("[true]", "application/json", 400),
    ('{"fetch": tru', "application/json", 400)])
def test_bodies_that_are_not_a_json_object_are_refused(client, organiser, data, content_type, status):
    response = client.post(CHECK, data=data, content_type=content_type, headers=csrf(client))
    assert response.status_code == status
    assert_conforms(response, ASK, "post")


@pytest.mark.parametrize(("method", "url"), [("get", OSM), ("post", CHECK)])
def test_only_the_event_organisers_may_see_or_ask(client, event, organiser, method, url):
    headers = csrf(client)
    path = OVERVIEW if method == "get" else ASK
    unknown = getattr(client, method)(url.replace("/party/", "/nowhere/"), json={}, headers=headers)
    assert (unknown.status_code, unknown.json["error"]["field"]) == (404, "slug")
    assert_conforms(unknown, path, method)
    stranger = make_organiser("bob@example.org", events=[make_event("other")])
    with client.session_transaction() as session:
        session["organiser_id"] = stranger.id
    forbidden = getattr(client, method)(url, json={}, headers=headers)
    assert forbidden.status_code == 403
    assert_conforms(forbidden, path, method)
    with client.session_transaction() as session:
        del session["organiser_id"]
    signed_out = getattr(client, method)(url, json={}, headers=headers)
    assert signed_out.status_code == 401
    assert_conforms(signed_out, path, method)
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0


def test_a_walker_token_cannot_ask(client, event, walker):
    response = client.post(CHECK, json={}, headers=walker)
    assert response.status_code == 401
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0


def test_asking_with_the_session_needs_the_csrf_token(client, organiser):
    response = client.post(CHECK, json={})
    assert response.status_code == 400
    assert_conforms(response, ASK, "post")
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0


def test_scripts_ask_with_http_basic_and_no_token(client, event):
    make_organiser(events=[event])
    response = client.post(CHECK, json={}, auth=("alice@example.org", "correct horse"))
    assert response.status_code == 202


def test_outcomes_count_the_matches_and_what_is_unmatched(client, organiser, walker):
    ids = [client.post("/api/events/party/submissions", json=a_submission(), headers=walker).json["id"]
           for _ in range(4)]
    db.session.add_all([Match(submission_id=ids[0], outcome="new"),
                        Match(submission_id=ids[1], outcome="duplicate", duplicate_of_id=ids[0])])
    db.session.execute(text("UPDATE submission SET status = 'rejected' WHERE id = :id"), {"id": ids[3]})
    db.session.commit()
    outcomes = client.get(OSM).json["outcomes"]
    assert outcomes == {**NO_COUNTS, "new": 1, "duplicate": 1, "unmatched": 1}


def test_the_ten_latest_checks_are_listed_newest_first(client, event, organiser):
    db.session.add_all([OsmCheck(event_id=event.id, fetch_osm=True, requested_by="cli", status="succeeded",
                                 step=f"check {n}", counts=NO_COUNTS) for n in range(12)])
    db.session.commit()
    response = client.get(OSM)
    assert [check["step"] for check in response.json["checks"]] == [f"check {n}" for n in range(11, 1, -1)]
    assert_conforms(response, OVERVIEW, "get")


def queued_check(event, job_status=None, heartbeat_age=None):
    """A check queued with a job in this procrastinate status (None: no job at all), run by a
    worker last heard of `heartbeat_age` ago (None: no worker)."""
    worker_id = db.session.scalar(text("""
        INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - :age) RETURNING id"""),
        {"age": heartbeat_age}) if heartbeat_age is not None else None
    job_id = db.session.scalar(text("""
        INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id)
        VALUES ('default', 'osm_check', '{}', CAST(:status AS procrastinate_job_status), :worker)
        RETURNING id"""), {"status": job_status, "worker": worker_id}) if job_status else -1
    check = OsmCheck(event_id=event.id, fetch_osm=True, requested_by="cli", job_id=job_id,
                     status="queued" if job_status in (None, "todo") else "running")
    db.session.add(check)
    db.session.commit()
    return check


@pytest.mark.parametrize(("job_status", "heartbeat_age"), [
    (None, None), ("failed", None), ("succeeded", None), ("doing", None),
    ("doing", timedelta(minutes=5))])
def test_a_check_no_worker_will_finish_is_failed_and_a_new_one_may_be_asked(
        client, event, organiser, job_status, heartbeat_age):
    dead = queued_check(event, job_status, heartbeat_age)
    [check] = client.get(OSM).json["checks"]
    assert (check["id"], check["status"]) == (dead.id, "failed")
    assert "worker stopped" in check["error"] and check["finished_at"]
    assert client.post(CHECK, json={}, headers=csrf(client)).status_code == 202


@pytest.mark.parametrize(("job_status", "heartbeat_age"), [
    ("todo", None), ("doing", timedelta(seconds=5))])
def test_a_check_waiting_for_a_worker_or_running_on_a_live_one_stays(
        client, event, organiser, job_status, heartbeat_age):
    alive = queued_check(event, job_status, heartbeat_age)
    [check] = client.get(OSM).json["checks"]
    assert (check["id"], check["status"]) == (alive.id, alive.status)
    assert client.post(CHECK, json={}, headers=csrf(client)).status_code == 200


def test_cli_queues_a_check(runner, event):
    result = runner.invoke(cli, ["osm", "check", "--event", "party"])
    assert result.exit_code == 0, result.output
    check = db.session.scalar(db.select(OsmCheck))
    assert result.output == f"check {check.id} of party queued; 'cartoparty worker' runs it\n"
    assert (check.requested_by, check.fetch_osm) == ("cli", True)
    again = runner.invoke(cli, ["osm", "check", "--event", "party"])
    assert again.output == f"check {check.id} of party is already queued\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--event", "nowhere"], "there is no event 'nowhere'"),
    (["--event", "party", "--no-fetch"], "There is no OSM data for this event yet"),
])
def test_cli_check_refusals_are_one_line(runner, event, args, message):
    result = runner.invoke(cli, ["osm", "check", *args])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)) == 0


def test_conninfo_is_a_libpq_uri():
    assert jobs.conninfo("postgresql+psycopg://carto:p%40ss@db:5432/carto") == \
        "postgresql://carto:p%40ss@db:5432/carto"


def test_job_queue_is_built_once_with_every_registered_task(app):
    queue = jobs.queue(app)
    assert jobs.queue(app) is queue
    assert set(jobs.TASKS) <= set(queue.tasks)
    assert osm_check.TASK in queue.tasks


# Checks run by procrastinate's worker: they commit for real, from the worker's own thread.

@pytest.fixture
def party(app):
    """A committed event with an organiser (HTTP Basic) and one walker's tree 2 m from TREE;
    removed afterwards with its checks and their jobs."""
    event = make_event("job-party", presets=("tree", "bench"))
    organiser = make_organiser("jobs@example.org", events=[event])
    client = app.test_client()
    walker = join(client, "job-party")
    tree = client.post("/api/events/job-party/submissions", headers=walker,
                       json=a_submission(tags={"species": "Tilia cordata"})).json["id"]
    yield event, client, tree
    db.session.rollback()
    db.session.execute(text("""DELETE FROM procrastinate_jobs WHERE id IN (
        SELECT job_id FROM osm_check WHERE event_id = :id)"""), {"id": event.id})
    # Submissions first: deleting them by cascade from the event, the revision trigger would
    # bump the revision of an event already gone.
    db.session.execute(text("DELETE FROM submission WHERE event_id = :id"), {"id": event.id})
    db.session.execute(db.delete(Event).where(Event.id == event.id))
    db.session.execute(db.delete(Organiser).where(Organiser.id == organiser.id))
    db.session.commit()


BASIC = ("jobs@example.org", "correct horse")


def ask(client, **body):
    response = client.post("/api/organise/job-party/osm/check", json=body, auth=BASIC)
    assert response.status_code == 202, response.json
    return response.json["check"]["id"]


def overview(client):
    response = client.get("/api/organise/job-party/osm", auth=BASIC)
    assert response.status_code == 200
    assert_conforms(response, OVERVIEW, "get")
    return response.json


def work(app):
    """Run the queued jobs in this process, as `cartoparty worker --once` would.

    In a thread of its own: its event loop must not meet the one Playwright's browser tests
    leave running in the main thread when the whole suite runs."""
    failures = []

    def run():
        try:
            jobs.run_worker(app, wait=False, signals=False, listen_notify=False)
        except BaseException as error:  # noqa: BLE001 (raised again in the test's thread)
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if failures:
        raise failures[0]
    db.session.expire_all()


@pytest.mark.commits
def test_a_check_fetches_then_matches_every_point(app, party, fake_overpass):
    event, client, tree = party
    answers, queries = fake_overpass
    answers.append(overpass_answer(TREE, BENCH))
    check_id = ask(client)
    work(app)
    state = overview(client)
    [check] = state["checks"]
    assert (check["id"], check["status"], check["error"]) == (check_id, "succeeded", None)
    assert check["step"] == "matched 1 submission"
    assert check["counts"] == {**NO_COUNTS, "update": 1}
    moments = [datetime.fromisoformat(check[name]) for name in ("queued_at", "started_at", "finished_at")]
    assert moments == sorted(moments)
    assert state["snapshot"]["element_count"] == 2
    assert state["snapshot"]["source"].startswith("overpass http://127.0.0.1")
    assert state["outcomes"] == {**NO_COUNTS, "update": 1, "unmatched": 0}
    assert len(queries) == 1
    match = db.session.get(Match, tree)
    assert (match.outcome, match.osm_type, match.osm_id) == ("update", "node", 101)
    assert jobs_of([check_id])[0][2] == "succeeded"


@pytest.mark.commits
def test_organisers_asking_at_once_get_one_check(app, party):
    event, _, _ = party
    start, answers = threading.Barrier(6), []

    def ask_at_once():
        client = app.test_client()
        start.wait()
        answers.append(client.post("/api/organise/job-party/osm/check", json={}, auth=BASIC))

    threads = [threading.Thread(target=ask_at_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [202]
    [check_id] = {answer.json["check"]["id"] for answer in answers}
    assert len(jobs_of([check_id])) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(OsmCheck)
                             .where(OsmCheck.event_id == event.id)) == 1


@pytest.mark.commits
def test_matching_again_asks_overpass_nothing(app, party, fake_overpass):
    event, client, tree = party
    _, queries = fake_overpass
    store.store(event, [Element("node", 7, 1, None, {"natural": "tree", "species": "Tilia cordata"},
                              45.565, 5.92001)], "file trees.osm")
    db.session.commit()
    check_id = ask(client, fetch=False)
    work(app)
    [check] = overview(client)["checks"]
    assert (check["id"], check["status"], check["counts"]) == (check_id, "succeeded",
                                                                {**NO_COUNTS, "existing": 1})
    assert queries == []


def matches_of(event):
    return db.session.execute(text("""
        SELECT m.submission_id, m.outcome, m.osm_id, m.matched_at FROM match m
        JOIN submission s ON s.id = m.submission_id WHERE s.event_id = :id"""), {"id": event.id}).all()


@pytest.mark.commits
@pytest.mark.parametrize(("failure", "error"), [
    ((429, b"Too Many Requests"), "HTTP 429"),
    ((500, b"<html>Internal error</html>"), "HTTP 500"),
    ((200, b'{"version": 0.6, "elements": [{"type": "node", "id": 1'), "truncated or malformed JSON"),
    (overpass_answer(remark='runtime error: Query timed out in "query" at line 3 after 61 seconds.'),
     "runtime error: Query timed out"),
])
def test_a_failed_fetch_fails_the_check_and_changes_nothing(app, party, fake_overpass, failure, error):
    event, client, tree = party
    answers, _ = fake_overpass
    store.store(event, [Element("node", 7, 1, None, {"natural": "tree"}, 45.565, 5.92001)], "file t.osm")
    conflate.match(event)
    db.session.commit()
    matches_before = matches_of(event)
    answers.extend([failure] * 3)
    check_id = ask(client, force=True)
    work(app)
    state = overview(client)
    [check] = state["checks"]
    assert (check["id"], check["status"], check["counts"]) == (check_id, "failed", None)
    assert check["error"].startswith("Overpass failed at every endpoint") and error in check["error"]
    assert check["step"] == "fetching OSM data" and check["finished_at"]
    assert state["snapshot"]["element_count"] == 1
    assert state["snapshot"]["source"] == "file t.osm"
    assert state["snapshot"]["last_error"] == check["error"]
    assert check["error_detail"]["code"] == "overpass_failed"
    assert state["snapshot"]["last_error_detail"] == check["error_detail"]
    elements = db.select(OsmElement.osm_id).where(OsmElement.event_id == event.id)
    assert db.session.scalars(elements).all() == [7]
    assert matches_of(event) == matches_before
    assert state["outcomes"] == {**NO_COUNTS, "update": 1, "unmatched": 0}
    # An expected failure ends the job normally (no traceback in the worker's log): the check says it.
    assert jobs_of([check_id])[0][2] == "succeeded"


@pytest.mark.commits
def test_a_fetch_made_meanwhile_fails_the_unforced_check(app, party, fake_overpass):
    event, client, _ = party
    answers, queries = fake_overpass
    check_id = ask(client)
    fetched(event, minutes_ago=1)  # e.g. `cartoparty osm fetch` before the worker got to it
    work(app)
    [check] = overview(client)["checks"]
    assert (check["id"], check["status"]) == (check_id, "failed")
    assert "less than 5 minutes ago" in check["error"]
    assert queries == [] and matches_of(event) == []


@pytest.mark.commits
def test_an_unexpected_failure_is_reported_and_rolled_back(app, party, fake_overpass, monkeypatch):
    event, client, _ = party
    answers, _ = fake_overpass
    answers.append(overpass_answer(TREE))

    def broken(event):
        db.session.execute(text("INSERT INTO match (submission_id, outcome) "
                                "SELECT id, 'new' FROM submission WHERE event_id = :id"), {"id": event.id})
        raise KeyError("preset")

    monkeypatch.setattr(conflate, "match", broken)
    check_id = ask(client)
    work(app)
    [check] = overview(client)["checks"]
    assert (check["id"], check["status"]) == (check_id, "failed")
    assert check["error"].startswith("The check failed unexpectedly (KeyError)")
    assert check["error_detail"] == {"code": "check_crashed", "params": {"kind": "KeyError"}}
    assert check["step"] == "matching 1 submission"
    assert matches_of(event) == []
    assert jobs_of([check_id])[0][2] == "failed"


# The `cartoparty worker` command, in a process of its own on the tests' database.

def worker_process(database_url, *args, **env):
    return subprocess.Popen([str(CARTOPARTY), "worker", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "DATABASE_URL": database_url, **env})


def read_until(process, wanted, seconds=60):
    """The worker's output up to the first line holding `wanted` (select() waits, not sleep)."""
    lines, deadline = [], time.monotonic() + seconds
    while not lines or wanted not in lines[-1]:
        assert time.monotonic() < deadline, "".join(lines)
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if ready:
            line = process.stdout.readline()
            assert line, f"the worker ended: {''.join(lines)}"
            lines.append(line)
    return "".join(lines)


@pytest.mark.commits
def test_worker_command_runs_the_queued_checks_once(app, party, database_url, fake_overpass):
    event, client, tree = party
    answers, _ = fake_overpass
    answers.append(overpass_answer(TREE))
    check_id = ask(client)
    process = worker_process(database_url, "--once", OVERPASS_URL=app.config["OVERPASS_URL"][0])
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    db.session.expire_all()
    check = db.session.get(OsmCheck, check_id)
    assert (check.status, check.counts) == ("succeeded", {**NO_COUNTS, "update": 1}), output
    assert db.session.get(Match, tree).outcome == "update"


@pytest.mark.commits
@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGTERM]])
def test_worker_command_stops_cleanly_on_a_signal(database_url, signals):
    process = worker_process(database_url)
    try:
        read_until(process, "Starting worker")
        for signum in signals:
            process.send_signal(signum)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert f"{signals[0].name}: stopping once the running job is finished" in output
    assert "Traceback" not in output
    workers = db.session.scalar(text("SELECT count(*) FROM procrastinate_workers"))
    assert workers == 0


@pytest.fixture
def empty_database(database_url):
    """The URL of a database with nothing in it (no migration run), dropped afterwards."""
    url = make_url(database_url)
    name = f"{url.database}_empty"
    server = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_worker_command_on_a_database_not_upgraded_says_so_in_one_line(empty_database):
    process = worker_process(empty_database)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert output == "Error: the job queue is missing: run 'cartoparty db upgrade' first\n"


def test_worker_command_without_a_database_says_so_in_one_line():
    process = worker_process("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert output.startswith("cartoparty: cannot reach the database: "), output
    assert len(output.strip().splitlines()) == 1
