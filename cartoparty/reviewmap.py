"""The review map's data: clusters or points in view, the list beside the map, live counts.

Every route but `changes` takes the same optional filters: preset and status (comma lists),
team (an id, or `none`), participant (an id), since and until (ISO 8601 times with a zone, on
received_at; since included, until excluded) and bbox (west,south,east,north in WGS84 degrees;
required on the map). They become one WHERE clause made of this module's fixed SQL fragments;
every value the user sends is a bound parameter."""

import json
import math
import re
import time
from collections import OrderedDict
from datetime import datetime

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text

from .accounts import event_organiser_required
from .errors import Invalid
from .extensions import db
from .models import Status
from .presets import all_presets
from .reference.checks import summary as reference_summary

bp = Blueprint("reviewmap", __name__, url_prefix="/api/organise")

POINTS_AT_MOST = 1500  # more submissions than this in view are clustered...
POINTS_FROM_ZOOM = 18  # ...unless the map is zoomed in this far
GRID_ZOOM = POINTS_FROM_ZOOM - 1
CELL_PIXELS = 64
MAX_ZOOM = 22
MAX_PER_PAGE = 200
INTEGER = re.compile(r"[0-9]{1,9}")
CURSOR_VALUE = re.compile(r"[0-9]{1,18}")
NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
# A '+' left unescaped in a query string arrives as a space: "10:00:00 02:00".
SPACED_OFFSET = re.compile(r" ([0-9]{2}(:?[0-9]{2})?)$")


def _integer(name, default=None, low=1, high=2**31 - 1):
    """The query parameter `name` as a whole number within [low, high]."""
    value = request.args.get(name)
    if value is None or value == "":
        if default is None:
            raise Invalid("parameter_required", field=name, name=name)
        return default
    if not INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise Invalid("whole_number_range", field=name, name=name, min=low, max=high)
    return int(value)


def read_bbox(required=False):
    """The `bbox` parameter as (west, south, east, north) in WGS84 degrees, or None."""
    value = request.args.get("bbox")
    if not value and required:
        raise Invalid("bbox_required", field="bbox")
    if not value:
        return None
    parts = value.split(",")
    if len(parts) != 4 or not all(NUMBER.fullmatch(part.strip()) for part in parts):
        raise Invalid("bbox_format", field="bbox")
    west, south, east, north = (float(part) for part in parts)
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise Invalid("bbox_range", field="bbox")
    return west, south, east, north


def _moment(name):
    """The query parameter `name` as an aware datetime, or None."""
    value = request.args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(SPACED_OFFSET.sub(r"+\1", value.strip()))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Invalid("iso_time", field=name, name=name)
    return moment


def _names(name, known):
    """The comma-separated query parameter `name` as a list of members of `known`, or None."""
    values = [part.strip() for part in request.args.get(name, "").split(",") if part.strip()]
    for value in values:
        if value not in known:
            raise Invalid("unknown_value", field=name, name=name, value=value[:40])
    return values or None


def read_filters(event, bbox=None):
    """The WHERE clause on `submission s` for the request's filters, and its parameters."""
    where, params = ["s.event_id = :event_id"], {"event_id": event.id}
    presets = _names("preset", all_presets())
    if presets:
        where.append("s.preset = ANY(CAST(:presets AS text[]))")
        params["presets"] = presets
    statuses = _names("status", {status.value for status in Status})
    if statuses:
        where.append("s.status = ANY(CAST(:statuses AS submission_status[]))")
        params["statuses"] = statuses
    if request.args.get("team") == "none":
        where.append("s.participant_id IN (SELECT id FROM participant "
                     "WHERE event_id = :event_id AND team_id IS NULL)")
    elif request.args.get("team"):
        where.append("s.participant_id IN (SELECT id FROM participant "
                     "WHERE event_id = :event_id AND team_id = :team)")
        params["team"] = _integer("team")
    if request.args.get("participant"):
        where.append("s.participant_id = :participant")
        params["participant"] = _integer("participant")
    for name, test in (("since", ">="), ("until", "<")):
        moment = _moment(name)
        if moment is not None:
            where.append(f"s.received_at {test} :{name}")
            params[name] = moment
    if bbox is not None:
        # && on the envelope lets PostgreSQL use the GiST index on submission.geom.
        where.append("s.geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)")
        params.update(zip(("west", "south", "east", "north"), bbox, strict=True))
    return " AND ".join(where), params


