"""OSM changes benchmark (not a test): the plan of changes of 100,000 approved submissions, 70 %
to create and 30 % modifies of nodes that a local OSM API stand-in serves, and its osmChange
files, beside the time osmium-tool takes merely to read those files.

    .venv/bin/python bench/changeset.py [--points 100000]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, creates one event around Chambéry and fills it with INSERT ... SELECT
generate_series (seeded): approved submissions of trees and benches, those whose id ends in
0, 1 or 2 (30 %) with a node a metre or two away in the stored OSM data and a match `update`
(the walker's species or backrest to add), the others a match `new`. No matching runs: the bench
measures the plan, not the matching. The same nodes are served by tests/osm/osm_api.py's
OsmApiStandIn in a child Python process (off this process's GIL), until it is stopped.

Then it times cartoparty.osm.changes.build() + commit (which fetches the nodes again from the
stand-in, in batches: that share is timed by wrapping changes._fetch during the run) and
cartoparty.exports.osm.write_plan(event, "osc", …) (the split into changesets and the writing
of FILE-1.osc, FILE-2.osc…), with the peak resident memory of this process over those two
steps, and then `osmium cat` of the same files as the floor. The database, the files and the
child process are removed at the end, whatever happens (Ctrl-C and kill too).
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg
from common import (
    ROOT,
    create_database,
    dsn,
    machine,
    machine_cpu_seconds,
    process_cpu_seconds,
    run,
    stop,
    throwaway_database,
)

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

SLUG = "changeset"
WEST, SOUTH, EAST, NORTH = 5.89, 45.54, 5.95, 45.58  # Chambéry, about 4.7 × 4.4 km
ZONE = {"type": "Polygon", "coordinates": [[
    [WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH], [WEST, NORTH], [WEST, SOUTH]]]}
PRESETS = ["tree", "bench"]
# Node ids as large as openstreetmap.org's today (11 digits): the multi-fetch URLs are as long.
FIRST_NODE = 11_000_000_000
AIM_SECONDS, AIM_MIB = 5, 500

WALKER = """
    INSERT INTO participant (event_id, pseudonym, token_hash, consented_at)
    VALUES (%(event)s, 'Walker', md5('token') || md5('salt'), now()) RETURNING id
"""

# Uniform over the zone, all approved: 80 % trees with a species, 20 % benches with a backrest.
SUBMISSIONS = """
    INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy, tags,
                            note, observed_at, received_at, status, version, body_sha256)
    WITH draw AS (
        SELECT i, random() AS kind, random() AS x, random() AS y, random() AS value
        FROM generate_series(1, %(rows)s) AS i
    )
    SELECT %(event)s, %(walker)s, gen_random_uuid(), CASE WHEN kind < 0.8 THEN 'tree' ELSE 'bench' END,
           ST_SetSRID(ST_MakePoint(round((%(west)s + (%(east)s - %(west)s) * x)::numeric, 7),
                                   round((%(south)s + (%(north)s - %(south)s) * y)::numeric, 7)), 4326),
           round((3 + 10 * value)::numeric, 1),
           CASE WHEN kind < 0.8 THEN jsonb_build_object('natural', 'tree', 'species',
                    (ARRAY['Platanus × acerifolia', 'Tilia cordata', 'Acer platanoides',
                           'Quercus robur', 'Aesculus hippocastanum'])[1 + floor(5 * value)::int])
                ELSE jsonb_build_object('amenity', 'bench', 'backrest',
                    CASE WHEN value < 0.5 THEN 'yes' ELSE 'no' END) END,
           '', timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * i / %(rows)s),
           timestamptz '2026-06-13 08:00+02' + make_interval(secs => 32400.0 * i / %(rows)s + 5),
           'approved', 1, md5('body' || i) || md5('sha' || i)
    FROM draw
