"""Browser tests: the app served for real on 127.0.0.1, driven by Playwright in Debian's Chromium.

No test here may reach the internet. The browser is /usr/bin/chromium (the Debian package, never
a downloaded one), launched with flags that stop its own background traffic; inside a test, the
`phone` context fulfils map tile requests with a blank tile and aborts, records and reports any
other request that leaves 127.0.0.1.

Every test in this directory is marked `commits`: the server answers from its own threads and
connections, so it cannot share the rolled-back connection of tests/conftest.py. Tests remove
what they create (`committed_event` deletes its event and, by cascade, what hangs from it).
"""

import io
import logging
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import make_event
from PIL import Image
from playwright.sync_api import sync_playwright
from sqlalchemy import text
from werkzeug.serving import make_server

from cartoparty.auth import hash_password
from cartoparty.extensions import db
from cartoparty.models import Event, Organiser

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
# These flags keep Chromium from calling home (updates, sync, field trials, QUIC probes), which
# this closed network refuses and no test should depend on.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Same meaning as the glob `**/*tile*/**`: a host or a directory whose name holds "tile".
TILE_URL = re.compile(r"^[a-z]+://(?:[^/]*/)*[^/]*tile[^/]*/", re.IGNORECASE)
PHONE = {
    "viewport": {"width": 360, "height": 640},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "fr-FR",
    "geolocation": {"latitude": 45.565, "longitude": 5.92, "accuracy": 8},
    "permissions": ["geolocation"],
    "service_workers": "allow",
}


DESK = {"viewport": {"width": 1280, "height": 800}, "locale": "fr-FR"}


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/browser/ `commits` (the hook sees the whole session's items)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.commits)


class ErrorLog(logging.Handler):
    """Keeps the ERROR records of the loggers it is attached to, formatted with their traceback."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


class LiveServer:
    """The app on a free port of 127.0.0.1, answering from a daemon thread.

    `errors` collects what the server logged at ERROR level: the app's own log of an unexpected
    exception (its catch-all handler answers 500) and werkzeug's log of one that escaped.
    """

    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._log = ErrorLog()
        self._loggers = [app.logger, logging.getLogger("werkzeug")]
        for logger in self._loggers:
            logger.addHandler(self._log)
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server",
                                        daemon=True)
        self._thread.start()

    @property
    def errors(self):
        return self._log.records

    def take_errors(self):
        """The errors logged since the last call, forgetting them."""
        errors, self._log.records = self._log.records, []
        return errors

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        for logger in self._loggers:
            logger.removeHandler(self._log)


@pytest.fixture(scope="module")
def live_server(app):
    """The session's app served over HTTP; `.url` is "http://127.0.0.1:PORT"."""
    server = LiveServer(app)
    yield server
    server.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, shared by the whole run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium); "
                    "never `playwright install`", pytrace=False)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
    except BaseException:
        playwright.stop()
        raise
    yield browser
    browser.close()
    playwright.stop()