@bp.before_request
def plan_for_each_request():
    """Plan every query of these routes for its own bbox and filters, without parallel workers."""
    # psycopg prepares a statement run five times on one connection, and PostgreSQL may then
    # reuse one generic plan for every bbox: a sequential scan for a few metres of street, or
    # sorting 100,000 points instead of hashing them (measured: 2 to 100 times slower).
    # Parallel workers cost more to start than they save on these 5-50 ms queries, and a small
    # server has no idle core for them anyway (the cursor: 37 ms alone, 63 ms with one).
    db.session.execute(text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                            "set_config('max_parallel_workers_per_gather', '0', true)"))


def cell_size(zoom):
    """The side of a ~64-pixel clustering cell at `zoom`, in degrees of longitude."""
    return CELL_PIXELS * 360 / (256 * 2**zoom)


POINTS = """
    SELECT json_build_object(
        'mode', 'points', 'total', count(*), 'clusters', '[]'::json,
        'points', coalesce(json_agg(json_build_object(
            'id', s.id, 'client_id', s.client_id, 'preset', s.preset, 'status', s.status,
            'lat', ST_Y(s.geom), 'lon', ST_X(s.geom), 'version', s.version) ORDER BY s.id), '[]'))::text
    FROM submission s WHERE {where}
"""

# The event's filtered submissions counted on the grid of the finest clustered zoom. Cells are
# counted from 0° on both axes, so they stay put while the map pans, and each cell of a lower
# zoom is exactly 2 × 2 cells of the zoom above: one grid serves every zoom. Cells are `:wide`
# degrees of longitude wide and as high on screen as wide at the event's latitude (in Web
# Mercator a degree of latitude is 1/cos(lat) times longer than one of longitude); per-point
# trigonometry would cost a fifth more time for the same grid within a town.
# The OFFSET 0 fence computes ST_X and ST_Y once per point and lets PostgreSQL hash the cells:
# without it the planner expects as many cells as distinct points and sorts every point instead.
# Both queries also give the snapshot they read (one row of NULL cells when there is none).
GRID = """
    WITH now AS MATERIALIZED (SELECT pg_current_snapshot()::text AS snapshot)
    SELECT now.snapshot, cell.* FROM now LEFT JOIN (
        SELECT floor(x / :wide)::bigint, floor(y / :high)::bigint, count(*), sum(x), sum(y),
               count(*) FILTER (WHERE status = 'approved'), count(*) FILTER (WHERE status = 'rejected')
        FROM (SELECT ST_X(s.geom) AS x, ST_Y(s.geom) AS y, s.status FROM submission s
              WHERE {where} OFFSET 0) AS point
        GROUP BY 1, 2
    ) AS cell ON true
"""
# What changed since the snapshot `since`, from the change log: rows written by transactions
# that had not committed for that snapshot and have now. `txid >= xmin` lets the index find them.
DELTA = """
    WITH now AS MATERIALIZED (SELECT pg_current_snapshot()::text AS snapshot)
    SELECT now.snapshot, cell.* FROM now LEFT JOIN (
        SELECT floor(s.lon / :wide)::bigint, floor(s.lat / :high)::bigint, sum(s.sign),
               sum(s.sign * s.lon), sum(s.sign * s.lat),
               coalesce(sum(s.sign) FILTER (WHERE s.status = 'approved'), 0),
               coalesce(sum(s.sign) FILTER (WHERE s.status = 'rejected'), 0)
        FROM submission_change s
        WHERE {where} AND s.txid >= pg_snapshot_xmin(CAST(:kept_snapshot AS pg_snapshot))::text::bigint
          AND NOT pg_visible_in_snapshot(s.txid::text::xid8, CAST(:kept_snapshot AS pg_snapshot))
        GROUP BY 1, 2
    ) AS cell ON true
"""
# A request that has itself written cannot tell its own changes apart by transaction: it counts
# anew (only tests do that: they write and read in one transaction).
REVISION = text("SELECT coalesce(sum(revision), 0), pg_current_xact_id_if_assigned() IS NOT NULL "
                "FROM event_revision WHERE event_id = :event_id")
HEIGHT = text("SELECT cos(radians(ST_Y(ST_Centroid(zone)))) FROM event WHERE id = :event_id")
RECOUNT_AFTER = 1800  # seconds; the change log keeps an hour


