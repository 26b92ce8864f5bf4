"""Walker sync benchmark (not a test): what a phone downloads after each point it sends, in an
event of 8,000 points, against downloading the whole event each time as phones did before.

    .venv/bin/python bench/walker_sync.py [--rows 8000] [--points 30]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, loads an event (a third of the points pending, half approved, the rest rejected)
with one INSERT ... SELECT, serves the app under gunicorn on a free loopback port, joins as a
walker and, for each point it sends, syncs from its last cursor; it also fetches the whole
event as the organisers' GeoJSON (what every phone was sent before: all points, all statuses).
Then it drops the database, always.
"""

import argparse
import os
import statistics
import sys
import time
import uuid

import psycopg
import requests
from common import create_database as new_database
from common import dsn, free_port, machine, run, serving, throwaway_database

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

SLUG = "sync"
WEST, SOUTH, EAST, NORTH = 5.90, 45.55, 5.94, 45.58
ZONE = {"type": "Polygon", "coordinates": [[
    [WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH], [WEST, NORTH], [WEST, SOUTH]]]}

WALKERS = """
    INSERT INTO participant (event_id, pseudonym, token_hash, consented_at)
    SELECT %(event)s, 'Walker ' || k, md5('token' || k) || md5('salt' || k), now()
    FROM generate_series(1, 60) AS k
"""
POINTS = """
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags,
                            note, observed_at, status, version, body_sha256)
    SELECT %(event)s, (SELECT min(id) FROM participant) + i %% 60, gen_random_uuid(), 'tree',
           ST_SetSRID(ST_MakePoint(%(west)s + (%(east)s - %(west)s) * random(),
                                   %(south)s + (%(north)s - %(south)s) * random()), 4326),
           5, '{"natural": "tree", "leaf_type": "broadleaved", "genus": "Platanus"}',
           'un platane devant le numéro ' || i, now(),
           (ARRAY['pending', 'approved', 'approved', 'approved', 'rejected', 'pending'])[1 + i %% 6]
               ::submission_status, 1, md5('body' || i) || md5('sha' || i)
    FROM generate_series(1, %(rows)s) AS i
"""


def create_database(base_url, name, rows):
    """Create, migrate and fill database `name`; return its URL."""
    from cartoparty.auth import hash_password
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event, Organiser
    from cartoparty.zones import read_zone

    url = new_database(base_url, name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_schema()
        event = Event(slug=SLUG, name="Bench sync", zone=read_zone(ZONE), presets=["tree"])
        organiser = Organiser(email="bench@example.org", password_hash=hash_password("bench"))
        organiser.events.append(event)
        db.session.add(organiser)
        db.session.commit()
        event_id = event.id
        db.engine.dispose()
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        conn.execute(WALKERS, {"event": event_id})
        conn.execute(POINTS, {"event": event_id, "rows": rows, "west": WEST, "south": SOUTH,
                              "east": EAST, "north": NORTH})
        conn.execute("VACUUM ANALYZE")
    return url


def timed_get(session, url, **options):
    """(milliseconds, bytes, JSON) of one GET."""
    began = time.perf_counter()
    response = session.get(url, timeout=60, **options)
    response.raise_for_status()
    return 1000 * (time.perf_counter() - began), len(response.content), response.json()


def measure(base, points):
    """Send `points` points as a walker, syncing after each; print both ways side by side."""
    walker = requests.Session()
    joined = walker.post(f"{base}/api/events/{SLUG}/participants",
                         json={"pseudonym": "Bench", "consent": True}, timeout=10).json()
    walker.headers["Authorization"] = f"Bearer {joined['token']}"
    organiser = requests.Session()
    organiser.auth = ("bench@example.org", "bench")
    geojson = f"{base}/api/events/{SLUG}/submissions.geojson"
    first_ms, first_bytes, answer = timed_get(walker, geojson)
    cursor = answer["cursor"]
    synced, whole = [], []
    for n in range(points):
        body = {"client_id": str(uuid.uuid4()), "preset": "tree", "lat": 45.565, "lon": 5.92,
                "tags": {"leaf_type": "broadleaved"}, "note": f"point {n}"}
        walker.post(f"{base}/api/events/{SLUG}/submissions", json=body, timeout=10).raise_for_status()
        ms, size, answer = timed_get(walker, geojson, params={"since": cursor})
        assert [f["id"] for f in answer["features"]] == [body["client_id"]], answer
        cursor = answer["cursor"]
        synced.append((ms, size))
        whole.append(timed_get(organiser, geojson)[:2])
    print(f"walker's first sync (own points and others' approved ones): {first_bytes / 1024:.0f} KiB "
          f"in {first_ms:.0f} ms")
    for label, runs in (("sync since the last cursor", synced), ("whole event, as before", whole)):
        times, sizes = [ms for ms, _ in runs], [size for _, size in runs]
        print(f"{label:>28}: median {statistics.median(times):7.1f} ms, "
              f"max {max(times):7.1f} ms, {statistics.median(sizes) / 1024:8.1f} KiB per point sent")
    ratio_time = statistics.median(t for t, _ in whole) / statistics.median(t for t, _ in synced)
    ratio_size = statistics.median(s for _, s in whole) / statistics.median(s for _, s in synced)
    print(f"ratio whole / sync: {ratio_time:.0f}x the time, {ratio_size:.0f}x the bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8000, help="points in the event (8000)")
    parser.add_argument("--points", type=int, default=30, help="points the walker sends (30)")
    args = parser.parse_args()
    print(machine())
    with throwaway_database("sync") as (base_url, name):
        url = create_database(base_url, name, args.rows)
        port = free_port()
        with serving(url, port, 1, SLUG):
            print(f"{args.rows} points; gunicorn with 1 sync worker; one client over loopback")
            measure(f"http://127.0.0.1:{port}", args.points)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
