"""Faults as tests: the app under gunicorn (two workers) on a PostgreSQL of its own, fed by
outbox-like clients while PostgreSQL restarts, a worker is killed with SIGKILL and requests are
dropped right after being sent. In the end every point sent is stored exactly once."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import ZONE, a_submission
from gunicorn_server import free_port, gunicorn

from cartoparty import localdb

pytestmark = pytest.mark.faults

CARTOPARTY = Path(sys.executable).with_name("cartoparty")
SLUG = "faults"
CLIENTS = 6
POINTS_EACH = 50  # 300 points in all
DROP_EVERY = 6  # a point out of six is first sent on a connection closed before the answer
PAUSE = 0.02  # seconds between two points of a phone: the faults happen while points flow
RETRY_PAUSE = 0.25  # a phone waits longer (Retry-After); a short wait keeps the test short
DEADLINE = 60  # seconds for every point to be acknowledged
REQUEST_TIMEOUT = 5


class Postgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on its own port: this test restarts
    it, which the suite's shared cluster must not undergo. Run as `postgres` when we are root,
    like cartoparty.localdb."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://{localdb.USER}@127.0.0.1:{self.port}/{localdb.DATABASE}"

    def _run(self, program, *args, check=True):
        result = localdb._run([localdb._bin(program), *args], check=False)
        assert result.returncode == 0 or not check, f"{program} {args}: {result.stderr}"

    def create(self):
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", localdb.USER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C")
        self.start()
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={localdb.USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {localdb.DATABASE}")

    def start(self):
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                  "-l", str(self.directory / "postgresql.log"), "-o", options)

    def stop(self, check=True):
        self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data), check=check)

    def restart(self):
        """A fast restart (what `pg_ctl restart -m fast` does): sessions cut, then back."""
        self.stop()
        self.start()

    def server_pid(self):
        """The pid of the running postmaster."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def rows_per_client_id(self):
        """{client_id: number of rows} of every stored submission."""
        with psycopg.connect(self.url.replace("+psycopg", "")) as conn:
            return dict(conn.execute(
                "SELECT client_id::text, count(*) FROM submission GROUP BY client_id").fetchall())


@pytest.fixture
def postgres():
    directory = tempfile.mkdtemp(prefix="cartoparty-faults-")  # reachable by `postgres`
    cluster = Postgres(directory)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.stop(check=False)
        shutil.rmtree(directory, ignore_errors=True)


def cartoparty(database_url, *args):
    """Run a `cartoparty` command on `database_url`."""
    result = subprocess.run([str(CARTOPARTY), *args], env={**os.environ, "DATABASE_URL": database_url},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def server(postgres, tmp_path):
    """The app on the throwaway cluster, with one event, under gunicorn with two workers."""
    cartoparty(postgres.url, "db", "upgrade")
    zone = tmp_path / "zone.geojson"
    zone.write_text(json.dumps(ZONE))
    cartoparty(postgres.url, "event", "create", SLUG, "--name", "Pannes", "--zone", str(zone),
               "--presets", "tree")
    with gunicorn(postgres.url, tmp_path, workers=2) as running:
        yield running


class Outbox:
    """One walker's phone: points with fixed client_ids, each sent again, the same body, until
    the server answers 200 or 201 (or until the deadline)."""

    def __init__(self, server, token, acknowledged):
        self.url = f"{server.url}/api/events/{SLUG}/submissions"
        self.port = server.port
        self.headers = {"Authorization": f"Bearer {token}"}
        self.points = [a_submission(note=f"point {number}") for number in range(POINTS_EACH)]
        self.statuses = {}
        self.failures = 0
        self.acknowledged = acknowledged

    def run(self, deadline):
        session = requests.Session()
        for number, body in enumerate(self.points):
            if number % DROP_EVERY == 0:
                self.send_and_drop(body)
            self.statuses[body["client_id"]] = self.send(session, body, deadline)
            self.acknowledged.release()
            time.sleep(PAUSE)

    def send(self, session, body, deadline):
        """The final status for `body`: 200 or 201, a refusal (4xx), or None past the deadline."""
        while time.monotonic() < deadline:
            try:
                status = session.post(self.url, json=body, headers=self.headers,
                                      timeout=REQUEST_TIMEOUT).status_code
            except requests.RequestException:
                status = None  # refused, reset, timed out: the phone tries again later
            if status is not None and status < 500:
                return status
            self.failures += 1
            time.sleep(RETRY_PAUSE)
        return None

    def send_and_drop(self, body):
        """Send the whole request, then close the connection without reading the answer."""
        payload = json.dumps(body).encode()
        head = (f"POST /api/events/{SLUG}/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {self.headers['Authorization']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT) as sock:
                sock.sendall(head.encode() + payload)
        except OSError:
            pass  # the server was down: the point is sent again like any other


def join(server, pseudonym):
    response = requests.post(f"{server.url}/api/events/{SLUG}/participants",
                             json={"pseudonym": pseudonym, "consent": True}, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["token"]


class Progress:
    """How many points the phones have had acknowledged so far (or given up on)."""

    def __init__(self):
        self.count = 0
        self.lock = threading.Condition()

    def release(self):
        with self.lock:
            self.count += 1
            self.lock.notify_all()

    def reached(self, count):
        """Wait until `count` points are done; the number done."""
        with self.lock:
            self.lock.wait_for(lambda: self.count >= count, timeout=DEADLINE)
            return self.count


def test_every_point_is_stored_once_through_restarts_kills_and_drops(postgres, server):
    progress = Progress()
    outboxes = [Outbox(server, join(server, f"Marcheur {number}"), progress)
                for number in range(CLIENTS)]
    total = CLIENTS * POINTS_EACH
    deadline = time.monotonic() + DEADLINE
    phones = [threading.Thread(target=outbox.run, args=(deadline,)) for outbox in outboxes]
    for phone in phones:
        phone.start()

    done_at_restart = progress.reached(total // 5)
    first_postgres = postgres.server_pid()
    postgres.restart()
    done_at_kill = progress.reached(total // 2)
    [victim, _] = server.workers()
    os.kill(victim, signal.SIGKILL)
    for phone in phones:
        phone.join()

    statuses = {client_id: status for outbox in outboxes for client_id, status in outbox.statuses.items()}
    assert len(statuses) == total
    assert set(statuses.values()) <= {200, 201}, server.log()
    assert postgres.rows_per_client_id() == dict.fromkeys(statuses, 1)
    # The faults did happen, while points were flowing: phones had to send again...
    assert done_at_restart < total and done_at_kill < total
    assert postgres.server_pid() != first_postgres
    assert victim not in server.workers()
    assert sum(outbox.failures for outbox in outboxes) > 0
    # ...and points whose answer was lost (dropped connections) were replays the second time.
    assert 200 in statuses.values()
