"""A phone back online sends what waited in its outbox by batches of up to 50 points, each point
answered on its own; a batch that fails whole is sent again and stores nothing twice."""

import json
import re

import pytest
from playwright.sync_api import expect

from .conftest import db_rows
from .test_walker import ALL_SENT, a_photo, eventually, join, outbox_count, record, submissions

BATCH = re.compile(r"/api/events/walk/submissions/batch$")
SINGLE = re.compile(r"/api/events/walk/submissions$")
PHOTOS = re.compile(r"/api/events/walk/submissions/[^/]+/photos$")


def posts_to(phone, pattern):
    """The list, growing, of the page's POST requests whose URL matches `pattern`."""
    seen = []
    phone.on("request", lambda r: seen.append(r.url) if r.method == "POST" and pattern.search(r.url)
             else None)
    return seen


def save_through_the_outbox(phone, points):
    """Save `points` benches as the form does, through the page's outbox module: recording them
    one by one in the form takes a second each. This outbox never sends; the app's does."""
    phone.evaluate("""async (points) => {
        const { Outbox } = await import("/static/walker/outbox.js");
        const outbox = new Outbox("walk", () => Promise.reject(new TypeError("never sends")));
        outbox.flush = () => {};
        for (let n = 0; n < points; n += 1) {
            await outbox.saveNew({ client_id: crypto.randomUUID(), preset: "bench", lat: 45.565,
                lon: 5.92 + n / 1e6, accuracy: 8, tags: {}, note: `banc ${n}`,
                observed_at: new Date().toISOString() }, []);
        }
    }""", points)


def offline_with(phone, points, photo=False, batches=None):
    """Join, go offline and record `points` benches (the first two in the form, the first of
    them with a photo if asked); none reaches the server. `batches` handles the batch route."""
    join(phone)
    online = []
    if batches:  # routed requests skip the browser's offline mode: refused here as it would
        phone.route(BATCH, lambda route: batches(route) if online else route.abort("internetdisconnected"))
    phone.context.set_offline(True)
    record(phone, "bench", photo=a_photo() if photo else None)
    phone.locator("#toast").evaluate("toast => { toast.hidden = true; }")  # it covers "Ajouter"
    record(phone, "bench")
    save_through_the_outbox(phone, points - 2)
    assert outbox_count(phone) == points
    return online


def back_online(phone, online=None):
    """Go online, and let the batch route's handler (of `offline_with`) answer."""
    if online is not None:
        online.append(True)
    phone.context.set_offline(False)
    phone.evaluate("window.dispatchEvent(new Event('online'))")


def test_sixty_points_recorded_offline_go_in_two_batches_then_the_photo(app, phone, committed_event):
    offline_with(phone, 60, photo=True)
    batches, singles, photos = posts_to(phone, BATCH), posts_to(phone, SINGLE), posts_to(phone, PHOTOS)
    back_online(phone)
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    rows = submissions(app, committed_event)
    assert len(rows) == 60
    assert len({row.client_id for row in rows}) == 60
    assert (len(batches), singles, len(photos)) == (2, [], 1)
    stored_photos = db_rows(app, "SELECT p.id FROM photo p JOIN submission s ON s.id = p.submission_id "
                                 "WHERE s.event_id = :id", id=committed_event.id)
    assert len(stored_photos) == 1
    assert outbox_count(phone) == 0
    expect(phone.locator(".point")).to_have_count(60)


@pytest.mark.parametrize("failure", ["503", "answer lost"])
def test_a_batch_failing_whole_is_sent_again_and_stored_once(app, phone, committed_event, failure):
    calls = []

    def failing_once(route):
        calls.append(route.request.post_data_json)
        if len(calls) > 1:
            route.continue_()
        elif failure == "503":
            route.fulfill(status=503, headers={"Retry-After": "2"}, json={"error": {
                "code": "database_unavailable", "field": None, "message": "", "params": {}}})
        else:  # the server stored them, the phone never heard
            route.fetch()
            route.abort("connectionreset")

    online = offline_with(phone, 5, batches=failing_once)
    back_online(phone, online)
    eventually(phone, lambda: len(calls) >= 1)
    phone.evaluate("window.dispatchEvent(new Event('online'))")  # rather than wait the backoff
    expect(phone.locator("#sync")).to_have_text(ALL_SENT, timeout=30_000)
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the same bodies: the server tells replays from new points
    rows = submissions(app, committed_event)
    assert len(rows) == 5
    assert {row.client_id for row in rows} == {body["client_id"] for body in calls[0]["submissions"]}
    assert outbox_count(phone) == 0


def test_a_point_refused_in_a_batch_is_kept_refused_and_the_others_are_sent(app, phone, committed_event):
    def one_moved_out_of_the_zone(route):
        body = route.request.post_data_json
        body["submissions"][1]["lat"] = 48.85  # as if the phone had recorded it in Paris
        route.continue_(post_data=json.dumps(body))

    online = offline_with(phone, 4, batches=one_moved_out_of_the_zone)
    back_online(phone, online)
    expect(phone.locator("#sync")).to_have_text("1 refusé : touchez le point", timeout=30_000)
    assert len(submissions(app, committed_event)) == 3
    assert outbox_count(phone) == 1
    error = phone.evaluate("""() => new Promise((resolve) => {
        indexedDB.open("cartoparty").onsuccess = (opened) => {
            const read = opened.target.result.transaction("outbox").objectStore("outbox").getAll();
            read.onsuccess = () => resolve(read.result[0].error);
        };
    })""")
    assert (error["code"], error["field"]) == ("outside_zone", "lat")