"""

# For the submissions whose id ends in 0, 1 or 2: the node OSM has, up to 1.4 m away, with the
# walker's identifying tag but not what the walker added (half the trees with a leaf_type).
OSM = """
    INSERT INTO osm_element (event_id, osm_type, osm_id, version, timestamp, tags, geom)
    SELECT event_id, 'node', %(first)s + id, 1 + floor(5 * random())::int,
           timestamptz '2020-01-01 00:00Z' + make_interval(days => floor(2000 * random())::int),
           (tags - 'species' - 'backrest')
               || CASE WHEN preset = 'tree' AND random() < 0.5
                       THEN '{"leaf_type": "broadleaved"}'::jsonb ELSE '{}' END,
           ST_SetSRID(ST_MakePoint(round((ST_X(geom) + (random() - 0.5) * 2 / 78000)::numeric, 7),
                                   round((ST_Y(geom) + (random() - 0.5) * 2 / 111320)::numeric, 7)),
                      4326)
    FROM submission WHERE event_id = %(event)s AND id %% 10 < 3
"""

# What the matching would have said: `update` (add the walker's tags) beside a node, else `new`.
MATCHES = """
    INSERT INTO match (submission_id, outcome, osm_type, osm_id, osm_version, distance_m, tag_diff,
                       matched_at)
    SELECT s.id, CASE WHEN o.osm_id IS NULL THEN 'new' ELSE 'update' END, o.osm_type, o.osm_id,
           o.version, ST_Distance(s.geom::geography, o.geom::geography),
           CASE WHEN o.osm_id IS NOT NULL THEN jsonb_build_object(
               'added', s.tags - 'natural' - 'amenity', 'changed', '{}'::jsonb) END, now()
    FROM submission s
    LEFT JOIN osm_element o ON o.event_id = s.event_id AND o.osm_type = 'node'
                           AND o.osm_id = %(first)s + s.id
    WHERE s.event_id = %(event)s
"""

NODES = """
    SELECT osm_id, version, tags, ST_Y(geom), ST_X(geom) FROM osm_element
    WHERE event_id = %s ORDER BY osm_id
"""


def fill(url, event_id, points):
    """Insert the submissions, the OSM nodes and the matches; return the nodes (osm_id, version,
    tags, lat, lon) for the stand-in."""
    bounds = {"west": WEST, "south": SOUTH, "east": EAST, "north": NORTH}
    with psycopg.connect(dsn(url), autocommit=True) as conn:
        walker = conn.execute(WALKER, {"event": event_id}).fetchone()[0]
        conn.execute("SELECT setseed(0.2026)")
        began = time.perf_counter()
        conn.execute(SUBMISSIONS, {"event": event_id, "walker": walker, "rows": points, **bounds})
        conn.execute(OSM, {"event": event_id, "first": FIRST_NODE})
        # Without statistics the planner joins the fresh tables by a nested loop of scans.
        conn.execute("ANALYZE submission, osm_element")
        conn.execute(MATCHES, {"event": event_id, "first": FIRST_NODE})
        filled = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE")
        versions = conn.execute("SELECT current_setting('server_version'), postgis_lib_version()").fetchone()
        nodes = conn.execute(NODES, [event_id]).fetchall()
    print(f"PostgreSQL {versions[0]}, PostGIS {versions[1]}: generated {points} approved submissions, "
          f"{len(nodes)} OSM nodes beside them and the matches ({points - len(nodes)} new, "
          f"{len(nodes)} update) in {filled:.1f} s, then VACUUM ANALYZE")
    return nodes


def serve_stand_in():
    """The child process: hold the nodes read from stdin (JSON lines up to an empty one) in an
    OsmApiStandIn, print its URL, and serve until stdin is closed. GET /bench/stats answers how
    many requests it answered and the seconds spent in answer() (building the XML)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from osm.osm_api import OsmApiStandIn, route

    stand_in = OsmApiStandIn()
    for line in sys.stdin:
        if not line.strip():
            break
        osm_id, version, tags, lat, lon = json.loads(line)
        stand_in.add_node(osm_id, lat, lon, tags, version=version)
    answering = {"requests": 0, "seconds": 0.0}
    answer = stand_in.answer

    def timed(*args):
        began = time.perf_counter()
        try:
            return answer(*args)
        finally:
            answering["requests"] += 1
            answering["seconds"] += time.perf_counter() - began

    @route("GET", r"/bench/stats")
    def stats(api, call):
        return 200, json.dumps(answering).encode(), "application/json"

    stand_in.answer = timed
    print(stand_in.url, flush=True)
    sys.stdin.read()  # until the bench closes the pipe, or dies
    stand_in.close()