class Grid:
    """An event's filtered submissions counted per cell at GRID_ZOOM, and summed up per zoom;
    with the revision and snapshot of the database it was last brought up to date with."""

    def __init__(self, high):
        self.high = high  # a cell's height / its width, in degrees
        self.cells = {0: {}}  # by how many zooms below GRID_ZOOM: {(x, y): [count, sum of lon,
        self.revision = self.snapshot = None  # sum of lat, approved, rejected]}
        self.counted_at = time.monotonic()

    def add(self, rows):
        """Add counts per GRID_ZOOM cell (negative for points gone) at every zoom known so far."""
        for x, y, *counts in rows:
            if x is None:
                continue
            for shift, cells in self.cells.items():
                key = (x >> shift, y >> shift)  # floor division by 2**shift, negatives included
                total = cells.setdefault(key, [0, 0.0, 0.0, 0, 0])
                for i, value in enumerate(counts):
                    total[i] += value
                if total[0] <= 0:
                    del cells[key]

    def at(self, zoom):
        """{(x, y): [count, sum of lon, sum of lat, approved, rejected]} for cells at `zoom`."""
        shift = GRID_ZOOM - zoom
        if shift not in self.cells:
            merged = {}
            for (x, y), counts in self.cells[0].items():
                total = merged.setdefault((x >> shift, y >> shift), [0, 0.0, 0.0, 0, 0])
                for i, value in enumerate(counts):
                    total[i] += value
            self.cells[shift] = merged
        return self.cells[shift]

    def in_view(self, zoom, bbox):
        """The cells at `zoom` that the bbox touches."""
        wide = cell_size(zoom)
        high = wide * self.high
        west, south, east, north = bbox
        columns = range(math.floor(west / wide), math.floor(east / wide) + 1)
        rows = range(math.floor(south / high), math.floor(north / high) + 1)
        return [(key, counts) for key, counts in self.at(zoom).items()
                if key[0] in columns and key[1] in rows]


# Per worker process: the latest grid of each (event, filters). Any write to the event's
# submissions raises its revision (models.EventRevision) and is logged (models.SubmissionChange),
# so a grid is reused as long as nothing changed, then brought up to date with what did.
grids = OrderedDict()
GRIDS_KEPT = 16


def grid(event, where, params, known=None):
    """The grid for these filters, up to date.

    `known` is the latest cursor of `changes` the map has seen: a grid at least that recent
    will do, so that while walkers keep sending points a map being panned is brought up to date
    once per poll of the cursor, not at every request."""
    key = (event.id, where, repr(sorted(params.items())))
    kept = grids.get(key)
    if kept is not None and known is not None and kept.revision >= known:
        grids.move_to_end(key)
        return kept
    revision, writing = db.session.execute(REVISION, {"event_id": event.id}).one()
    if kept is not None and kept.revision == revision and not writing:
        grids.move_to_end(key)
        return kept
    if kept is None or writing or kept.snapshot is None \
            or time.monotonic() - kept.counted_at > RECOUNT_AFTER:
        kept = Grid(db.session.scalar(HEIGHT, {"event_id": event.id}))
        query, snapshot = GRID, None
    else:
        query, snapshot = DELTA, kept.snapshot
    wide = cell_size(GRID_ZOOM)
    # (The kept snapshot has a name of its own: `since` is also one of the map's filters.)
    rows = db.session.execute(text(query.format(where=where)),  # noqa: S608 (fixed fragments)
                              {**params, "wide": wide, "high": wide * kept.high,
                               "kept_snapshot": snapshot}).all()
    kept.add(row[1:] for row in rows)
    kept.snapshot, kept.revision, kept.counted_at = rows[0][0], revision, time.monotonic()
    grids[key] = kept
    grids.move_to_end(key)
    while len(grids) > GRIDS_KEPT:
        grids.popitem(last=False)
    return kept


def clusters_json(cells):
    """The map's answer for clusters: the mean position and the counts of each cell."""
    clusters = [{"lat": round(sum_y / count, 7), "lon": round(sum_x / count, 7), "count": count,
                 "pending": count - approved - rejected, "approved": approved, "rejected": rejected}
                for _, (count, sum_x, sum_y, approved, rejected) in cells]
    clusters.sort(key=lambda c: (-c["lat"], c["lon"]))
    return json.dumps({"mode": "clusters", "total": sum(c["count"] for c in clusters),
                       "clusters": clusters, "points": []})


