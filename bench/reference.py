"""Reference import benchmark (issue 16; not a test): loading the 15,375 trees of Grenoble
(Lambert CC45, EPSG:3945) into an event whose zone covers the city, reprojection included,
beside merely reading the same file with the csv module.

    .venv/bin/python bench/reference.py [--runs 3]

It makes a throwaway database (on the project-local cluster unless DATABASE_URL is set),
migrates it, imports the file --runs times (each replacing the last, as a re-import does), then
drops the database, always. It skips, with a message, when ../shared/data is absent.
"""

import argparse
import csv
import io
import os
import statistics
import sys
import time

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
    args = parser.parse_args()
    if not GRENOBLE.exists():
        print(f"skipped: {GRENOBLE} is absent (the shared data folder beside the checkout)")
        return 0
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event
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
    read, parse, load = (statistics.median(times) for times in (reading, parsing, importing))
    print(f"{GRENOBLE.name}: {len(data) / 2**20:.1f} MiB, {report.read} rows, {report.loaded} loaded, "
          f"{len(report.fixed)} fixed, {len(report.refused)} refused; median of {args.runs} runs")
    print(f"  csv module alone, reading the rows:      {1000 * read:8.1f} ms")
    print(f"  read_file (parse, check, reproject):     {1000 * parse:8.1f} ms  ({parse / read:.1f}× csv)")
    print(f"  whole import (read + COPY + INSERT, commit): {1000 * load:5.1f} ms  ({load / read:.1f}× csv, "
          f"{report.loaded / load:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
