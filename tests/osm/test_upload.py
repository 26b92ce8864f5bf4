"""Uploading the plan to OSM (a local, stateful stand-in of the OSM API): every change once and
only once, whatever fails on the way, and nothing of another mapper's work lost."""

import pytest
from osm.test_changes import mapped, party_fixture, plan, surveyed  # noqa: F401 (a fixture)
from sqlalchemy import text

from cartoparty.extensions import db
from cartoparty.i18n import translate
from cartoparty.models import OsmChangesetLog, OsmUpload, Submission, SubmissionOsm
from cartoparty.osm import api, changes, upload

TOKEN = "token-of-camille-the-mapper"


@pytest.fixture(autouse=True)
def no_wait(app, monkeypatch):
    monkeypatch.setitem(app.config, "OSM_READBACK_DELAY", 0)


@pytest.fixture
def account(osm_api):
    return osm_api.add_account(TOKEN, display_name="Camille", hourly_limit=10_000)


def prepared(party, osm_api):
    """Two new trees and a tree in OSM that gains a species."""
    mapped(party, osm_api, 101, {"natural": "tree", "leaf_type": "broadleaved"}, east_m=80)
    points = [surveyed(party, {"species": "Acer"}), surveyed(party, {"species": "Quercus"}, east_m=30),
              surveyed(party, {"species": "Tilia cordata"}, east_m=80)]
    plan(party)
    return points


def start(party):
    run = OsmUpload(event_id=party[0].id, requested_by="test", status="queued", counts={})
    db.session.add(run)
    db.session.flush()
    return run


def trees(osm_api):
    """What OSM holds: every visible tree, by (lat, lon) to 7 decimals → tags."""
    return {(round(e.lat, 7), round(e.lon, 7)): e.tags for e in osm_api.elements.values()
            if e.visible and e.osm_type == "node" and e.tags.get("natural") == "tree"}


def linked(submission_id):
    """(osm_type, osm_id, osm_version, changeset) of an uploaded point, or Nones."""
    row = db.session.get(SubmissionOsm, submission_id, populate_existing=True)
    return (row.osm_type, row.osm_id, row.osm_version, row.changeset) if row else (None,) * 4


def test_an_upload_creates_and_modifies_once_in_three_requests(party, osm_api, account):
    new, other, update = prepared(party, osm_api)
    before = len(osm_api.requests)
    run = upload.run(start(party), TOKEN)
    assert run.status == "done"
    writes = [r for r in osm_api.calls[before:] if r[0] in ("PUT", "POST")]
    assert [method for method, _ in writes] == ["PUT", "POST", "PUT"]   # create, upload, close
    held = trees(osm_api)
    assert len(held) == 3
    assert sorted(tags.get("species") for tags in held.values()) == ["Acer", "Quercus", "Tilia cordata"]
    assert osm_api.elements["node", 101].tags == {"natural": "tree", "leaf_type": "broadleaved",
                                                 "species": "Tilia cordata"}
    assert osm_api.elements["node", 101].version == 4
    osm_type, osm_id, version, changeset = linked(new)
    assert (osm_type, version) == ("node", 1) and osm_api.elements["node", osm_id].tags["species"] == "Acer"
    assert linked(update) == ("node", 101, 4, changeset)
    assert changes.ready_changes(party[0]) == []


def test_uploading_again_sends_nothing_already_sent(party, osm_api, account):
    prepared(party, osm_api)
    upload.run(start(party), TOKEN)
    changes.build(party[0], "alice")          # the plan made again after the upload
    assert changes.ready_changes(party[0]) == []
    before = len(osm_api.calls)
    assert upload.run(start(party), TOKEN).status == "done"
    assert [c for c in osm_api.calls[before:] if c[0] in ("PUT", "POST")] == []
    assert len(trees(osm_api)) == 3


