"""Review map benchmark (not a test): how fast organisers get the map, list and counts of an
event with 100,000 submissions, against serving the whole event as one GeoJSON.

    .venv/bin/python bench/review_map.py [--rows 100000] [--workers 2]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, loads one town-sized event with one INSERT ... SELECT, serves the app under
gunicorn on a free port and asks it over loopback as a signed-in organiser (a Flask session
cookie), one request at a time; the pan/zoom script runs twice: back to back, then at a person's
pace while walkers add points (straight into the database, once a second), since a worker
recounts its cluster grid after a change; then it drops the database, always.
"""

import argparse
import math
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
import requests
from common import create_database as new_database
from common import dsn, free_port, machine, run, serving, throwaway_database

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

SLUG = "review"
WEST, SOUTH, EAST, NORTH = 5.88, 45.54, 5.96, 45.60  # Chambéry and around, about 6 × 6.7 km
ZONE = {"type": "Polygon", "coordinates": [[
    [WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH], [WEST, NORTH], [WEST, SOUTH]]]}
SCREEN = (1280, 800)  # the organiser's map, in pixels
TEAMS = ("Arbres", "Mobilier urbain", "Santé")

WALKERS = """
    INSERT INTO participant (event_id, team_id, pseudonym, token_hash, consented_at)
    SELECT %(event)s, CASE WHEN k %% 10 = 0 THEN NULL ELSE (%(teams)s)[1 + k %% 3] END,
           'Walker ' || k, md5('token' || k) || md5('salt' || k), now()
    FROM generate_series(1, %(walkers)s) AS k
"""

# 70 % of the points along 120 streets of 200 m to 1 km (a few of them much busier), 15 % around
# 8 squares, 15 % anywhere in the zone; positions jittered by a few metres.
SUBMISSIONS = """
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags,
                            note, observed_at, received_at, status, version, body_sha256)
    WITH street AS (
        SELECT n, %(west)s + 0.005 + (%(east)s - %(west)s - 0.01) * random() AS lon,
               %(south)s + 0.005 + (%(north)s - %(south)s - 0.01) * random() AS lat,
               2 * pi() * random() AS heading, 0.0025 + 0.01 * random() AS length
        FROM generate_series(0, 119) AS n
    ), walker AS (
        SELECT array_agg(id ORDER BY id) AS ids FROM participant WHERE event_id = %(event)s
    ), draw AS (
        SELECT i, random() AS kind, floor(120 * power(random(), 1.5))::int AS street,
               floor(8 * random())::int AS square, random() AS along,
               sqrt(-2 * ln(1 - random())) AS radius, 2 * pi() * random() AS angle,
               random() AS status, random() AS preset, random() AS walker, random() AS x, random() AS y
        FROM generate_series(1, %(rows)s) AS i
    ), placed AS (
        SELECT d.*, CASE
            WHEN d.kind < 0.70 THEN s.lon + cos(s.heading) * s.length * d.along
                                    + 0.00008 * d.radius * cos(d.angle)
            WHEN d.kind < 0.85 THEN q.lon + 0.0007 * d.radius * cos(d.angle)
            ELSE %(west)s + (%(east)s - %(west)s) * d.x END AS lon, CASE
            WHEN d.kind < 0.70 THEN s.lat + 0.7 * sin(s.heading) * s.length * d.along
                                    + 0.00006 * d.radius * sin(d.angle)
            WHEN d.kind < 0.85 THEN q.lat + 0.0005 * d.radius * sin(d.angle)
            ELSE %(south)s + (%(north)s - %(south)s) * d.y END AS lat
        FROM draw d JOIN street s ON s.n = d.street JOIN street q ON q.n = d.square
    )
    SELECT %(event)s,
           w.ids[1 + CASE WHEN p.kind < 0.70 THEN (p.street * 3 + floor(4 * p.walker)::int)
                          ELSE floor(p.walker * cardinality(w.ids))::int END %% cardinality(w.ids)],
           gen_random_uuid(),
           (ARRAY['tree', 'tree', 'tree', 'tree', 'tree', 'tree', 'bench', 'bench', 'bench',
                  'waste_basket', 'waste_basket', 'bicycle_parking', 'bicycle_parking', 'recycling',
                  'drinking_water', 'post_box', 'toilets', 'defibrillator', 'pharmacy', 'bakery']
           )[1 + floor(20 * p.preset)::int],
           ST_SetSRID(ST_MakePoint(round(least(greatest(p.lon, %(west)s), %(east)s)::numeric, 7),
                                   round(least(greatest(p.lat, %(south)s), %(north)s)::numeric, 7)), 4326),
           round((3 + 17 * p.x * p.x)::numeric, 1), '{}'::jsonb,
           CASE WHEN p.y < 0.1 THEN 'à vérifier sur place' ELSE '' END,
           timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * p.i / %(rows)s - 300 * p.y),
           timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * p.i / %(rows)s),
           CASE WHEN p.status < 0.55 THEN 'pending' WHEN p.status < 0.9 THEN 'approved'
                ELSE 'rejected' END::submission_status,
           CASE WHEN p.status < 0.55 THEN 1 ELSE 2 END,
           md5('body' || p.i) || md5('sha' || p.i)
    FROM placed p, walker w
"""

