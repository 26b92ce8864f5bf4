"""Conflation benchmark (not a test): loading an event's OSM features and matching 100,000
submissions against 200,000 of them in one set-based statement, against one query per submission.

    .venv/bin/python bench/conflate.py [--submissions 100000] [--osm 200000] [--sample 2000] [--keep]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, creates one event around Chambéry and fills it with INSERT ... SELECT
generate_series (seeded): submissions of five presets, and OSM features of the same kinds and
others, many within a few metres of a submission so that every outcome occurs. Those features
are read back as overpass.Element objects and stored again through cartoparty.osm.store.store() (the
"load"), then cartoparty.conflate.match() runs and is committed; then a sample of submissions is
matched the naive way, one SELECT and one INSERT each, in a transaction rolled back at the end.
Beside the times it prints how busy the machine's CPUs were meanwhile, and by whom: other users'
work on this shared machine shows there. The database is dropped at the end, unless --keep says
to leave it for EXPLAIN (its name is printed).
"""

import argparse
import os
import random
import resource
import sys
import time
from functools import partial
from pathlib import Path

import psycopg
from common import create_database as new_database
from common import drop_database, dsn, machine, machine_cpu_seconds, process_cpu_seconds
from sqlalchemy import text

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import config, create_app, localdb  # noqa: E402

SLUG = "conflate"
WEST, SOUTH, EAST, NORTH = 5.88, 45.54, 5.96, 45.60  # Chambéry and around, about 6 × 6.7 km
ZONE = {"type": "Polygon", "coordinates": [[
    [WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH], [WEST, NORTH], [WEST, SOUTH]]]}
PRESETS = ["tree", "bench", "waste_basket", "defibrillator", "pharmacy"]

# Each kind: its identifying tags and, for the event's presets, its match radius in metres.
KINDS = """
    kind(n, preset, ident, radius) AS (VALUES
        (0, 'tree', '{"natural": "tree"}'::jsonb, 5.0),
        (1, 'bench', '{"amenity": "bench"}', 10),
        (2, 'waste_basket', '{"amenity": "waste_basket"}', 10),
        (3, 'defibrillator', '{"emergency": "defibrillator"}', 30),
        (4, 'pharmacy', '{"amenity": "pharmacy", "healthcare": "pharmacy"}', 50),
        (5, 'bicycle_parking', '{"amenity": "bicycle_parking"}', 15),
        (6, 'post_box', '{"amenity": "post_box"}', 15),
        (7, 'street_lamp', '{"highway": "street_lamp"}', 5),
        (8, 'bakery', '{"shop": "bakery"}', 30),
        (9, 'parking', '{"amenity": "parking"}', 30))
"""

WALKER = """
    INSERT INTO participant (event_id, pseudonym, token_hash, consented_at)
    VALUES (%(event)s, 'Walker', md5('token') || md5('salt'), now()) RETURNING id
"""

# Uniform over the zone: 55 % trees (70 % with a species), 20 % benches (backrest yes/no),
# 15 % waste baskets, 6 % defibrillators, 4 % pharmacies; 5 % rejected.
SUBMISSIONS = """
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags,
                            note, observed_at, received_at, status, version, body_sha256)
    WITH draw AS (
        SELECT i, random() AS kind, random() AS x, random() AS y, random() AS tag, random() AS value,
               random() AS status
        FROM generate_series(1, %(rows)s) AS i
    ), typed AS (
        SELECT d.*, CASE WHEN kind < 0.55 THEN 'tree' WHEN kind < 0.75 THEN 'bench'
                         WHEN kind < 0.90 THEN 'waste_basket' WHEN kind < 0.96 THEN 'defibrillator'
                         ELSE 'pharmacy' END AS preset
        FROM draw d
    )
    SELECT %(event)s, %(walker)s, gen_random_uuid(), preset,
           ST_SetSRID(ST_MakePoint(round((%(west)s + (%(east)s - %(west)s) * x)::numeric, 7),
                                   round((%(south)s + (%(north)s - %(south)s) * y)::numeric, 7)), 4326),
           round((3 + 10 * value)::numeric, 1),
           CASE WHEN preset = 'tree' AND tag < 0.7 THEN jsonb_build_object('species',
                    (ARRAY['Platanus × acerifolia', 'Tilia cordata', 'Acer platanoides',
                           'Quercus robur', 'Aesculus hippocastanum'])[1 + floor(5 * value)::int])
                WHEN preset = 'bench' THEN jsonb_build_object('backrest',
                    CASE WHEN tag < 0.5 THEN 'yes' ELSE 'no' END)
                ELSE '{}'::jsonb END,
           '', timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * i / %(rows)s),
           timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * i / %(rows)s + 5),
           CASE WHEN status < 0.05 THEN 'rejected' WHEN status < 0.6 THEN 'pending'
                ELSE 'approved' END::submission_status,
           1, md5('body' || i) || md5('sha' || i)
    FROM typed
"""

