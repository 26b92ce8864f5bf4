"""Walkers benchmark (not a test): a mapping party's phones on loopback, then one phone back online.

    .venv/bin/python bench/walkers.py [--walkers 200] [--seconds 300] [--interval 10] [--workers 4]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, creates an event, serves the app under gunicorn on a free loopback port and runs the
walkers, one thread each, each from its own loopback address (127.0.x.y: the join limit is per
address, and phones on mobile data have their own). All join at the start, then each records a
point every `--interval` seconds on average (one in five with a small JPEG) into its outbox,
which sends it (more than one waiting: by the batch route) and sends the same body again after
an error, as the walker's page does. It prints errors, the latency of a save and the rows in
the database against the points acknowledged.

Then the burst: a phone with `--burst` points waiting sends them 50 per request, against the
same points one request each, and against the same rows written straight into the table with
psycopg (one INSERT per row in one transaction, and executemany) as a ceiling. Then it drops the
database, always.
"""

import argparse
import hashlib
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import requests
from common import dsn, event_database, free_port, machine, run, serving, throwaway_database
from PIL import Image
from psycopg.types.json import Jsonb
from requests.adapters import HTTPAdapter

os.environ.setdefault("SECRET_KEY", "bench-only-secret")


SLUG = "walkers"
ZONE = {"type": "Polygon", "coordinates": [[  # about 1.1 km around Chambéry's Place Saint-Léger
    [5.915, 45.560], [5.930, 45.560], [5.930, 45.570], [5.915, 45.570], [5.915, 45.560]]]}
BATCH = 50  # points per request, the server's limit
INSERT = """INSERT INTO submission (event_id, participant_id, client_id, preset, geom, accuracy,
    tags, note, observed_at, body_sha256) VALUES (%s, %s, %s, %s,
    ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s)"""


class FromAddress(HTTPAdapter):
    """Connections from one loopback source address: each phone is its own client."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def loopback(number):
    """The loopback source address of phone `number` (0-based): 127.1.0.1, 127.1.0.2, …"""
    return f"127.1.{number // 250}.{number % 250 + 1}"


def new_body(rng, note=""):
    """A valid point inside the zone: a tree with its species, or a bench."""
    tree = rng.random() < 0.6
    return {"client_id": str(uuid.uuid4()), "preset": "tree" if tree else "bench",
            "lat": round(rng.uniform(45.5601, 45.5699), 7), "lon": round(rng.uniform(5.9151, 5.9299), 7),
            "accuracy": round(rng.uniform(3, 15), 1),
            "tags": {"species": "Tilia cordata"} if tree else {"backrest": "yes"}, "note": note,
            "observed_at": datetime.now(UTC).isoformat(timespec="seconds")}


def small_jpeg(rng):
    """A 320x240 JPEG of a few coloured bands, different for each phone."""
    image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
    for band in range(0, 240, 40):
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (0, band, 320, band + 20))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


class Phone:
    """One walker's phone: joins, records points into its outbox, sends them until they are
    acknowledged (the same body again after an error), then each point's photo."""

    def __init__(self, base, number, seed):
        self.base, self.number, self.rng = base, number, random.Random(seed)
        self.session = requests.Session()
        self.session.mount("http://", FromAddress(loopback(number)))
        self.outbox, self.jpeg = [], small_jpeg(self.rng)
        self.latencies, self.errors, self.stored, self.photos = [], [], set(), set()

    def call(self, method, path, **options):
        """(status or None, JSON or text) of one request, errors remembered."""
        try:
            response = self.session.request(method, f"{self.base}/api/events/{SLUG}{path}",
                                            timeout=60, **options)
        except requests.RequestException as error:
            self.errors.append((None, repr(error)[:200]))
            return None, None
        if not response.ok:
            self.errors.append((response.status_code, response.text[:200]))
            return response.status_code, None
        return response.status_code, response.json()

    def join(self, until):
        """Join the event (again after an error); whether it did before `until`."""
        for attempt in range(20):
            _, answer = self.call("POST", "/participants",
                                  json={"pseudonym": f"walker {self.number}", "consent": True})
            if answer:
                self.session.headers["Authorization"] = f"Bearer {answer['token']}"
                return True
            time.sleep(min(10, 0.5 * 2 ** attempt) * self.rng.uniform(0.5, 1))
            if time.time() > until:
                return False
        return False

    def send_waiting(self):
        """One request for what waits (a batch when more than one point does); True if answered."""
        waiting = self.outbox[:BATCH]
        began = time.perf_counter()
        if len(waiting) == 1:
            status, answer = self.call("POST", "/submissions", json=waiting[0][0])
            refused = status is not None and 400 <= status < 500 and status != 429  # counted
            results = [{"status": status}] if answer or refused else None
        else:
            _, answer = self.call("POST", "/submissions/batch",
                                  json={"submissions": [body for body, _ in waiting]})
            results = answer and answer["results"]
        if results is None:
            return False
        self.latencies.append(time.perf_counter() - began)
        for (body, photo), result in zip(waiting, results, strict=True):
            if result["status"] in (200, 201):
                self.stored.add(body["client_id"])
                if photo:
                    self.send_photo(body["client_id"])
            elif "error" in result:  # refused in a batch (call() counted the others)
                self.errors.append((result["status"], str(result["error"])[:200]))
            self.outbox.remove((body, photo))
        return True

    def send_photo(self, client_id):
        """Upload the point's photo, again after an error (at most 10 tries)."""
        for attempt in range(10):
            status, _ = self.call("POST", f"/submissions/{client_id}/photos",
                                  files={"photo": ("photo.jpg", self.jpeg, "image/jpeg")})
            if status in (200, 201):
                self.photos.add(client_id)
                return
            time.sleep(min(10, 0.5 * 2 ** attempt))

    def walk(self, start, deadline, interval):
        """Join at `start`, then record and send points until `deadline`; drain the outbox."""
        time.sleep(max(0.0, start - time.time()))
        if not self.join(deadline):
            return
        due, attempts = time.time() + self.rng.expovariate(1 / interval), 0
        while time.time() < deadline + 30 and (self.outbox or time.time() < deadline):
            if time.time() >= due and time.time() < deadline:
                self.outbox.append((new_body(self.rng), self.rng.random() < 0.2))
                due += self.rng.expovariate(1 / interval)
            if self.outbox and self.send_waiting():
                attempts = 0
            elif self.outbox:  # the server did not take them: back off, then the same bodies
                time.sleep(min(30, 1 * 2 ** attempts) * self.rng.uniform(0.5, 1))
                attempts += 1
            else:
                time.sleep(max(0.0, min(due, deadline) - time.time()))