@bp.get("/<slug>/map")
@event_organiser_required
def map_data(event, organiser):
    """Submissions in the bbox: each point when few or zoomed in, else clusters on a grid."""
    bbox = read_bbox(required=True)
    zoom = _integer("zoom", low=0, high=MAX_ZOOM)
    known = request.args.get("cursor") or None
    if known is not None and not CURSOR_VALUE.fullmatch(known):
        raise Invalid("cursor_invalid", field="cursor")
    where, params = read_filters(event)
    if zoom <= GRID_ZOOM:
        cells = grid(event, where, params, known and int(known)).in_view(zoom, bbox)
        # Whole cells: an upper bound of what the view holds, exact when it is small.
        if sum(counts[0] for _, counts in cells) > POINTS_AT_MOST:
            return Response(clusters_json(cells), mimetype="application/json")
    where, params = read_filters(event, bbox)
    body = db.session.scalar(text(POINTS.format(where=where)), params)  # noqa: S608
    return Response(body, mimetype="application/json")


LIST_PAGE = """
    SELECT s.id, s.client_id::text AS client_id, s.preset, s.status::text AS status,
           ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, p.pseudonym, t.name AS team, s.accuracy,
           s.received_at, s.observed_at, s.version,
           (SELECT count(*) FROM photo WHERE photo.submission_id = s.id) AS photo_count, s.note
    FROM submission s JOIN participant p ON p.id = s.participant_id
         LEFT JOIN team t ON t.id = p.team_id
    WHERE {where}
    ORDER BY s.received_at DESC, s.id DESC
    LIMIT :limit OFFSET :offset
"""


@bp.get("/<slug>/list")
@event_organiser_required
def list_page(event, organiser):
    """One page of the filtered submissions, newest first, and how many there are in all."""
    page = _integer("page", default=1)
    per_page = _integer("per_page", default=50, high=MAX_PER_PAGE)
    where, params = read_filters(event, read_bbox())
    total = db.session.scalar(
        text(f"SELECT count(*) FROM submission s WHERE {where}"), params)  # noqa: S608
    rows = db.session.execute(text(LIST_PAGE.format(where=where)),  # noqa: S608
                              {**params, "limit": per_page, "offset": (page - 1) * per_page})
    items = [{**row, "received_at": row["received_at"].isoformat(),
              "observed_at": row["observed_at"].isoformat()} for row in rows.mappings()]
    return jsonify(total=total, page=page, per_page=per_page, items=items)


# One pass over the submissions counts every breakdown; names are joined to the few groups only.
DASHBOARD = """
    WITH counted AS (
        SELECT s.status::text AS status, s.preset, s.participant_id, count(*) AS n,
               GROUPING(s.status, s.preset, s.participant_id) AS unused
        FROM submission s WHERE {where}
        GROUP BY GROUPING SETS ((), (s.status), (s.preset), (s.participant_id))
    )
    SELECT c.status, c.preset, c.unused, c.n, p.pseudonym, t.name AS team
    FROM counted c LEFT JOIN participant p ON p.id = c.participant_id
         LEFT JOIN team t ON t.id = p.team_id
"""
# GROUPING() sets a bit for each column a row is not grouped by: status is the 4 bit.
BY_STATUS, BY_PRESET, BY_PARTICIPANT, ALL = 0b011, 0b101, 0b110, 0b111


@bp.get("/<slug>/dashboard")
@event_organiser_required
def dashboard(event, organiser):
    """How many filtered submissions there are, by status, preset, team and walker; and how
    much of the town's reference dataset was checked (whatever the filters)."""
    where, params = read_filters(event, read_bbox())
    counts = {"total": 0, "by_status": {status.value: 0 for status in Status}, "by_preset": {},
              "by_team": {}, "by_participant": {}, "reference": reference_summary(event)}
    rows = db.session.execute(text(DASHBOARD.format(where=where)), params)  # noqa: S608
    for row in sorted(rows, key=lambda row: -row.n):
        if row.unused == ALL:
            counts["total"] = row.n
        elif row.unused == BY_STATUS:
            counts["by_status"][row.status] = row.n
        elif row.unused == BY_PRESET:
            counts["by_preset"][row.preset] = row.n
        elif row.unused == BY_PARTICIPANT:
            counts["by_participant"][row.pseudonym] = row.n
            team = row.team or "—"
            counts["by_team"][team] = counts["by_team"].get(team, 0) + row.n
    return jsonify(counts)


# The sum of the event's revision counters, which triggers raise with every statement that
# writes its submissions, photos or matches (see models.EventRevision): one index lookup.
CURSOR = text("SELECT coalesce(sum(revision), 0)::text FROM event_revision WHERE event_id = :event_id")


@bp.get("/<slug>/changes")
@event_organiser_required
def changes(event, organiser):
    """A short token that changes whenever a submission of the event is added, changed or deleted."""
    return jsonify(cursor=db.session.scalar(CURSOR, {"event_id": event.id}))
