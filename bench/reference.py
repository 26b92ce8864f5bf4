"""Reference benchmark (issue 16; not a test): loading the 15,375 trees of Grenoble (Lambert
CC45, EPSG:3945) into an event whose zone covers the city, reprojection included; then 5,000
walkers' verdicts on them stored through the API's code (batches of 50, each batch's rows
checked in one query) and matched to their rows — every row's outcome from its approved
verdicts, as the review page, the dashboard and the export read it — all beside merely reading
the same file with the csv module.

    .venv/bin/python bench/reference.py [--runs 3] [--verdicts 5000]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, imports the file --runs times (each replacing the last, as a re-import does), then
drops the database, always. It skips, with a message, when ../shared/data is absent.
"""

import argparse
import csv
import io
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

from common import ROOT, create_database, machine, run, throwaway_database

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

GRENOBLE = (ROOT.parent / "shared" / "data" / "fr_opendata" / "trees" / "grenoble"
            / "donnees-defi-egc_2017_grenoble_arbres.csv")
ZONE = {"type": "Polygon", "coordinates": [[  # Grenoble and a margin (lon, lat)
    [5.68, 45.14], [5.77, 45.14], [5.77, 45.22], [5.68, 45.22], [5.68, 45.14]]]}


def timed(work):
    """(seconds, result) of one call."""
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def csv_only(data):
    """The file's rows as the csv module alone reads them: the floor of any import."""
    return sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verdicts", type=int, default=5000)
    args = parser.parse_args()
    if not GRENOBLE.exists():
        print(f"skipped: {GRENOBLE} is absent (the shared data folder beside the checkout)")
        return 0
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event
    from cartoparty.reference import checks
    from cartoparty.reference.read import read_file
    from cartoparty.reference.store import import_reference
    from cartoparty.zones import read_zone

    data = GRENOBLE.read_bytes()
    print(machine())
    with throwaway_database("reference") as (base_url, name):
        url = create_database(base_url, name)
        with create_app({"SQLALCHEMY_DATABASE_URI": url}).app_context():
            upgrade_schema()
            event = Event(slug="grenoble", name="Arbres de Grenoble", zone=read_zone(ZONE), presets=["tree"])
            db.session.add(event)
            db.session.commit()
            reading, parsing, importing = [], [], []
            for _ in range(args.runs):
                seconds, rows = timed(lambda: csv_only(data))
                reading.append(seconds)
                seconds, table = timed(lambda: read_file(data, "trees", "EPSG:3945"))
                parsing.append(seconds)

                def load():
                    report = import_reference(event, data, GRENOBLE.name, "trees", "EPSG:3945")
                    db.session.commit()
                    return report

                seconds, report = timed(load)
                importing.append(seconds)
            assert report.loaded == len(table.rows) == rows - 1, report.lines()
            storing, matched = verdicts(event, args.verdicts)
            matching, outcomes = [], None
            for _ in range(args.runs):
                seconds, outcomes = timed(lambda: checks.outcomes(event))
                matching.append(seconds)
            seconds, summary = timed(lambda: checks.summary(event))
            assert summary["checked"] == matched, summary
    read, parse, load = (statistics.median(times) for times in (reading, parsing, importing))
    match = statistics.median(matching)
    print(f"{GRENOBLE.name}: {len(data) / 2**20:.1f} MiB, {report.read} rows, {report.loaded} loaded, "
          f"{len(report.fixed)} fixed, {len(report.refused)} refused; median of {args.runs} runs")
    print(f"  csv module alone, reading the rows:      {1000 * read:8.1f} ms")
    print(f"  read_file (parse, check, reproject):     {1000 * parse:8.1f} ms  ({parse / read:.1f}× csv)")
    print(f"  whole import (read + COPY + INSERT, commit): {1000 * load:5.1f} ms  ({load / read:.1f}× csv, "
          f"{report.loaded / load:,.0f} rows/s)")
    print(f"{args.verdicts:,} verdicts on {matched:,} rows (60 % confirmed, 20 % moved, 10 % different, "
          f"10 % missing), 50 walkers")
    print(f"  stored through submissions.store, 50 a batch: {1000 * storing:5.1f} ms  "
          f"({storing / read:.1f}× csv, {args.verdicts / storing:,.0f} verdicts/s)")
    print(f"  every row's outcome (checks.outcomes, {len(outcomes):,} rows): {1000 * match:5.1f} ms  "
          f"({match / read:.1f}× csv)")
    print(f"  summary for the dashboard (checks.summary):  {1000 * seconds:5.1f} ms  "
          f"({seconds / read:.1f}× csv)")
    return 0


def verdicts(event, count):
    """Store `count` verdicts from 50 walkers on distinct rows, approve them; return (seconds to
    store them, how many rows they checked)."""
    from cartoparty.extensions import db
    from cartoparty.models import Participant, ReferenceRow, Status, Submission
    from cartoparty.submissions import store

    walkers = [Participant(event_id=event.id, pseudonym=f"marcheur {n}", token_hash=uuid.uuid4().hex,
                           consented_at=datetime.now(UTC)) for n in range(50)]
    db.session.add_all(walkers)
    db.session.commit()
    rows = db.session.execute(db.select(ReferenceRow.id, db.func.ST_Y(ReferenceRow.geom),
                                        db.func.ST_X(ReferenceRow.geom))
                              .where(ReferenceRow.event_id == event.id)).all()
    chosen = random.Random(16).sample(rows, count)
    kinds = ["confirmed"] * 6 + ["moved"] * 2 + ["different", "missing"]
    bodies = []
    for n, (row_id, lat, lon) in enumerate(chosen):
        verdict = kinds[n % len(kinds)]
        shift = 0.00005 if verdict == "moved" else 0
        bodies.append({"client_id": str(uuid.uuid4()), "preset": "tree", "lat": lat + shift,
                       "lon": lon + shift, "reference": row_id, "verdict": verdict,
                       "tags": {} if verdict == "missing" else {"height": "12"} if verdict == "different"
                       else {"genus": "Acer"}})
    began = time.perf_counter()
    for start in range(0, count, 50):
        outcomes = store(event, walkers[(start // 50) % 50], bodies[start:start + 50])
        assert all(isinstance(o, tuple) and o[0] == 201 for o in outcomes), outcomes[:3]
        db.session.commit()
    storing = time.perf_counter() - began
    db.session.execute(db.update(Submission).where(Submission.event_id == event.id)
                       .values(status=Status.approved))
    db.session.commit()
    return storing, len(chosen)


if __name__ == "__main__":
    sys.exit(run(main))
