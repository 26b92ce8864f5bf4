"""What the benchmarks share: a throwaway database on the project's PostgreSQL, and the app
under gunicorn on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


def dsn(url, database=None):
    """A libpq connection string for a SQLAlchemy URL, optionally naming another database."""
    url = make_url(url).set(drivername="postgresql")
    return url.set(database=database or url.database).render_as_string(hide_password=False)


def create_database(base_url, name):
    """Create database `name` on the server of `base_url`; return its SQLAlchemy URL."""
    with psycopg.connect(dsn(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def event_database(base_url, name, slug, title, zone, presets=("tree", "bench", "defibrillator")):
    """Create and migrate database `name` with one event; return (its URL, an app on it, the
    event's id). The app's pool is closed: use it in an app context to add more."""
    from cartoparty import create_app
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event
    from cartoparty.zones import read_zone

    url = create_database(base_url, name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_schema()
        event = Event(slug=slug, name=title, zone=read_zone(zone), presets=list(presets))
        db.session.add(event)
        db.session.commit()
        event_id = event.id
        db.engine.dispose()
    return url, app, event_id


def drop_database(base_url, name):
    """Drop the bench database, whoever is still connected."""
    with psycopg.connect(dsn(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def free_port():
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(url, port, workers, slug, threads=1):
    """Serve the app on 127.0.0.1:port; return the process once /api/events/<slug> answers."""
    command = [str(ROOT / ".venv/bin/gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers",
               str(workers), "--log-level", "warning", "--backlog", "2048"]
    if threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench")}
    server = subprocess.Popen([*command, "cartoparty:create_app()"], cwd=ROOT, env=env,
                              start_new_session=True)  # Ctrl-C reaches us, not it: we stop it
    try:
        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/events/{slug}", timeout=5).ok:
                    return server
            except requests.RequestException:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {server.returncode}")
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 30 s")
    except BaseException:
        stop(server)
        raise


@contextmanager
def throwaway_database(prefix):
    """(server URL, name) of a database for the bench to create, on the project-local cluster
    unless DATABASE_URL is set; dropped at the end, whatever happens."""
    from cartoparty import config, localdb

    if not os.environ.get("DATABASE_URL"):
        localdb.ensure_running()
    base_url, name = config.database_url(), f"cartoparty_bench_{prefix}_{os.getpid()}"
    try:
        yield base_url, name
    finally:
        drop_database(base_url, name)


@contextmanager
def serving(url, port, workers, slug, threads=1):
    """gunicorn serving the app (see start_gunicorn), stopped at the end whatever happens."""
    server = start_gunicorn(url, port, workers, slug, threads)
    try:
        yield server
    finally:
        stop(server)


def run(main):
    """Run a bench's main(); Ctrl-C ends it with status 130 (its databases dropped)."""
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def stop(server):
    """Stop gunicorn gracefully, or kill it after 10 s; nothing if it has stopped already."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def machine():
    """nproc, CPU model and memory of this machine, as text."""
    kib = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                 .splitlines() if line.startswith("model name"))
    load = Path("/proc/loadavg").read_text().split()[:3]
    began, total = time.perf_counter(), 0
    for number in range(3_000_000):  # this VM's CPU speed drifts by half: a yardstick between runs
        total += number
    return (f"machine: nproc {len(os.sched_getaffinity(0))}, {model}, {int(kib) / 2**20:.1f} GiB RAM; "
            f"load average before the run {' '.join(load)}; a fixed Python loop takes "
            f"{1000 * (time.perf_counter() - began):.0f} ms (lower is faster)")


def machine_cpu_seconds():
    """CPU time the whole machine has spent busy since boot, in seconds summed over all cores
    (user, nice, system, irq, softirq, steal from /proc/stat: everything but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid):
    """CPU time (user + system) process `pid` has used so far, in seconds, or None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