PHOTOS = """
    INSERT INTO photo (submission_id, sha256, media_type, size, width, height)
    SELECT id, md5('photo' || id) || md5('jpeg' || id), 'image/jpeg', 250000, 1600, 1200
    FROM submission WHERE id % 10 = 0
"""


def create_database(base_url, name, rows, walkers):
    """Create, migrate and fill database `name`; return (its URL, the organiser's session cookie)."""
    from cartoparty.auth import hash_password, start_session
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event, Organiser, Team
    from cartoparty.zones import read_zone

    url = new_database(base_url, name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_schema()
        event = Event(slug=SLUG, name="Bench review", zone=read_zone(ZONE),
                      presets=["tree", "bench", "waste_basket", "bicycle_parking", "recycling",
                               "drinking_water", "post_box", "toilets", "defibrillator", "pharmacy",
                               "bakery"])
        organiser = Organiser(email="bench@example.org", password_hash=hash_password("bench"))
        organiser.events.append(event)
        db.session.add(organiser)
        db.session.flush()
        teams = [Team(event_id=event.id, name=team, presets=[]) for team in TEAMS]
        db.session.add_all(teams)
        db.session.commit()
        event_id, team_ids, organiser_id = event.id, [t.id for t in teams], organiser.id
        session_key = start_session(organiser_id)  # sessions live on the server too
        db.session.commit()
        cookie = app.session_interface.get_signing_serializer(app).dumps(
            {"organiser_id": organiser_id, "organiser_session": session_key, "_permanent": True})
        db.engine.dispose()
    bounds = {"west": WEST, "south": SOUTH, "east": EAST, "north": NORTH}
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        conn.execute(WALKERS, {"event": event_id, "teams": team_ids, "walkers": walkers})
        conn.execute("SELECT setseed(0.2026)")
        began = time.perf_counter()
        conn.execute(SUBMISSIONS, {"event": event_id, "rows": rows, **bounds})
        conn.execute(PHOTOS)
        loaded = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE")  # what autovacuum would soon do after such a load
        versions = conn.execute("SELECT current_setting('server_version'), postgis_lib_version()").fetchone()
    print(f"PostgreSQL {versions[0]}, PostGIS {versions[1]}: loaded {rows} submissions (and {rows // 10} "
          f"photo rows) in {loaded:.1f} s, then VACUUM ANALYZE")
    return url, cookie


def mercator(lat):
    """Web Mercator y of a latitude, in degrees-of-longitude units."""
    return math.degrees(math.asinh(math.tan(math.radians(lat))))


def view(lon, lat, zoom):
    """The bbox (west, south, east, north) a SCREEN-sized map centred on lon, lat shows at zoom."""
    half_x, half_y = (pixels / 2 * 360 / (256 * 2**zoom) for pixels in SCREEN)
    y = mercator(lat)
    south, north = (math.degrees(math.atan(math.sinh(math.radians(v)))) for v in (y - half_y, y + half_y))
    return lon - half_x, south, lon + half_x, north


def fit_zoom(west, south, east, north):
    """The largest zoom at which the whole box fits the SCREEN."""
    for zoom in range(22, -1, -1):
        scale = 256 * 2**zoom / 360
        if (east - west) * scale <= SCREEN[0] and (mercator(north) - mercator(south)) * scale <= SCREEN[1]:
            return zoom
    return 0


def pan_zoom_script(dense, rng):
    """~200 (lon, lat, zoom) views: zoom in from 13 to 19 on busy and quiet spots in turn,
    pan around at 19, then zoom back out while drifting."""
    quiet = [(rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)) for _ in dense]
    targets = [spot for pair in zip(dense, quiet, strict=True) for spot in pair]
    lon, lat, views = (WEST + EAST) / 2, (SOUTH + NORTH) / 2, []
    for target_lon, target_lat in targets:
        for zoom in range(13, 20):
            lon, lat = (lon + target_lon) / 2, (lat + target_lat) / 2
            views.append((lon, lat, zoom))
        for zoom in [19] * 4 + list(range(18, 13, -1)):
            angle, step = rng.uniform(0, 2 * math.pi), SCREEN[0] / 2 * 360 / (256 * 2**zoom)
            lon, lat = lon + step * math.cos(angle), lat + step * math.sin(angle) * 0.7
            views.append((lon, lat, zoom))
    return views


