"""Shared fixtures: one throwaway PostGIS database built by the migrations, each test
rolled back (SQLAlchemy's "join a session into an external transaction" recipe)."""

import json
import os
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

os.environ.setdefault("SECRET_KEY", "tests-only-secret")

from cartoparty import config, create_app, localdb  # noqa: E402
from cartoparty.auth import hash_password, start_session  # noqa: E402
from cartoparty.extensions import db, upgrade_schema  # noqa: E402
from cartoparty.models import Event, JoinRate, Organiser, SignInFailure  # noqa: E402
from cartoparty.zones import read_zone  # noqa: E402

# A square of about 1.1 km around Chambéry's Place Saint-Léger (lon, lat).
# ../shared/data beside the checkout (real extracts and answers); tests that read it skip
# cleanly when it is absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

ZONE = {"type": "Polygon", "coordinates": [[
    [5.915, 45.560], [5.930, 45.560], [5.930, 45.570], [5.915, 45.570], [5.915, 45.560]]]}
INSIDE = {"lat": 45.565, "lon": 5.92}


def _server_dsn(url, database):
    url = make_url(url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url():
    """A new, empty database on the development server, dropped at the end of the run."""
    if not os.environ.get("DATABASE_URL"):
        localdb.ensure_running()
    base = config.database_url()
    name = f"cartoparty_test_{os.getpid()}"
    with psycopg.connect(_server_dsn(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_server_dsn(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    app = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PHOTO_DIR": str(tmp_path_factory.mktemp("photos")),
    })
    app.test_client_class = SignedInClient
    with app.app_context():
        upgrade_schema()
    return app


class SignedInClient(FlaskClient):
    """The test client; `session["organiser_id"] = …` in its session_transaction() also opens
    the server-side session that signing in opens (auth.start_session)."""

    @contextmanager
    def session_transaction(self, *args, **kwargs):
        with super().session_transaction(*args, **kwargs) as session:
            before = session.get("organiser_id")
            yield session
            organiser_id = session.get("organiser_id")
            if organiser_id is not None and (organiser_id != before
                                             or "organiser_session" not in session):
                session["organiser_session"] = start_session(organiser_id)
                db.session.commit()


@pytest.fixture(autouse=True)
def _rolled_back(request, app):
    """Run the test in a transaction that is rolled back; views' commits become savepoints."""
    if request.node.get_closest_marker("commits"):
        with app.app_context():
            yield
            # Joins and failed sign-ins are counted per address, 127.0.0.1 for every test: those
            # a test committed must not slow down the next ones.
            db.session.execute(db.delete(JoinRate))
            db.session.execute(db.delete(SignInFailure))
            db.session.commit()
        return
    with rolled_back(app):
        yield


@contextmanager
def rolled_back(app):
    """Work in `app` (and its database) in a transaction rolled back at the end; commits inside
    become savepoints. The session in use before comes back afterwards."""
    original = db.session
    with app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        db.session = scoped_session(sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False))
        try:
            yield
        finally:
            db.session.remove()
            db.session = original
            transaction.rollback()
            connection.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def make_event(slug="party", presets=("tree", "bench", "defibrillator"), **values):
    """An event in Chambéry with a few presets."""
    event = Event(slug=slug, name=values.pop("name", "Cartopartie du quartier"),
                  zone=read_zone(values.pop("zone", ZONE)), presets=list(presets), **values)
    db.session.add(event)
    db.session.commit()
    return event


@pytest.fixture
def event():
    return make_event()


def join(client, slug, pseudonym="Camille"):
    """Join an event as a walker; return the Authorization header."""
    response = client.post(f"/api/events/{slug}/participants",
                           json={"pseudonym": pseudonym, "consent": True})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


@pytest.fixture
def walker(client, event):
    return join(client, event.slug)


def a_submission(**values):
    """A valid submission body for the `event` fixture."""
    return {"client_id": str(uuid.uuid4()), "preset": "tree", **INSIDE, "accuracy": 6,
            "tags": {"species": "Tilia cordata"}, "note": "", "observed_at":
            "2026-06-13T10:15:00+02:00", **values}


def make_organiser(email="alice@example.org", password="correct horse", events=()):
    """An organiser account, organising `events`."""
    organiser = Organiser(email=email, password_hash=hash_password(password))
    organiser.events.extend(events)
    db.session.add(organiser)
    db.session.commit()
    return organiser


@pytest.fixture
def organiser(client, event):
    """An organiser of `event`, signed in on `client`."""
    organiser = make_organiser(events=[event])
    with client.session_transaction() as session:
        session["organiser_id"] = organiser.id
    return organiser


def overpass_answer(*elements, remark=None):
    """(status, body) of an answer in Overpass's JSON format (`[out:json]`)."""
    body = {"version": 0.6, "generator": "Overpass API 0.7.62", "osm3s": {
        "timestamp_osm_base": "2026-11-23T10:00:00Z", "copyright": "ODbL"}, "elements": list(elements)}
    if remark:
        body["remark"] = remark
    return 200, json.dumps(body).encode()


@pytest.fixture
def fake_overpass(app, monkeypatch):
    """A local Overpass that plays the (status, body) answers put in its `answers` list, one per
    request (then 500s), and keeps the queries; the app's OVERPASS_URL points at it."""
    answers, queries = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            queries.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            status, body = answers.pop(0) if answers else (500, b"no answer scripted")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(app.config, "OVERPASS_URL",
                        [f"http://127.0.0.1:{server.server_port}/api/interpreter"])
    monkeypatch.setitem(app.config, "OVERPASS_BACKOFF", 0)
    yield answers, queries
    server.shutdown()
    server.server_close()


@pytest.fixture
def osm_api(app, monkeypatch):
    """A local OSM API (tests/osm/osm_api.py) that the app's OSM_API_URL points at."""
    from osm.osm_api import OsmApiStandIn  # tests/osm, a namespace package beside this file

    stand_in = OsmApiStandIn()
    monkeypatch.setitem(app.config, "OSM_API_URL", stand_in.url)
    yield stand_in
    stand_in.close()


# A town's defibrillators in schema-dae 1.0.7, three of them in the Chambéry zone.
TOWN_DAE = ("gid,nom,lat_coor1,long_coor1,acc,acc_lib,acc_etg,acc_complt,disp_j,disp_h,tel1\n"
            "D1,Mairie,45.5650,5.9200,Intérieur,oui,0,Hall d'accueil,7j/7,24h/24,+33479000000\n"
            "D2,Ecole,45.5660,5.9210,Extérieur,non,,Sous le préau,lundi|mardi,heures ouvrables,\n"
            "D3,Gymnase,45.5640,5.9190,Intérieur,oui,1,,non renseigné,non renseigné,\n")


def load_reference(event, data=TOWN_DAE, kind="dae", **options):
    """Import `data` as the event's reference dataset and commit; return the rows by source_id."""
    from cartoparty.models import ReferenceRow
    from cartoparty.reference.store import import_reference

    import_reference(event, data.encode(), f"town.{'geojson' if kind == 'geojson' else 'csv'}",
                     kind, **options)
    db.session.commit()
    return {row.source_id: row for row in db.session.scalars(
        db.select(ReferenceRow).filter_by(event_id=event.id))}


def a_verdict(row, verdict, **values):
    """A walker's verdict on reference `row`, where the town says it is, as the phone sends it."""
    lat, lon = db.session.execute(db.select(db.func.ST_Y(row.geom), db.func.ST_X(row.geom))).one()
    return a_submission(**{"preset": "defibrillator", "lat": lat, "lon": lon, "tags": {},
                           "reference": row.id, "verdict": verdict, **values})
