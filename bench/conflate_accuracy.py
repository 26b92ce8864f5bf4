"""Conflation accuracy benchmark (not a test): how often the matching is right, on synthetic
trees whose truth is known, beside a nearest-feature-within-radius baseline of the same run.

    .venv/bin/python bench/conflate_accuracy.py [--points 10000] [--seed 2026]

The generator (its own, seeded) plants real trees, about one per 400 m², denser in some
streets and sparser in parks. Some of them are in OSM (mapped from imagery: up to 1 m off),
some are not; walkers record a share of both with a phone whose GPS accuracy is 3, 5, 10 or
15 m (the error drawn from that accuracy, which the point reports), and some trees twice.
Then it scores each point:

- a tree that is in OSM is right when the point is matched (existing or update) to its node;
- a tree that is not is right when the point is `new`;
- a tree recorded twice is right when one point is right as above and the other is the
  `duplicate` of it (either way round).

The baseline gives each point the nearest OSM tree within the preset's radius, else `new`,
and never finds a duplicate. It also counts the points called duplicates although a feature of
their own lay within a metre. It runs in a throwaway database, dropped at the end.
"""

import argparse
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from common import dsn, machine, run, throwaway_database
from scipy.spatial import cKDTree

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

SLUG = "accuracy"
LAT0, LON0 = 45.56, 5.90  # Chambéry
M_PER_DEG_LAT = 111_320
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
AREA_PER_TREE_M2 = 400
ACCURACIES_M = (3, 5, 10, 15)
SPECIES = ("Platanus × acerifolia", "Tilia cordata", "Acer platanoides", "Quercus robur")
IN_OSM, SURVEYED, TWICE = 0.7, 0.6, 0.05  # shares of the trees


def plant(points, rng):
    """Real trees (x, y in metres from the south-west corner) for `points` points recorded, in
    a square zone: 30 % in streets of three rows 6 m apart, one tree every 8 m or so along
    them (dense), the others anywhere (sparse)."""
    trees = round(points / SURVEYED / (1 + TWICE))
    side = math.sqrt(trees * AREA_PER_TREE_M2)
    xy = rng.uniform(0, side, (trees, 2))
    count = max(1, round(0.3 * trees / (3 * 300 / 8)))
    streets = rng.uniform(0, side, (count, 2))
    in_street = rng.random(trees) < 0.3
    picked = streets[rng.integers(0, count, trees)]
    along = rng.uniform(-150, 150, trees)
    xy[in_street, 0] = np.clip(picked[in_street, 0] + along[in_street], 0, side)
    xy[in_street, 1] = np.clip(picked[in_street, 1] + rng.choice([-6, 0, 6], in_street.sum()), 0, side)
    return xy, side


def generate(points, seed):
    """The trees, the OSM features and the points, with the truth of each point."""
    rng = np.random.default_rng(seed)
    trees, side = plant(points, rng)
    n = len(trees)
    species = rng.integers(0, len(SPECIES), n)
    in_osm = rng.random(n) < IN_OSM
    osm_xy = trees + rng.uniform(-1, 1, (n, 2))  # imagery: up to a metre off
    osm = [(int(i) + 1, osm_xy[i], {"natural": "tree", **(
        {"species": SPECIES[species[i]]} if rng.random() < 0.4 else {})}) for i in np.flatnonzero(in_osm)]
    surveyed = np.flatnonzero(rng.random(n) < SURVEYED)
    twice = set(surveyed[rng.random(len(surveyed)) < TWICE].tolist())
    recorded = []  # (tree, x, y, accuracy, tags)
    for tree in surveyed.tolist():
        for _ in range(2 if tree in twice else 1):
            accuracy = float(rng.choice(ACCURACIES_M))
            # The error of a fix of this accuracy (the radius holding ~68 % of fixes).
            error = rng.normal(0, accuracy / math.sqrt(2), 2)
            tags = {"species": SPECIES[species[tree]]} if rng.random() < 0.5 else {}
            recorded.append((tree, *(trees[tree] + error), accuracy, tags))
    random.Random(seed).shuffle(recorded)
    return {"trees": n, "side": side, "in_osm": in_osm, "osm": osm, "points": recorded}


def to_lat_lon(x, y):
    """WGS84 degrees of a position in metres from the zone's south-west corner."""
    return LAT0 + y / M_PER_DEG_LAT, LON0 + x / M_PER_DEG_LON


def load(url, world):
    """The event, its OSM features and its points in database `url`; return the event id and
    each point's submission id (in the order of world["points"])."""
    from cartoparty.extensions import db, upgrade_schema
    from cartoparty.models import Event, Participant
    from cartoparty.osm import store
    from cartoparty.osm.overpass import Element
    from cartoparty.zones import read_zone

    side = world["side"] + 60  # the GPS may put a point a little outside the planted square
    south, west = to_lat_lon(-30, -30)
    north, east = to_lat_lon(side, side)
    zone = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                 [west, north], [west, south]]]}
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade_schema()
        event = Event(slug=SLUG, name="Accuracy", zone=read_zone(zone), presets=["tree"])
        db.session.add(event)
        db.session.flush()
        walker = Participant(event_id=event.id, pseudonym="Bench", token_hash="0" * 64,
                             consented_at=datetime.now(UTC))
        db.session.add(walker)
        elements = [Element("node", osm_id, 1, None, tags, *to_lat_lon(*xy))
                    for osm_id, xy, tags in world["osm"]]
        store.store(event, elements, "bench")
        db.session.commit()
        event_id, walker_id = event.id, walker.id
        db.engine.dispose()
    client_ids = [uuid.uuid4() for _ in world["points"]]
    began = datetime(2026, 6, 13, 8, tzinfo=UTC)
    with psycopg.connect(dsn(url)) as conn:
        columns = ("event_id, participant_id, client_id, preset, geom, accuracy, tags, note, "
                   "observed_at, status, version, body_sha256")
        with conn.cursor().copy(f"COPY submission ({columns}) FROM STDIN") as copy:
            for order, (client_id, (_, x, y, accuracy, tags)) in enumerate(
                    zip(client_ids, world["points"], strict=True)):
                lat, lon = to_lat_lon(x, y)
                copy.write_row((event_id, walker_id, client_id, "tree", f"SRID=4326;POINT({lon} {lat})",
                                accuracy, json.dumps({"natural": "tree", **tags}), "",
                                began + timedelta(seconds=order), "approved", 1, "0" * 64))
        stored = dict(conn.execute("SELECT client_id, id FROM submission WHERE event_id = %s",
                                   (event_id,)).fetchall())
        conn.execute("ANALYZE")
    return app, event_id, [stored[client_id] for client_id in client_ids]


