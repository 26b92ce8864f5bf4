"""Conflation: every submission of an event against the OSM features of the same kind around
it, in one set-based query over indexed geometry.

Outcomes: `new` (nothing there), `existing` (the same feature, tags agree), `update` (the same
feature; tags to add or change — an OSM tag the walker did not give is never removed),
`ambiguous` (several plausible candidates, or a feature another submission claims better),
`duplicate` (another walker recorded the same feature earlier). Distances are in metres on the
WGS84 spheroid; each preset's `match_radius` is the limit."""

import json

from sqlalchemy import text

from .extensions import db
from .presets import all_presets

# Two candidates whose scores are closer than this cannot be told apart.
AMBIGUITY_MARGIN = 0.25
METRES_PER_DEGREE = 111_320

MATCH = text("""
WITH preset AS (
    SELECT * FROM jsonb_to_recordset(CAST(:presets AS jsonb)) AS p(id text, tags jsonb, radius float8)
), sub AS (
    SELECT s.id, s.preset, s.tags, s.geom, p.tags AS ident, p.radius,
           -- a box in degrees that surely holds the circle, so the GiST index does the search
           p.radius / (:metres_per_degree * cos(radians(least(abs(ST_Y(s.geom)), 89)))) AS box
    FROM submission s JOIN preset p ON p.id = s.preset
    WHERE s.event_id = :event_id AND s.status <> 'rejected'
      -- NOT EXISTS, an anti-join: NOT IN over a large set is re-scanned for every row once
      -- its hash no longer fits in work_mem.
      AND NOT EXISTS (SELECT 1 FROM match m WHERE m.submission_id = s.id
                      AND m.overridden_by IS NOT NULL)
), duplicate AS (
    SELECT DISTINCT ON (a.id) a.id, b.id AS original,
           ST_Distance(a.geom::geography, b.geom::geography) AS distance
    -- the table itself, not the `sub` CTE: only the table has the GiST index for &&
    FROM sub a JOIN submission b ON b.event_id = :event_id AND b.status <> 'rejected'
         AND b.preset = a.preset AND b.id < a.id
         AND b.geom && ST_Expand(a.geom, a.box)
         AND ST_DWithin(a.geom::geography, b.geom::geography, a.radius)
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_each_text(a.tags) t
                      WHERE b.tags ? t.key AND b.tags ->> t.key <> t.value)
    ORDER BY a.id, distance
), candidate AS (
    SELECT s.id, o.osm_type, o.osm_id, o.version, o.tags AS osm_tags, s.tags, s.ident,
           ST_Distance(s.geom::geography, o.geom::geography) AS distance,
           1 - ST_Distance(s.geom::geography, o.geom::geography) / s.radius
             + 0.5 * agreement.agree - 1.0 * agreement.disagree AS score
    FROM sub s
    JOIN osm_element o ON o.event_id = :event_id AND o.tags @> s.ident
         AND o.geom && ST_Expand(s.geom, s.box)
         AND ST_DWithin(s.geom::geography, o.geom::geography, s.radius)
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE o.tags ->> k = s.tags ->> k) AS agree,
               count(*) FILTER (WHERE o.tags ->> k <> s.tags ->> k) AS disagree
        FROM jsonb_object_keys(s.tags) AS k WHERE o.tags ? k AND NOT s.ident ? k
    ) AS agreement
    WHERE NOT EXISTS (SELECT 1 FROM duplicate d WHERE d.id = s.id)
), ranked AS (
    SELECT *, row_number() OVER mine AS rank, lead(score) OVER mine AS runner_up
    FROM candidate WINDOW mine AS (PARTITION BY id ORDER BY score DESC, distance, osm_id)
), best AS (
    SELECT *, runner_up IS NOT NULL AND runner_up > score - :margin AS close_call
    FROM ranked WHERE rank = 1
), claimed AS (
    SELECT *, row_number() OVER (PARTITION BY osm_type, osm_id, close_call
                                 ORDER BY score DESC, distance, id) AS claim
    FROM best
), outcome AS (
    SELECT c.id,
           CASE WHEN c.close_call OR c.claim > 1 THEN 'ambiguous'
                WHEN diff.added = '{}' AND diff.changed = '{}' THEN 'existing'
                ELSE 'update' END AS outcome,
           c.osm_type, c.osm_id, c.version, c.distance,
           CASE WHEN c.close_call OR c.claim > 1 THEN NULL
                ELSE jsonb_build_object('added', diff.added, 'changed', diff.changed) END AS tag_diff,
           NULL::bigint AS original
    FROM claimed c CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_object_agg(t.key, t.value) FILTER (WHERE NOT c.osm_tags ? t.key), '{}')
                   AS added,
               coalesce(jsonb_object_agg(t.key, jsonb_build_array(c.osm_tags ->> t.key, t.value))
                        FILTER (WHERE c.osm_tags ? t.key AND c.osm_tags ->> t.key <> t.value), '{}')
                   AS changed
        FROM jsonb_each_text(c.tags) AS t
    ) AS diff
    UNION ALL
    SELECT id, 'duplicate', NULL, NULL, NULL, distance, NULL, original FROM duplicate
    UNION ALL
    SELECT id, 'new', NULL, NULL, NULL, NULL, NULL, NULL FROM sub
    WHERE NOT EXISTS (SELECT 1 FROM duplicate d WHERE d.id = sub.id)
      AND NOT EXISTS (SELECT 1 FROM candidate c WHERE c.id = sub.id)
)
INSERT INTO match (submission_id, outcome, osm_type, osm_id, osm_version, distance_m, tag_diff,
                   duplicate_of_id, matched_at)
SELECT id, outcome, osm_type, osm_id, version, distance, tag_diff, original, now() FROM outcome
RETURNING outcome
""")
# Matches an organiser set by hand stay; the others are made anew.
CLEAR = text("""
    DELETE FROM match m USING submission s
    WHERE s.id = m.submission_id AND s.event_id = :event_id AND m.overridden_by IS NULL
""")


def presets_for_matching(presets):
    """The presets as the query reads them: identifying tags and radius in metres."""
    return json.dumps([{"id": preset["id"], "tags": preset["tags"], "radius": preset["match_radius"]}
                       for preset in presets.values()])


def match(event):
    """Match every submission of the event; return how many got each outcome."""
    db.session.execute(CLEAR, {"event_id": event.id})
    outcomes = db.session.scalars(MATCH, {
        "event_id": event.id, "presets": presets_for_matching(all_presets()),
        "margin": AMBIGUITY_MARGIN, "metres_per_degree": METRES_PER_DEGREE}).all()
    counts = {name: 0 for name in ("new", "existing", "update", "ambiguous", "duplicate")}
    for outcome in outcomes:
        counts[outcome] += 1
    return counts