def test_a_connection_dropped_after_osm_applied_the_upload_is_read_back_not_resent(party, osm_api,
                                                                                   account):
    prepared(party, osm_api)
    osm_api.drop_after_apply()
    run = upload.run(start(party), TOKEN)
    assert run.status == "done"
    assert len(trees(osm_api)) == 3                             # nothing doubled
    uploads = [c for c in osm_api.calls if c[0] == "POST"]
    assert len(uploads) == 1
    (entry,) = db.session.scalars(db.select(OsmChangesetLog)).all()
    assert entry.state == "closed" and len(entry.applied) == 3
    assert all(linked(i)[1] for i in (s for item in entry.changes for s in item["submission_ids"]))


def test_a_connection_dropped_before_osm_applied_it_is_sent_again_once(party, osm_api, account):
    prepared(party, osm_api)
    osm_api.drop_before_apply()
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3
    assert len([c for c in osm_api.calls if c[0] == "POST"]) == 2


def test_a_worker_killed_mid_upload_resumes_from_the_log(party, osm_api, account, monkeypatch):
    prepared(party, osm_api)
    real = api.upload

    def killed(*args, **kwargs):
        real(*args, **kwargs)            # OSM applies it…
        raise SystemExit("killed")        # …and the worker dies before recording anything

    monkeypatch.setattr(api, "upload", killed)
    with pytest.raises(SystemExit):
        upload.run(start(party), TOKEN)
    db.session.rollback()
    monkeypatch.setattr(api, "upload", real)
    (entry,) = db.session.scalars(db.select(OsmChangesetLog)).all()
    assert entry.state == "sending"
    db.session.execute(text("UPDATE osm_upload SET status = 'failed'"))
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3
    assert len([c for c in osm_api.calls if c[0] == "POST"]) == 1


def test_someone_editing_a_feature_meanwhile_is_merged_not_overwritten(party, osm_api, account):
    _, _, update = prepared(party, osm_api)
    # After the plan was built, another mapper adds a height: our modify is now stale.
    osm_api.edit("node", 101, tags={"natural": "tree", "leaf_type": "broadleaved", "height": "9"})
    assert upload.run(start(party), TOKEN).status == "done"
    assert osm_api.elements["node", 101].tags == {
        "natural": "tree", "leaf_type": "broadleaved", "height": "9", "species": "Tilia cordata"}
    assert linked(update)[:3] == ("node", 101, 5)
    assert len(trees(osm_api)) == 3


def test_a_clash_found_at_upload_goes_back_to_review(party, osm_api, account):
    _, _, update = prepared(party, osm_api)
    osm_api.edit("node", 101, tags={"natural": "tree", "leaf_type": "broadleaved", "species": "Tilia x"})
    assert upload.run(start(party), TOKEN).status == "done"
    assert osm_api.elements["node", 101].tags["species"] == "Tilia x"      # theirs kept
    assert linked(update)[1] is None
    (waiting,) = [c for c in changes.items(party[0]) if update in c.submission_ids]
    assert waiting.conflicts["species"]["osm"] == "Tilia x" and waiting.conflicts["species"]["choice"] is None
    assert len(trees(osm_api)) == 3       # the two new trees went anyway


def test_the_hourly_limit_pauses_and_says_when_it_goes_on(party, osm_api):
    osm_api.add_account(TOKEN, display_name="New mapper", hourly_limit=2)
    mapped(party, osm_api, 101, {"natural": "tree"}, east_m=80)
    for east in (0, 30, 60):
        surveyed(party, {"species": "Acer"}, east_m=east)
    plan(party, max_changes="2")                   # two changesets: 2 changes, then 1
    run = upload.run(start(party), TOKEN)
    assert run.status == "paused" and run.resume_at is not None
    assert run.error_detail["code"] == "osm_rate_limited"
    assert run.error_detail["params"]["left"] == 1
    assert len(trees(osm_api)) == 3                # the first changeset went, not the second
    text_fr = translate("fr", "error.osm_rate_limited", **run.error_detail["params"])
    assert "1 000 changements par heure" in text_fr and run.error_detail["params"]["at"] in text_fr
    osm_api.advance(3601)                          # an hour later, the account may send again
    assert upload.run(run, TOKEN).status == "done"
    assert len(trees(osm_api)) == 4