def timed(session, url, params=None):
    """GET url; return (seconds, response), failing loudly on anything but 200."""
    began = time.perf_counter()
    response = session.get(url, params=params, timeout=120)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{url} {params}: {response.status_code} {response.text[:300]}")
    return elapsed, response


def percentiles(seconds):
    """p50, p95 and max of durations, in ms, as text."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return (f"p50 {1000 * statistics.median(ordered):.1f}  p95 {1000 * p95:.1f}  "
            f"max {1000 * ordered[-1]:.1f} ms")


def first_view(session, base):
    """Seconds until the review map has its data: map of the whole zone, first list page, counts."""
    bbox = ",".join(f"{v:.6f}" for v in (WEST, SOUTH, EAST, NORTH))
    parts = [timed(session, f"{base}/map", {"bbox": bbox, "zoom": fit_zoom(WEST, SOUTH, EAST, NORTH)}),
             timed(session, f"{base}/list", {"page": 1, "per_page": 50}),
             timed(session, f"{base}/dashboard")]
    return sum(seconds for seconds, _ in parts), parts


def dense_spots(url, count):
    """Centres (lon, lat) of the `count` busiest 100-metre cells."""
    with psycopg.connect(dsn(url)) as conn:
        return conn.execute("""SELECT avg(ST_X(geom)), avg(ST_Y(geom)) FROM submission
            GROUP BY floor(ST_X(geom) / 0.0013), floor(ST_Y(geom) / 0.0009)
            ORDER BY count(*) DESC LIMIT %s""", [count]).fetchall()


def our_processes(server, url):
    """Pids of this benchmark: this client, gunicorn and its workers, their PostgreSQL backends."""
    pids = {os.getpid(), server.pid}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) \
                    == server.pid:
                pids.add(int(entry.name))
        except OSError:
            pass
    with psycopg.connect(dsn(url)) as conn:
        pids |= {pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")}
    return pids


def cpu_jiffies(pids):
    """Busy jiffies of the whole machine so far, and of each of `pids` (cumulative, from /proc)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    each = {}
    for pid in pids:
        try:
            rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            each[pid] = int(rest[11]) + int(rest[12])
        except OSError:
            pass
    return sum(fields) - fields[3] - fields[4], each


def cpu_report(before, server, url, began):
    """Who used the CPUs since `before`: this benchmark or anything else (which skews timings)."""
    after = cpu_jiffies(our_processes(server, url) | set(before[1]))
    ours = sum(jiffies - before[1].get(pid, 0) for pid, jiffies in after[1].items())
    hertz, seconds = os.sysconf("SC_CLK_TCK"), time.perf_counter() - began
    busy = (after[0] - before[0]) / hertz
    print(f"CPU while measuring ({seconds:.0f} s): machine {busy:.1f} CPU-s, this benchmark (client, "
          f"gunicorn, its PostgreSQL backends) {ours / hertz:.1f}, everything else "
          f"{busy - ours / hertz:.1f}")


def pan_and_zoom(session, api, views, pause=0.0):
    """Ask the map for each view in turn; (seconds, mode, bytes, total) of each answer.

    With a `pause` between views, it also does what the review page does: ask the changes cursor
    every POLL seconds and send the latest one with each map request."""
    answers, known, polled = [], None, -POLL
    for lon, lat, zoom in views:
        time.sleep(pause)
        params = {"bbox": ",".join(f"{v:.6f}" for v in view(lon, lat, zoom)), "zoom": zoom}
        if pause:
            if time.perf_counter() - polled >= POLL:
                polled, known = time.perf_counter(), timed(session, f"{api}/changes")[1].json()["cursor"]
            params["cursor"] = known
        elapsed, response = timed(session, f"{api}/map", params)
        body = response.json()
        answers.append((elapsed, body["mode"], len(response.content), body["total"]))
    return answers


def by_mode(answers):
    """Print the timings of clustered and of point answers apart."""
    for mode in ("clusters", "points"):
        some = [(seconds, total) for seconds, kind, _, total in answers if kind == mode]
        if some:
            print(f"    {len(some)} in {mode} mode ({min(t for _, t in some)} to {max(t for _, t in some)} "
                  f"submissions in view): {percentiles([seconds for seconds, _ in some])}")