@cache
def tile_png():
    """A plain 256x256 PNG, made once, served for every map tile."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (232, 229, 216)).save(buffer, format="PNG")
    return buffer.getvalue()


def is_external(url):
    """Whether a request would leave this machine (only http(s) and ws(s) URLs ever do)."""
    parts = urlsplit(url)
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in LOCAL_HOSTS


@dataclass
class Network:
    """What the `phone` context asked of the outside world.

    `blocked`: URLs of external requests that were aborted (the test fails at teardown unless
    it takes them with `take_blocked()`); `tiles`: tile URLs answered with `tile_png()`.
    """

    blocked: list[str] = field(default_factory=list)
    tiles: list[str] = field(default_factory=list)

    def take_blocked(self):
        """The blocked URLs so far, forgetting them: for tests that expect a request blocked."""
        blocked, self.blocked = self.blocked, []
        return blocked

    def route(self, route):
        """Answer a request to another host: a tile, or abort it and remember it."""
        url = route.request.url
        if TILE_URL.match(url):
            self.tiles.append(url)
            route.fulfill(status=200, content_type="image/png", body=tile_png(), headers={
                "Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=86400"})
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def route_web_socket(self, websocket):
        self.blocked.append(websocket.url)
        websocket.close(code=1008, reason="no external connections in tests")


@pytest.fixture
def network(live_server):
    """The external-request recorder of `phone`; fails the test at teardown if any was blocked.

    Errors the live server logged during the test (its unexpected exceptions, answered 500)
    fail the test the same way; take expected ones with `live_server.take_errors()`.
    """
    network = Network()
    live_server.take_errors()
    yield network
    problems = []
    if network.blocked:
        problems.append("external requests were attempted (and blocked):\n  "
                        + "\n  ".join(network.blocked))
    errors = live_server.take_errors()
    if errors:
        problems.append("the server logged errors:\n" + "\n".join(errors))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def phone(browser, live_server, network):
    """A Playwright `Page` in a fresh context emulating a phone in Chambéry, on the live server.

    360x640 at 2x, touch, fr-FR, geolocation granted at 45.565, 5.92 (±8 m), service workers
    allowed; relative URLs resolve against `live_server.url` (`phone.goto("/api/presets")`).
    The context is `phone.context`; it is closed after the test.

    Requests to 127.0.0.1/localhost go to the live server untouched. Any other http(s) or
    ws(s) request from the page, its workers or service workers is routed: a map tile (a URL
    matching `**/*tile*/**`, e.g. https://tile.openstreetmap.org/1/0/0.png) gets `tile_png()`;
    anything else is aborted (net::ERR_BLOCKED_BY_CLIENT) and recorded in `network.blocked`,
    which fails the test at teardown. Take expected ones with `network.take_blocked()`.

    `phone.request` (Playwright's API client) does not go through these routes: use it only
    for the live server, never for an external URL.
    """
    yield from _page(browser, live_server, network, PHONE)


def _page(browser, live_server, network, device):
    context = browser.new_context(base_url=live_server.url, **device)
    try:
        context.route(is_external, network.route)
        context.route_web_socket(is_external, network.route_web_socket)
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def desk(browser, live_server, network):
    """Like `phone`, but an organiser's desktop browser: 1280x800, mouse, fr-FR."""
    yield from _page(browser, live_server, network, DESK)


@dataclass(frozen=True)
class CommittedEvent:
    """What tests need of a committed event (an ORM object would outlive its session)."""

    id: int
    slug: str
    join_code: str
    presets: list[str]


@pytest.fixture
def committed_event(app):
    """The event "walk" (tree, bench, defibrillator), committed; deleted after the test
    with its participants, submissions and photos' rows (ON DELETE CASCADE)."""
    with app.app_context():
        event = make_event("walk", presets=("tree", "bench", "defibrillator"))
        committed = CommittedEvent(id=event.id, slug=event.slug, join_code=event.join_code,
                                   presets=list(event.presets))
    yield committed
    with app.app_context():
        db.session.execute(db.delete(Event).where(Event.id == committed.id))
        db.session.commit()


def db_rows(app, sql, **params):
    """The rows of a SQL query run in a fresh app context, so it sees what the server committed:
    `db_rows(app, "SELECT pseudonym FROM participant WHERE event_id = :id", id=event.id)`."""
    with app.app_context():
        return db.session.execute(text(sql), params).all()


def sign_in(page, target, email, password):
    """Open `target` signed out, sign in on the page it leads to (in French), and land back on it."""
    page.goto(target)
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"**{target}")


ORGANISER_EMAIL, ORGANISER_PASSWORD = "alice@example.org", "correct horse"


@pytest.fixture
def organiser_of_walk(app, committed_event):
    """An organiser (ORGANISER_EMAIL, ORGANISER_PASSWORD) of the committed event "walk";
    removed after the test with the other events they created."""
    with app.app_context():
        organiser = Organiser(email=ORGANISER_EMAIL, password_hash=hash_password(ORGANISER_PASSWORD))
        organiser.events.append(db.session.get(Event, committed_event.id))
        db.session.add(organiser)
        db.session.commit()
    yield committed_event
    with app.app_context():
        db.session.execute(text("""
            DELETE FROM event WHERE slug <> 'walk' AND id IN (
                SELECT eo.event_id FROM event_organiser eo JOIN organiser o ON o.id = eo.organiser_id
                WHERE o.email = :email)"""), {"email": ORGANISER_EMAIL})
        db.session.execute(db.delete(Organiser).where(Organiser.email == ORGANISER_EMAIL))
        db.session.commit()