@contextmanager
def stand_in_process(nodes, script=__file__, first=(), said=""):
    """(child process, API URL) of the stand-in serving `nodes`, run by `script --stand-in` (this
    bench's, or another's that reads the JSON lines `first` before the nodes); stopped at the end
    whatever happens."""
    child = subprocess.Popen([sys.executable, script, "--stand-in"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        began = time.perf_counter()
        for line in (*first, *nodes):
            child.stdin.write(json.dumps(line) + "\n")
        child.stdin.write("\n")
        child.stdin.flush()
        url = child.stdout.readline().strip()
        if not url:
            raise RuntimeError(f"the stand-in exited with status {child.wait()}")
        print(f"OSM API stand-in (tests/osm/osm_api.py) in child process {child.pid} at {url}: "
              f"{len(nodes)} nodes loaded in {time.perf_counter() - began:.1f} s{said}")
        yield child, url
    finally:
        try:
            child.stdin.close()
        except OSError:
            pass
        stop(child)


def stand_in_stats(url):
    """{"requests": n, "seconds": s} the stand-in has answered so far."""
    with urllib.request.urlopen(url.rsplit("/api/", 1)[0] + "/bench/stats", timeout=10) as answer:
        return json.load(answer)


@contextmanager
def timing(module, name, spent):
    """Add the seconds each call of module.name takes to spent["seconds"], while inside."""
    original = getattr(module, name)

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - began

    setattr(module, name, timed)
    try:
        yield spent
    finally:
        setattr(module, name, original)


def reset_peak_memory():
    """Reset this process's resident high-water mark (VmHWM, which ru_maxrss reads) through
    /proc/self/clear_refs; return False when the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def resident_mib():
    """This process's resident set now (VmRSS), in MiB."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def build_and_write(event_id, folder, child):
    """Build the plan (+ commit), then write its osmChange files into `folder`; print the times."""
    from cartoparty.exports.osm import write_plan
    from cartoparty.extensions import db
    from cartoparty.models import Event
    from cartoparty.osm import changes

    event = db.session.get(Event, event_id)
    child_cpu = process_cpu_seconds(child.pid)
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    began = time.perf_counter()
    with timing(changes, "_fetch", {"seconds": 0.0}) as fetching:
        plan = changes.build(event, "bench")
        db.session.commit()
    built = time.perf_counter() - began
    child_cpu = None if child_cpu is None else process_cpu_seconds(child.pid) - child_cpu
    if plan.base != "api":
        raise RuntimeError(f"the plan was built on the stored data: {plan.base_error_detail}")
    began = time.perf_counter()
    written = write_plan(event, "osc", Path(folder) / "changes.osc", "en")
    wrote = time.perf_counter() - began
    if profile is not None:
        import pstats

        profile.disable()
        pstats.Stats(profile).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(30)
    return {"build": built, "fetch": fetching["seconds"], "write": wrote, "child_cpu": child_cpu,
            "written": written, "summary": changes.summary(event)}


def floor(paths):
    """Best of 3 wall times of `osmium cat` reading the files and writing OPL to /dev/null, in
    seconds, or None without osmium-tool."""
    if shutil.which("osmium") is None:
        return None
    # --overwrite: without it osmium refuses /dev/null ("File exists").
    command = ["osmium", "cat", "--overwrite", "-f", "opl", "-o", "/dev/null", *map(str, paths)]
    best = None
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - began
        best = seconds if best is None else min(best, seconds)
    return best


def report(figures, points, modifies, stand_in, memory):
    """Print the plan's counts, the times, the stand-in's share, the memory and the floor."""
    summary, written = figures["summary"], figures["written"]
    creates, modified = summary.get("create", 0), summary.get("modify", 0)
    if (creates, modified) != (points - modifies, modifies) or len(summary) != 2:
        raise RuntimeError(f"the plan is not what was generated: {summary}")
    paths = [path for path, _ in written]
    sizes = [count for _, count in written]
    if sum(sizes) != points:
        raise RuntimeError(f"the files hold {sum(sizes)} changes, not {points}")
    mib = sum(path.stat().st_size for path in paths) / 2**20
    total = figures["build"] + figures["write"]
    print(f"plan: {creates} creates, {modified} modifies, nothing held")
    print(f"(1) build: changes.build() + commit {figures['build']:.2f} s, of which fetching "
          f"{modifies} nodes from the stand-in (api.fetch_elements, request + parse) "
          f"{figures['fetch']:.2f} s")
    cpu = "not readable" if stand_in["cpu"] is None else f"{stand_in['cpu']:.2f} s CPU"
    print(f"    the stand-in, in its own process (not on this one's GIL): {stand_in['requests']} "
          f"requests, {stand_in['seconds']:.2f} s inside answer() (its XML), {cpu} in all")
    print(f"(2) split + write: write_plan(event, 'osc', …) {figures['write']:.2f} s: {len(paths)} "
          f"changesets/files ({min(sizes)}–{max(sizes)} changes each), {mib:.1f} MiB in all")
    print(f"    build + write: {total:.2f} s (aim: under {AIM_SECONDS} s)")
    print(f"(3) peak memory: {memory}")
    best = floor(paths)
    if best is None:
        print("(4) floor: osmium-tool is not installed, no floor and no ratio")
        return
    version = subprocess.run(["osmium", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"(4) floor: {version}, osmium cat -f opl -o /dev/null over the {len(paths)} files, best of 3: "
          f"{best:.2f} s (process start included); build + write / floor: {total / best:.1f}x, "
          f"write alone / floor: {figures['write'] / best:.1f}x")


def memory_line(reset, before_mib, setup_peak_kib):
    """The peak memory sentence, saying what was measured."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not reset:
        return (f"{peak:.0f} MiB resident (ru_maxrss over the whole run: the high-water mark "
                f"could not be reset before the build) (aim: under {AIM_MIB} MB)")
    return (f"{peak:.0f} MiB resident during build + write (ru_maxrss after the run, its "
            f"high-water mark reset just before the build through /proc/self/clear_refs; "
            f"{before_mib:.0f} MiB resident at the start, the setup's peak "
            f"{setup_peak_kib / 1024:.0f} MiB) (aim: under {AIM_MIB} MB)")


def migrated_event(name):
    """Migrate the current app's database and make the bench's event; its id. The engine's
    connections are let go: fill() works through its own."""
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event
    from cartoparty.zones import read_zone

    upgrade_schema()
    event = Event(slug=SLUG, name=name, zone=read_zone(ZONE), presets=PRESETS)
    db.session.add(event)
    db.session.commit()
    db.engine.dispose()
    return event.id


def bench(url, points, folder):
    """Migrate, fill, serve the nodes, build and write, and report."""
    from cartoparty.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        event_id = migrated_event("Bench changeset")
        nodes = fill(url, event_id, points)
        with stand_in_process(nodes) as (child, api_url):
            app.config["OSM_API_URL"] = api_url
            setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            before, reset = resident_mib(), reset_peak_memory()
            machine_cpu, python_cpu = machine_cpu_seconds(), process_cpu_seconds(os.getpid())
            figures = build_and_write(event_id, folder, child)
            memory = memory_line(reset, before, setup_peak)
            busy = machine_cpu_seconds() - machine_cpu
            ours = process_cpu_seconds(os.getpid()) - python_cpu
            stand_in = {**stand_in_stats(api_url), "cpu": figures["child_cpu"]}
        db.session.close()
        db.engine.dispose()
        report(figures, points, len(nodes), stand_in, memory)
        seconds = figures["build"] + figures["write"]
        cores = len(os.sched_getaffinity(0))
        print(f"    CPU during (1) and (2): the machine was busy {busy:.1f} s of the {seconds:.1f} s x "
              f"{cores} cores there were; this Python process {ours:.1f} s (the rest: the stand-in, "
              f"PostgreSQL, other users of this machine)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000, help="approved submissions (100000)")
    parser.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stand_in:
        serve_stand_in()
        return 0
    if args.points < 10:
        parser.error("--points must be at least 10")
    # A plain kill ends the bench through its finally clauses too (database, files, stand-in).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(machine())
    with throwaway_database("changeset") as (base_url, name), \
            tempfile.TemporaryDirectory(prefix="cartoparty-bench-osc-") as folder:
        bench(create_database(base_url, name), args.points, folder)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