def walking(base, walkers, seconds, interval):
    """Run the phones for `seconds`; return them once all are done."""
    phones = [Phone(base, number, seed=number) for number in range(walkers)]
    start = time.time() + 1.0
    threads = [threading.Thread(target=phone.walk, args=(start, start + seconds, interval))
               for phone in phones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return phones


def report_walking(phones, url, event_id, seconds):
    """Print errors, save latency and the rows against what the phones were told was stored."""
    latencies = sorted(x for phone in phones for x in phone.latencies)
    errors = [error for phone in phones for error in phone.errors]
    stored = set().union(*(phone.stored for phone in phones))
    photos = set().union(*(phone.photos for phone in phones))
    joined = sum("Authorization" in phone.session.headers for phone in phones)
    ms = {p: 1000 * latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
          for p in (50, 95, 99)} if latencies else dict.fromkeys((50, 95, 99), float("nan"))
    print(f"walking: {joined}/{len(phones)} joined; {len(stored)} points acknowledged "
          f"({len(stored) / seconds:.1f}/s), {len(photos)} photos")
    print(f"  save latency over {len(latencies)} requests: p50 {ms[50]:.1f} ms  p95 {ms[95]:.1f} ms  "
          f"p99 {ms[99]:.1f} ms")
    print(f"  errors (aim 0): {len(errors)}")
    for status in sorted({str(s) for s, _ in errors}):
        texts = [text for s, text in errors if str(s) == status]
        print(f"    {status}: {len(texts)} × {texts[0]!r}")
    with psycopg.connect(dsn(url)) as conn:
        rows, distinct, photo_rows = conn.execute(
            "SELECT count(*), count(DISTINCT client_id), (SELECT count(*) FROM photo) FROM submission "
            "WHERE event_id = %s", [event_id]).fetchone()
    verdict = "OK" if rows == distinct == len(stored) and photo_rows == len(photos) else "MISMATCH"
    print(f"  check: table holds {rows} rows ({distinct} distinct client_ids) for {len(stored)} points "
          f"acknowledged, {photo_rows} photos for {len(photos)} -> {verdict}")


def burst_through_api(base, number, points, batched):
    """One phone's `points` waiting points sent 50 per request, or one request each; seconds."""
    phone = Phone(base, number, seed=number)
    assert phone.join(time.time() + 60), phone.errors
    bodies = [new_body(phone.rng, note=f"point {n}") for n in range(points)]
    began = time.perf_counter()
    for start in range(0, points, BATCH if batched else 1):
        chunk = bodies[start:start + BATCH] if batched else bodies[start:start + 1]
        if batched:
            _, answer = phone.call("POST", "/submissions/batch", json={"submissions": chunk})
            assert [r["status"] for r in answer["results"]] == [201] * len(chunk), answer
        else:
            status, _ = phone.call("POST", "/submissions", json=chunk[0])
            assert status == 201, phone.errors
    return time.perf_counter() - began


def burst_in_sql(url, event_id, points, rng, executemany):
    """The same rows written straight into the table in one transaction; seconds."""
    with psycopg.connect(dsn(url)) as conn:
        participant = conn.execute("SELECT min(id) FROM participant WHERE event_id = %s",
                                   [event_id]).fetchone()[0]
        rows = []
        for body in (new_body(rng) for _ in range(points)):
            digest = hashlib.sha256(body["client_id"].encode()).hexdigest()
            rows.append((event_id, participant, body["client_id"], body["preset"], body["lon"],
                         body["lat"], body["accuracy"], Jsonb(body["tags"]), body["note"],
                         datetime.fromisoformat(body["observed_at"]), digest))
        began = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            if executemany:
                cursor.executemany(INSERT, rows)
            else:
                for row in rows:
                    cursor.execute(INSERT, row)
        return time.perf_counter() - began


def report_burst(base, url, event_id, points, repeats, first_number):
    """Print points/s of each way, medians of `repeats` runs, and the ratios."""
    rng, numbers = random.Random(7), iter(range(first_number, first_number + 2 * repeats))
    ways = {
        "API, 50 points per request": lambda: burst_through_api(base, next(numbers), points, True),
        "API, one request per point": lambda: burst_through_api(base, next(numbers), points, False),
        "SQL, one INSERT per row": lambda: burst_in_sql(url, event_id, points, rng, False),
        "SQL, executemany": lambda: burst_in_sql(url, event_id, points, rng, True),
    }
    rates = {}
    for label, way in ways.items():
        times = [way() for _ in range(repeats)]
        rates[label] = points / statistics.median(times)
        print(f"  {label:>28}: {rates[label]:7.0f} points/s (median of {repeats}: "
              f"{1000 * statistics.median(times):.0f} ms for {points})")
    batched = rates["API, 50 points per request"]
    print(f"ratio batches / one INSERT per row: {batched / rates['SQL, one INSERT per row']:.2f}; "
          f"batches / executemany: {batched / rates['SQL, executemany']:.2f}; "
          f"batches / one request per point: {batched / rates['API, one request per point']:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walkers", type=int, default=200, help="phones (200)")
    parser.add_argument("--seconds", type=float, default=300, help="how long they walk (300)")
    parser.add_argument("--interval", type=float, default=10,
                        help="mean seconds between a walker's points (10)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (4)")
    parser.add_argument("--burst", type=int, default=200, help="points waiting on the phone (200)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each burst way (5)")
    args = parser.parse_args()
    with throwaway_database("walkers") as (base_url, name), \
            tempfile.TemporaryDirectory(prefix="cartoparty-bench-photos-") as photo_dir:
        os.environ["PHOTO_DIR"] = photo_dir  # gunicorn inherits it
        # gunicorn.conf.py logs every request to stdout: thousands of lines between the figures.
        os.environ.setdefault("GUNICORN_CMD_ARGS", "--access-logfile /dev/null")
        url, _, event_id = event_database(base_url, name, SLUG, "Bench walkers", ZONE)
        port = free_port()
        with serving(url, port, args.workers, SLUG):
            print(machine())
            print(f"settings: {args.walkers} walkers for {args.seconds:g} s, a point every "
                  f"{args.interval:g} s each on average (~{args.walkers / args.interval:.0f}/s in all), "
                  f"one in five with a photo; gunicorn --workers {args.workers}, the rest as its "
                  f"gunicorn.conf.py says")
            base = f"http://127.0.0.1:{port}"
            phones = walking(base, args.walkers, args.seconds, args.interval)
            report_walking(phones, url, event_id, args.seconds)
            print(f"burst: one phone back online with {args.burst} points waiting (no photos)")
            report_burst(base, url, event_id, args.burst, args.repeats, args.walkers)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