def matched(app, event_id):
    """What conflation says of each submission: id -> (outcome, osm_id, duplicate_of_id)."""
    from cartoparty.extensions import db
    from cartoparty.models import Event
    from cartoparty.osm import conflate

    with app.app_context():
        event = db.session.get(Event, event_id)
        began = time.perf_counter()
        conflate.match(event)
        db.session.commit()
        seconds = time.perf_counter() - began
        rows = db.session.execute(db.text(
            "SELECT m.submission_id, m.outcome, m.osm_id, m.duplicate_of_id FROM match m "
            "JOIN submission s ON s.id = m.submission_id WHERE s.event_id = :id"), {"id": event_id}).all()
        db.engine.dispose()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}, seconds


def nearest_baseline(world, ids, radius=5.0):
    """Each point: the nearest OSM tree within the radius (existing), else new; no duplicates."""
    osm_ids = np.array([osm_id for osm_id, _, _ in world["osm"]])
    tree = cKDTree(np.array([xy for _, xy, _ in world["osm"]]))
    xy = np.array([(x, y) for _, x, y, _, _ in world["points"]])
    distance, index = tree.query(xy, distance_upper_bound=radius)
    return {sid: ("existing", int(osm_ids[i]), None) if math.isfinite(d) else ("new", None, None)
            for sid, d, i in zip(ids, distance, index, strict=True)}


def right_alone(answer, tree, world):
    """Whether one point's answer is right for its tree (recorded once)."""
    outcome, osm_id, _ = answer
    if world["in_osm"][tree]:
        return outcome in ("existing", "update") and osm_id == tree + 1
    return outcome == "new"


def score(answers, world, ids):
    """Counts of right and wrong points, by what the truth is."""
    by_tree = {}
    for sid, (tree, *_rest) in zip(ids, world["points"], strict=True):
        by_tree.setdefault(tree, []).append(sid)
    counts = Counter()
    for tree, sids in by_tree.items():
        kind = "twice" if len(sids) == 2 else "in OSM" if world["in_osm"][tree] else "new"
        counts[f"{kind} points"] += len(sids)
        answers_of = [answers.get(sid, ("none", None, None)) for sid in sids]
        if len(sids) == 1:
            good = right_alone(answers_of[0], tree, world)
        else:
            a, b = sids
            good = any(right_alone(answers[first], tree, world) and answers[second][0] == "duplicate"
                       and answers[second][2] == first for first, second in ((a, b), (b, a))
                       if first in answers and second in answers)
        counts[f"{kind} right"] += len(sids) * good
    counts["points"] = len(ids)
    counts["right"] = sum(v for k, v in counts.items() if k.endswith(" right"))
    return counts


def false_duplicates(answers, world, ids):
    """Points called duplicates though their tree was recorded once and its OSM node lay
    within a metre of them."""
    node = {osm_id: xy for osm_id, xy, _ in world["osm"]}
    times = Counter(tree for tree, *_ in world["points"])
    calls = 0
    for sid, (tree, x, y, _, _) in zip(ids, world["points"], strict=True):
        own = node.get(tree + 1)
        calls += (answers.get(sid, ("",))[0] == "duplicate" and times[tree] == 1 and own is not None
                  and math.dist(own, (x, y)) <= 1)
    return calls


def report(label, counts, extra=""):
    def share(right, total):
        return f"{100 * counts[right] / counts[total]:5.1f} %" if counts[total] else "  —  "

    print(f"{label:>34}: {share('right', 'points')} right — in OSM "
          f"{share('in OSM right', 'in OSM points')}, new {share('new right', 'new points')}, "
          f"recorded twice {share('twice right', 'twice points')}{extra}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000, help="points recorded (10000)")
    parser.add_argument("--seed", type=int, default=2026, help="the generator's seed (2026)")
    args = parser.parse_args()
    print(machine())
    world = generate(args.points, args.seed)
    print(f"{world['trees']} trees on {world['side'] / 1000:.2f} km × {world['side'] / 1000:.2f} km, "
          f"{len(world['osm'])} in OSM; {len(world['points'])} points at "
          f"±{'/'.join(map(str, ACCURACIES_M))} m; seed {args.seed}")
    with throwaway_database("accuracy") as (base_url, name):
        from common import create_database
        url = create_database(base_url, name)
        app, event_id, ids = load(url, world)
        answers, seconds = matched(app, event_id)
        print(f"matching took {seconds:.2f} s; outcomes {dict(Counter(a[0] for a in answers.values()))}")
        report("cartoparty's matching", score(answers, world, ids),
               f"; {false_duplicates(answers, world, ids)} false duplicates (own feature within 1 m)")
        report("nearest feature within the radius", score(nearest_baseline(world, ids), world, ids))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
