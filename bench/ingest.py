"""Ingest benchmark (not a test): how many submissions/s the API stores, at what latency,
against plain single-row INSERTs into the same table as a ceiling.

    .venv/bin/python bench/ingest.py [--clients 50] [--seconds 20] [--workers 4] [--threads 1]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, serves the app under gunicorn on a free port, runs the clients, then drops the
database, always. Clients run closed loop (no think time) unless --rate paces them.
"""

import argparse
import hashlib
import multiprocessing
import os
import random
import secrets
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests
from common import dsn, event_database, free_port, machine, run, serving, throwaway_database
from psycopg.types.json import Jsonb

os.environ.setdefault("SECRET_KEY", "bench-only-secret")


ZONE = {"type": "Polygon", "coordinates": [[  # about 1.1 km around Chambéry's Place Saint-Léger
    [5.915, 45.560], [5.930, 45.560], [5.930, 45.570], [5.915, 45.570], [5.915, 45.560]]]}
SLUG = "bench"
KEYS = ("latency", "replays", "replays_ok", "created", "errors")  # what each client records
INSERT = """INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy,
    tags, note, observed_at, body_sha256) VALUES (%s, %s, %s, 'tree',
    ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, '', %s, %s)"""


def create_database(base_url, name, clients):
    """Create and migrate database `name` with an event and one walker per client.
    Return (its URL, the event id, [(participant id, token)])."""
    from cartoparty.extensions import db
    from cartoparty.models import Participant, hash_token

    url, app, event_id = event_database(base_url, name, SLUG, "Bench party", ZONE)
    with app.app_context():
        tokens = [secrets.token_urlsafe(32) for _ in range(clients)]
        walkers = [Participant(event_id=event_id, pseudonym=f"walker {i}", token_hash=hash_token(token),
                               consented_at=datetime.now(UTC)) for i, token in enumerate(tokens)]
        db.session.add_all(walkers)
        db.session.commit()
        result = url, event_id, [(w.id, t) for w, t in zip(walkers, tokens, strict=True)]
        db.engine.dispose()
    return result


def new_body(rng):
    """A valid submission: a tree at a random point inside the zone."""
    return {"client_id": str(uuid.uuid4()), "preset": "tree",
            "lat": round(rng.uniform(45.5601, 45.5699), 7), "lon": round(rng.uniform(5.9151, 5.9299), 7),
            "accuracy": round(rng.uniform(3, 15), 1), "tags": {"species": "Tilia cordata"},
            "observed_at": datetime.now(UTC).isoformat(timespec="seconds")}


def api_client(job, start, deadline, interval, out):
    """Post submissions, replaying a share of this walker's earlier ones, until the deadline."""
    base, token, replay_share, seed = job
    rng, sent, due = random.Random(seed), [], start
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/api/events/{SLUG}/submissions"
    time.sleep(max(0.0, start - time.time()))
    while time.time() < deadline:
        if interval:  # paced (Poisson): latency counts from when the request was due
            due += rng.expovariate(1 / interval)
            time.sleep(max(0.0, due - time.time()))
        replay = bool(sent) and rng.random() < replay_share
        body = rng.choice(sent) if replay else new_body(rng)
        began = due if interval else time.time()
        try:
            response = session.post(url, json=body, timeout=60)
            status, text = response.status_code, response.text
        except requests.RequestException as error:
            status, text = None, repr(error)
        out["latency"].append(time.time() - began)
        out["replays"] += [body["client_id"]] if replay else []
        if status == 201:
            out["created"].append(body["client_id"])
            sent.append(body)
        elif replay and status == 200:
            out["replays_ok"].append(body["client_id"])
        if status is None or not 200 <= status < 300:
            out["errors"].append((status, text[:200]))


def sql_client(job, start, deadline, interval, out):
    """Insert rows, one INSERT + commit each, on its own connection until the deadline."""
    database, event_id, participant_id, seed = job
    rng = random.Random(seed)
    with psycopg.connect(database) as conn:
        time.sleep(max(0.0, start - time.time()))
        while time.time() < deadline:
            client_id, began = uuid.uuid4(), time.time()
            conn.execute(INSERT, (event_id, participant_id, client_id, rng.uniform(5.9151, 5.9299),
                                  rng.uniform(45.5601, 45.5699), 6.0, Jsonb({"species": "Tilia cordata"}),
                                  datetime.now(UTC), hashlib.sha256(client_id.bytes).hexdigest()))
            conn.commit()
            out["latency"].append(time.time() - began)
            out["created"].append(str(client_id))


def client_process(kind, jobs, start, deadline, interval):
    """One client process, a thread per job; returns what they recorded and when they ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    target = api_client if kind == "api" else sql_client
    outs = [{key: [] for key in KEYS} for _ in jobs]
    threads = [threading.Thread(target=target, args=(job, start, deadline, interval, out))
               for job, out in zip(jobs, outs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**{key: [x for out in outs for x in out[key]] for key in KEYS}, "ended": time.time()}


def cpu_snapshot():
    """Machine busy jiffies and {pid: (name, parent pid, utime + stime)} from /proc."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    processes = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else None
        except OSError:
            stat = None
        if stat:
            rest = stat[stat.rindex(")") + 2:].split()
            processes[int(entry.name)] = (stat[stat.index("(") + 1:stat.rindex(")")], int(rest[1]),
                                          int(rest[11]) + int(rest[12]))
    return sum(fields) - fields[3] - fields[4], processes