# Rows 1..near: one feature of the same kind within half the match radius of submission #i,
# its tags those of the submission (60 %), with other values (20 %) or none (20 %).
# Rows near+1..near+second: a second such feature, within 60 % of the radius, of submission #i-near.
# The rest: any of ten kinds anywhere in the zone, a few just outside it (store() drops those).
OSM = f"""
    INSERT INTO osm_element (event_id, osm_type, osm_id, version, timestamp, tags, geom)
    WITH {KINDS}, s AS (
        SELECT row_number() OVER (ORDER BY id) AS rn, preset, tags, ST_X(geom) AS lon, ST_Y(geom) AS lat
        FROM submission WHERE event_id = %(event)s
    ), draw AS (
        SELECT i, random() AS a, random() AS b, random() AS c, random() AS d, random() AS x,
               random() AS y
        FROM generate_series(1, %(rows)s) AS i
    ), placed AS (
        SELECT dr.*, s.tags AS near_tags, s.lon AS near_lon, s.lat AS near_lat,
               coalesce(s.preset, (SELECT k.preset FROM kind k WHERE k.n = floor(10 * dr.a)::int))
                   AS preset,
               CASE WHEN dr.i <= %(near)s THEN 0.5 ELSE 0.6 END AS spread
        FROM draw dr LEFT JOIN s ON s.rn = CASE WHEN dr.i <= %(near)s THEN dr.i
                                                WHEN dr.i <= %(near)s + %(second)s THEN dr.i - %(near)s END
    )
    SELECT %(event)s, CASE WHEN p.preset IN ('pharmacy', 'parking', 'bakery') AND p.b < 0.5
                           THEN 'way' ELSE 'node' END,
           p.i, 1 + floor(5 * p.b)::int,
           timestamptz '2020-01-01 00:00Z' + make_interval(days => floor(2000 * p.c)::int),
           k.ident || CASE
               WHEN p.near_tags IS NULL OR p.y >= 0.8 THEN '{{}}'::jsonb
               WHEN p.y < 0.6 THEN p.near_tags
               ELSE (SELECT coalesce(jsonb_object_agg(t.key, 'autre'), '{{}}')
                     FROM jsonb_each_text(p.near_tags) AS t) END,
           CASE WHEN p.near_lon IS NULL THEN ST_SetSRID(ST_MakePoint(
                    %(west)s - 0.0005 + (%(east)s - %(west)s + 0.001) * p.x,
                    %(south)s - 0.0005 + (%(north)s - %(south)s + 0.001) * p.y), 4326)
                ELSE ST_SetSRID(ST_MakePoint(
                    p.near_lon + k.radius * p.spread * sqrt(p.d) * cos(2 * pi() * p.x)
                                 / (111320 * cos(radians(p.near_lat))),
                    p.near_lat + k.radius * p.spread * sqrt(p.d) * sin(2 * pi() * p.x) / 111320),
                    4326) END
    FROM placed p JOIN kind k ON k.preset = p.preset
"""

# The naive way: per submission, the two nearest features of its kind within its radius.
CANDIDATES = text("""
    SELECT osm_type, osm_id, version, tags,
           ST_Distance(geom::geography, ST_GeomFromEWKT(:geom)::geography) AS distance
    FROM osm_element
    WHERE event_id = :event_id AND tags @> CAST(:ident AS jsonb)
      -- a box around the circle, so that the GiST index on geom finds the few candidates
      AND geom && ST_Expand(ST_GeomFromEWKT(:geom),
                            :radius / (110574 * cos(radians(ST_Y(ST_GeomFromEWKT(:geom))))),
                            :radius / 110574.0)
      AND ST_DWithin(geom::geography, ST_GeomFromEWKT(:geom)::geography, :radius)
    ORDER BY distance LIMIT 2
""")
INSERT_MATCH = text("""
    INSERT INTO match (submission_id, outcome, osm_type, osm_id, osm_version, distance_m, tag_diff,
                       matched_at)
    VALUES (:id, :outcome, :osm_type, :osm_id, :version, :distance, CAST(:diff AS jsonb), now())
""")