WALKER_PERIOD = 1.0  # a new point every second, from the whole party
PAUSE = 0.3  # seconds between two views of the organiser's map
POLL = 3.0  # how often the review page asks the changes cursor
A_WALKERS_POINT = """
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags, note,
                            observed_at, body_sha256)
    SELECT event_id, participant_id, gen_random_uuid(), preset,
           ST_Translate(geom, 0.0001 * (random() - 0.5), 0.0001 * (random() - 0.5)), accuracy, tags,
           '', now(), body_sha256
    FROM submission WHERE id = (SELECT max(id) FROM submission) - %s
"""


def walker_points(url, stop, sent):
    """Until `stop`, add a point near an existing one every WALKER_PERIOD seconds, as walkers do."""
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        while not stop.wait(WALKER_PERIOD):
            conn.execute(A_WALKERS_POINT, [random.randrange(50_000)])
            sent.append(time.perf_counter())


def measure(base, cookie, url):
    """Run and print the three measurements."""
    session = requests.Session()
    session.headers["Cookie"] = f"session={cookie}"
    api = f"{base}/api/organise/{SLUG}"

    cold, parts = first_view(session, api)
    warm = [first_view(session, api)[0] for _ in range(5)]
    names = ("map", "list", "dashboard")
    print(f"(a) first view (map of the whole zone at zoom {fit_zoom(WEST, SOUTH, EAST, NORTH)}, list "
          f"page 1 of 50, dashboard; one after another): first {1000 * cold:.0f} ms (" +
          ", ".join(f"{n} {1000 * s:.0f}" for n, (s, _) in zip(names, parts, strict=True)) +
          f"); then median of 5 {1000 * statistics.median(warm):.0f} ms, max {1000 * max(warm):.0f} ms")
    mode = parts[0][1].json()
    print(f"    map answer: {mode['mode']}, total {mode['total']}, {len(mode['clusters'])} clusters, "
          f"{len(parts[0][1].content)} bytes")

    views = pan_zoom_script(dense_spots(url, 6), random.Random(7))
    answers = pan_and_zoom(session, api, views)
    sizes = [size for _, _, size, _ in answers]
    print(f"(b) map requests over a pan/zoom script, zoom 13 to 19, {len(views)} requests (median answer "
          f"{statistics.median(sizes) / 1024:.1f} KiB, largest {max(sizes) / 1024:.1f} KiB): "
          f"{percentiles([seconds for seconds, *_ in answers])}")
    by_mode(answers)
    polls = [timed(session, f"{api}/changes")[0] for _ in range(30)]
    print(f"    changes cursor (30 polls): {percentiles(polls)}")
    filtered = [timed(session, f"{api}/list", {"status": "pending", "preset": "tree,bench",
                                               "page": page})[0] for page in range(1, 11)]
    print(f"    list filtered by status and preset, pages 1-10: {percentiles(filtered)}")

    stop_walkers, sent = threading.Event(), []
    walkers = threading.Thread(target=walker_points, args=(url, stop_walkers, sent))
    walkers.start()
    try:
        answers = pan_and_zoom(session, api, views, pause=PAUSE)
    finally:
        stop_walkers.set()
        walkers.join()
    print(f"(d) the same script at a person's pace (a view every {PAUSE} s, the changes cursor asked "
          f"every {POLL} s and sent with the map requests, as the review page does) while walkers "
          f"send a point every {WALKER_PERIOD} s ({len(sent)} sent): "
          f"{percentiles([seconds for seconds, *_ in answers])}")
    by_mode(answers)

    geojson = [timed(session, f"{base}/api/events/{SLUG}/submissions.geojson") for _ in range(3)]
    best = statistics.median(s for s, _ in geojson)
    print(f"(c) whole event as one GeoJSON: median of 3 {1000 * best:.0f} ms, "
          f"{len(geojson[0][1].content) / 2**20:.1f} MiB; ratio GeoJSON / first view "
          f"{best / statistics.median(warm):.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="submissions (100000)")
    parser.add_argument("--walkers", type=int, default=300, help="participants (300)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    args = parser.parse_args()

    print(machine())
    with throwaway_database("review") as (base_url, name):
        url, cookie = create_database(base_url, name, args.rows, args.walkers)
        port = free_port()
        with serving(url, port, args.workers, SLUG) as server:
            print(f"gunicorn: {args.workers} sync workers; one client (requests.Session) over "
                  "loopback, one request at a time, as a signed-in organiser")
            before, began = cpu_jiffies(our_processes(server, url)), time.perf_counter()
            measure(f"http://127.0.0.1:{port}", cookie, url)
            cpu_report(before, server, url, began)
        print(f"load average after the run {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