def test_a_revoked_token_stops_the_upload_with_the_reason(party, osm_api, account):
    prepared(party, osm_api)
    run = upload.run(start(party), "not-a-token")
    assert run.status == "stopped" and run.error_detail["code"] == "osm_token_refused"
    assert len(trees(osm_api)) == 1


def test_a_feature_deleted_since_goes_back_to_review_and_the_rest_goes(party, osm_api, account):
    _, _, update = prepared(party, osm_api)
    osm_api.delete("node", 101)
    # Deleted after the plan was built: OSM answers 410 to our modify… or, since a version
    # mismatch is checked too, 409: either way the tree is not re-created nor modified.
    assert upload.run(start(party), TOKEN).status == "done"
    assert not osm_api.elements["node", 101].visible
    assert linked(update)[1] is None
    assert len(trees(osm_api)) == 2


def test_a_changeset_too_large_for_the_account_is_split(party, osm_api, account):
    osm_api.max_bbox_size = 0.0001
    prepared(party, osm_api)
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3
    assert len(upload.changesets_of(db.session.scalars(db.select(OsmUpload)).all()[-1])) >= 2


def test_a_point_corrected_after_its_upload_becomes_a_modify_of_its_element(party, osm_api, account):
    new, _, _ = prepared(party, osm_api)
    upload.run(start(party), TOKEN)
    _, osm_id, version, _ = linked(new)
    submission = db.session.get(Submission, new)
    submission.tags = {**submission.tags, "species": "Acer campestre"}
    submission.version += 1
    db.session.flush()
    changes.build(party[0], "alice")
    (modify,) = changes.ready_changes(party[0])
    assert (modify.action, modify.osm_id, modify.base_version) == ("modify", osm_id, version)
    assert upload.run(start(party), TOKEN).status == "done"
    assert osm_api.elements["node", osm_id].tags["species"] == "Acer campestre"
    assert len(trees(osm_api)) == 3


def test_a_close_that_fails_does_not_stop_the_upload(party, osm_api, account):
    prepared(party, osm_api)
    osm_api.fail_next(500, "Internal Server Error", when=r"PUT /changeset/\d+/close")
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3


def test_a_worker_killed_after_opening_a_changeset_opens_another_and_sends_once(
        party, osm_api, account, monkeypatch):
    prepared(party, osm_api)
    real = api.create_changeset

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        raise SystemExit("killed")

    monkeypatch.setattr(api, "create_changeset", killed)
    with pytest.raises(SystemExit):
        upload.run(start(party), TOKEN)
    db.session.rollback()
    monkeypatch.setattr(api, "create_changeset", real)
    db.session.execute(text("UPDATE osm_upload SET status = 'failed'"))
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3
    assert len(osm_api.changesets) == 2          # the first stays empty and closes by itself


def test_the_api_failing_before_anything_is_sent_stops_and_the_next_run_carries_on(
        party, osm_api, account):
    prepared(party, osm_api)
    osm_api.fail_next(503, "Service Unavailable", when="PUT /changeset/create")
    first = upload.run(start(party), TOKEN)
    assert first.status == "stopped" and first.error_detail["code"] == "osm_api_failed"
    assert len(trees(osm_api)) == 1
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3


def test_an_upload_time_out_is_read_back(party, osm_api, account, app, monkeypatch):
    prepared(party, osm_api)
    monkeypatch.setitem(app.config, "OSM_API_TIMEOUT", 1)
    osm_api.hang_next(3, when=r"POST /changeset/\d+/upload", applied=True)
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3
    assert len([c for c in osm_api.calls if c[0] == "POST"]) == 1


def test_an_upload_still_being_applied_when_read_back_is_waited_for_not_resent(
        party, osm_api, account, app, monkeypatch):
    prepared(party, osm_api)
    monkeypatch.setitem(app.config, "OSM_API_TIMEOUT", 1)     # the upload gives up after 2 s…
    osm_api.slow_upload(3)                                  # …while OSM takes 3 s to apply it
    assert upload.run(start(party), TOKEN).status == "done"
    assert len(trees(osm_api)) == 3                         # applied once, never resent
    assert len([c for c in osm_api.calls if c[0] == "POST"]) == 1