def peak_kib(pid):
    """VmHWM (peak resident set) of a process, in KiB, or None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), None)


def fill(url, event_id, submissions, osm):
    """Insert the submissions and the OSM features with generate_series; return their counts."""
    bounds = {"west": WEST, "south": SOUTH, "east": EAST, "north": NORTH}
    near = min(round(0.6 * submissions), osm)
    second = min(round(0.08 * submissions), osm - near)
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        walker = conn.execute(WALKER, {"event": event_id}).fetchone()[0]
        conn.execute("SELECT setseed(0.2026)")
        began = time.perf_counter()
        conn.execute(SUBMISSIONS, {"event": event_id, "walker": walker, "rows": submissions, **bounds})
        conn.execute(OSM, {"event": event_id, "rows": osm, "near": near, "second": second, **bounds})
        filled = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE")
        versions = conn.execute("SELECT current_setting('server_version'), postgis_lib_version()").fetchone()
    print(f"PostgreSQL {versions[0]}, PostGIS {versions[1]}: generated {submissions} submissions and "
          f"{osm} OSM features ({near} near a submission, {second} second ones near the same, "
          f"{osm - near - second} anywhere, of 10 kinds) in {filled:.1f} s, then VACUUM ANALYZE")


def elements_of(url, event_id):
    """The event's OSM features as overpass.Element objects (what Overpass or an extract gives)."""
    from cartoparty.osm.overpass import Element

    with psycopg.connect(dsn(url)) as conn:
        rows = conn.execute("""SELECT osm_type, osm_id, version, timestamp, tags, ST_Y(geom), ST_X(geom)
            FROM osm_element WHERE event_id = %s ORDER BY osm_type, osm_id""", [event_id]).fetchall()
    return [Element(*row) for row in rows]


def naive(event, presets, sample_ids):
    """Match the sample one submission at a time (SELECT, then INSERT); return (seconds, outcomes)."""
    from cartoparty.extensions import db

    rows = db.session.execute(text("""SELECT id, preset, tags, ST_AsEWKT(geom) FROM submission
        WHERE id = ANY(:ids) ORDER BY id"""), {"ids": sample_ids}).all()
    db.session.execute(text("DELETE FROM match WHERE submission_id = ANY(:ids)"), {"ids": sample_ids})
    outcomes = {}
    began = time.perf_counter()
    for sid, preset, tags, geom in rows:
        ident, radius = presets[preset]["tags"], presets[preset]["match_radius"]
        found = db.session.execute(CANDIDATES, {"event_id": event.id, "ident": _json(ident),
                                                "geom": geom, "radius": radius}).all()
        row = {"id": sid, "outcome": "new", "osm_type": None, "osm_id": None, "version": None,
               "distance": None, "diff": None}
        if found:
            best = found[0]
            added = {k: v for k, v in tags.items() if k not in best.tags}
            changed = {k: [best.tags[k], v] for k, v in tags.items() if k in best.tags and best.tags[k] != v}
            # The naive way's own rule: two candidates within a twentieth of the radius.
            close = len(found) > 1 and (found[1].distance - best.distance) / radius < 0.05
            row.update(osm_type=best.osm_type, osm_id=best.osm_id, version=best.version,
                       distance=best.distance,
                       outcome="ambiguous" if close else "update" if added or changed else "existing",
                       diff=None if close else _json({"added": added, "changed": changed}))
        db.session.execute(INSERT_MATCH, row)
        outcomes[sid] = row["outcome"]
    elapsed = time.perf_counter() - began
    db.session.rollback()
    return elapsed, outcomes


def _json(value):
    import json

    return json.dumps(value)


class Timed:
    """Wall time, peak memory and CPU time of one committed step, measured around `step()`:
    the PostgreSQL backend of the session is the one that did the work."""

    def __init__(self, step):
        from cartoparty.extensions import db

        backend = db.session.scalar(text("SELECT pg_backend_pid()"))  # opens the transaction
        cpu = process_cpu_seconds(backend)
        began = time.perf_counter()
        self.result = step()
        db.session.commit()
        self.seconds = time.perf_counter() - began
        after = process_cpu_seconds(backend)
        self.backend, self.backend_peak = backend, peak_kib(backend)
        self.backend_cpu = None if cpu is None or after is None else after - cpu


def cpu_report(steps, seconds, machine_cpu, python_cpu):
    """How busy the machine was while the timed steps ran, and who kept it busy."""
    busy, ours = machine_cpu_seconds() - machine_cpu, process_cpu_seconds(os.getpid()) - python_cpu
    cores = len(os.sched_getaffinity(0))
    backends = [step.backend_cpu for step in steps]
    line = (f"    CPU during (1) and (2): the machine was busy {busy:.1f} s of the {seconds:.1f} s x "
            f"{cores} cores there were ({100 * busy / (seconds * cores):.0f} %): this Python process "
            f"{ours:.1f} s")
    if None in backends:
        return line + "; the PostgreSQL backends' share is not readable here"
    return (line + f", its PostgreSQL backend {sum(backends):.1f} s, other processes (other users, "
            f"PostgreSQL's background writers) {busy - ours - sum(backends):.1f} s")