def cpu_split(before, after, seconds, server_pid):
    """CPUs used between two snapshots by the machine, the client processes, gunicorn and
    PostgreSQL (the whole cluster); "others" is the rest (other processes, also short-lived ones)."""
    used = dict.fromkeys(("clients", "gunicorn", "postgres"), 0)
    for pid, (name, parent, jiffies) in after[1].items():
        party = ("gunicorn" if server_pid in (pid, parent) else "clients" if parent == os.getpid()
                 else "postgres" if name == "postgres" else None)
        if party:
            used[party] += jiffies - before[1].get(pid, ("", 0, 0))[2]
    machine = after[0] - before[0]
    used = {"machine": machine, **used, "others": max(0, machine - sum(used.values()))}
    return {party: jiffies / os.sysconf("SC_CLK_TCK") / seconds for party, jiffies in used.items()}


def run_clients(kind, jobs, processes, seconds, rate, server_pid=None):
    """Run the jobs over `processes` processes for `seconds`; merge what they recorded."""
    start = time.time() + 1.0  # let every process and connection get ready first
    interval = len(jobs) / rate if rate else None
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pending = pool.starmap_async(client_process, [(kind, jobs[i::processes], start, start + seconds,
                                                       interval) for i in range(processes)])
        time.sleep(max(0.0, start + 1 - time.time()))  # CPU use is measured while all are busy
        before, began = cpu_snapshot(), time.time()
        time.sleep(max(0.0, start + seconds - 0.5 - time.time()))
        split = cpu_split(before, cpu_snapshot(), time.time() - began, server_pid)
        parts = pending.get()
    result = {key: [x for part in parts for x in part[key]] for key in KEYS}
    return {**result, "elapsed": max(p["ended"] for p in parts) - start, "split": split}


def report(title, result):
    """Print rows/s, latency percentiles and who used the CPU during one phase; return rows/s."""
    latency, rate = sorted(result["latency"]), len(result["created"]) / result["elapsed"]
    ms = {p: 1000 * latency[min(len(latency) - 1, int(p / 100 * len(latency)))] for p in (50, 95, 99, 100)}
    print(f"{title}: {rate:.0f} rows/s ({len(result['created'])} rows in {result['elapsed']:.1f} s)")
    print(f"  latency ms over {len(latency)} requests: p50 {ms[50]:.1f}  p95 {ms[95]:.1f}  "
          f"p99 {ms[99]:.1f}  max {ms[100]:.1f}")
    print("  CPUs busy: " + "  ".join(f"{party} {cpus:.2f}" for party, cpus in result["split"].items()))
    if result["split"]["others"] > 0.1:
        print(f"  WARNING: other work used {result['split']['others']:.2f} CPUs meanwhile: unreliable")
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each phase (20)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (4)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker; >1 uses gthread (1)")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (2)")
    parser.add_argument("--rate", type=float, help="pace all clients to this many requests/s in total")
    parser.add_argument("--replay", type=float, default=0.05, help="share of replayed bodies (0.05)")
    args = parser.parse_args()

    with throwaway_database("ingest") as (base_url, name):
        url, event_id, walkers = create_database(base_url, name, args.clients)
        args.port = args.port or free_port()
        with serving(url, args.port, args.workers, SLUG, args.threads) as server:
            print(machine())
            print(f"settings: {args.clients} clients, {args.seconds:g} s, gunicorn {args.workers} "
                  f"workers × {args.threads} threads ({'gthread' if args.threads > 1 else 'sync'})")
            pacing = (f"paced to {args.rate:g} requests/s in all" if args.rate
                      else "closed loop, no think time")
            print(f"clients: {args.processes} processes × {args.clients / args.processes:g} threads, one "
                  f"requests.Session each, {pacing}, {args.replay:.0%} replays")
            base = f"http://127.0.0.1:{args.port}"
            jobs = [(base, token, args.replay, i) for i, (_, token) in enumerate(walkers)]
            api = run_clients("api", jobs, args.processes, args.seconds, args.rate, server.pid)
            api_rate = report("API submissions (201)", api)
            print(f"  replays: {len(api['replays'])}, of which {len(api['replays_ok'])} answered 200; "
                  f"errors (non-2xx or no answer): {len(api['errors'])}")
            for status in sorted({str(s) for s, _ in api["errors"]}):
                texts = [text for s, text in api["errors"] if str(s) == status]
                print(f"    {status}: {len(texts)} × {texts[0]!r}")
        with psycopg.connect(dsn(url)) as conn:
            rows, distinct = conn.execute("SELECT count(*), count(DISTINCT client_id) FROM submission "
                                          "WHERE event_id = %s", [event_id]).fetchone()
        created = set(api["created"])
        verdict = "OK" if rows == distinct == len(created) == len(api["created"]) else "MISMATCH"
        print(f"  check: table holds {rows} rows, {distinct} distinct client_ids; {len(created)} distinct "
              f"client_ids got 201 -> {verdict}")
        sql_jobs = [(dsn(url), event_id, walker_id, i) for i, (walker_id, _) in enumerate(walkers)]
        ceiling = report("plain INSERT + commit, psycopg, one connection per client",
                         run_clients("sql", sql_jobs, args.processes, args.seconds, None))
        print(f"ratio API/INSERT: {api_rate / ceiling:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