def run(url, args):
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event
    from cartoparty.osm import conflate, store
    from cartoparty.zones import read_zone

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_schema()
        event = Event(slug=SLUG, name="Bench conflation", zone=read_zone(ZONE), presets=PRESETS)
        db.session.add(event)
        db.session.commit()
        event_id = event.id
        db.engine.dispose()
        fill(url, event_id, args.submissions, args.osm)

        began = time.perf_counter()
        elements = elements_of(url, event_id)
        print(f"built {len(elements)} overpass.Element objects in {time.perf_counter() - began:.1f} s "
              "(read back from the generated rows; not part of the load time)")
        event = db.session.get(Event, event_id)
        machine_cpu, python_cpu = machine_cpu_seconds(), process_cpu_seconds(os.getpid())
        load = Timed(partial(store.store, event, elements, "bench"))
        print(f"(1) load: osm.store.store() of {len(elements)} features + commit: {load.seconds:.2f} s "
              f"({load.result} kept inside the zone; it replaces the generated rows, as a refresh does)")
        del elements
        matching = Timed(lambda: conflate.match(db.session.get(Event, event_id)))
        print(f"(2) match + store: conflate.match() + commit: {matching.seconds:.2f} s for "
              f"{sum(matching.result.values())} submissions (rejected ones are skipped)")
        print("    outcomes: " + ", ".join(f"{name} {count}" for name, count in matching.result.items()))
        print(f"    load + match + store: {load.seconds + matching.seconds:.2f} s (aim: under 10 s)")
        print(cpu_report([load, matching], load.seconds + matching.seconds, machine_cpu, python_cpu))
        print_memory(load, matching)
        # A fresh backend for the naive way: in the one that inserted all the matches at once, the
        # event-revision trigger keeps a plan made for 95,010 rows, and every single-row INSERT
        # then scans all the submissions (about 30 ms each).
        db.session.close()
        db.engine.dispose()
        compare_with_naive(db.session.get(Event, event_id), matching.seconds, args.sample)
        db.engine.dispose()


def print_memory(load, matching):
    """Peak memory of this process and of the PostgreSQL backends that did the work."""
    python_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"(3) peak memory: this Python process {python_peak / 1024:.0f} MiB (ru_maxrss); ", end="")
    if load.backend_peak is None or matching.backend_peak is None:
        print("PostgreSQL backend not measured (its /proc status is not readable here)")
    else:
        print(f"PostgreSQL backend VmHWM (resident peak, including the shared buffers it touched): "
              f"{load.backend_peak / 1024:.0f} MiB for the load (pid {load.backend}), "
              f"{matching.backend_peak / 1024:.0f} MiB for the matching (pid {matching.backend})")


def compare_with_naive(event, matching, sample_size):
    """Match a sample one submission at a time; print the rate, the ratio and the agreement."""
    from cartoparty.extensions import db
    from cartoparty.presets import all_presets

    ids = db.session.scalars(text("""SELECT id FROM submission WHERE event_id = :e
        AND status <> 'rejected' ORDER BY id"""), {"e": event.id}).all()
    sample = sorted(random.Random(2026).sample(ids, min(sample_size, len(ids))))
    set_based = dict(db.session.execute(text("""SELECT submission_id, outcome FROM match
        WHERE submission_id = ANY(:ids)"""), {"ids": sample}).all())
    elapsed, outcomes = naive(event, all_presets(), sample)
    rate = len(sample) / elapsed
    extrapolated = len(ids) / rate
    agree = sum(outcomes[i] == set_based.get(i) for i in sample)
    print(f"(4) naive, one SELECT (box on the GiST index, ST_DWithin on geography, ORDER BY distance "
          f"LIMIT 2) + one INSERT "
          f"per submission, {len(sample)} sampled: {elapsed:.2f} s, {rate:.0f} submissions/s; "
          f"extrapolated to {len(ids)}: {extrapolated:.1f} s (no duplicate detection, no claims)")
    print(f"    set-based {matching:.2f} s vs naive {extrapolated:.1f} s: set-based is "
          f"{extrapolated / matching:.1f}x faster (naive time / set-based time); "
          f"same outcome on {agree} of {len(sample)} sampled submissions")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=100_000, help="submissions (100000)")
    parser.add_argument("--osm", type=int, default=200_000, help="OSM features (200000)")
    parser.add_argument("--sample", type=int, default=2_000, help="naive sample (2000)")
    parser.add_argument("--keep", action="store_true", help="keep the database, to study the plans")
    args = parser.parse_args()

    print(machine())
    if not os.environ.get("DATABASE_URL"):
        localdb.ensure_running()
    base_url, name = config.database_url(), f"cartoparty_bench_conflate_{os.getpid()}"
    try:
        run(new_database(base_url, name), args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept database {name} (drop it with: DROP DATABASE {name})")
        else:
            drop_database(base_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
