"""The plan of OpenStreetMap changes for an event: what its approved and matched points mean
as OSM edits, built once and stored (tables osm_plan and osm_change), so that what is exported
or uploaded later is exactly what the organiser saw.

- a point matched as `new` becomes a create: a node with the preset's tags and the walker's;
- `update` becomes a modify of the matched element: its current tags (fetched again from the
  OSM API just before) with the walker's additions and changes. A tag is never removed and an
  element never moved: the walker's GPS is less exact than what is mapped;
- `existing` is nothing, unless the organiser asked to "mark what we checked": then a modify
  that sets check_date to the survey day, as StreetComplete does;
- the rest is held back, each with its reason.

A three-way merge guards other mappers' work. For each tag the walker gave, three values: OSM's
when the point was matched (kept in the match's tag_diff), OSM's now, the walker's. OSM
unchanged → the walker's value applies; OSM already has it → nothing to do; OSM changed it to
something else → a conflict, which the organiser settles (OSM's value or the walker's) or the
item waits. When the API cannot be reached the plan rests on the stored OSM data and says so.
"""

import math
import re
from datetime import UTC, datetime
from importlib import metadata
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import current_app
from psycopg.types.json import Jsonb
from sqlalchemy import text

from ..errors import Conflict, Invalid, NotFound
from ..extensions import db
from ..models import OsmChange, OsmPlan
from ..presets import LIMITS
from . import api, osmchange
from .osmchange import NOT_XML

ACTIONS = ("create", "modify")
# The plan's files and their extensions (cartoparty export FORMAT, the page's downloads).
FORMATS = {"osc": ".osc", "josm": ".osm", "osm-preview": ".geojson"}
MAX_CHANGES = 10_000  # the API's limit per changeset
# Conflicts on the element itself rather than on a tag are kept under this name.
POSITION = "@position"
HASHTAG = re.compile(r"#[\w-]{1,100}")
WIKI = "https://wiki.openstreetmap.org/wiki/"
WIKI_ACTIVITIES = "Organised_Editing/Activities/"

POINTS = text("""
    SELECT s.id, s.status, s.preset, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, s.tags,
           s.observed_at, m.outcome, m.osm_type, m.osm_id, m.tag_diff, m.duplicate_of_id,
           o.version AS stored_version, o.tags AS stored_tags,
           ST_Y(o.geom) AS stored_lat, ST_X(o.geom) AS stored_lon,
           s.version, u.uploaded_version, u.osm_type AS uploaded_type, u.osm_id AS uploaded_id,
           u.osm_version AS uploaded_osm_version
    FROM submission s
    LEFT JOIN submission_osm u ON u.submission_id = s.id
    LEFT JOIN match m ON m.submission_id = s.id
    LEFT JOIN osm_element o ON o.event_id = s.event_id AND o.osm_type = m.osm_type
                           AND o.osm_id = m.osm_id
    WHERE s.event_id = :event_id AND s.status = 'approved' AND s.id <> ALL(:in_flight)
      AND ((u.uploaded_version IS NULL AND (m.outcome = 'update' OR (m.outcome = 'existing' AND :checked)))
           OR (u.uploaded_version IS NOT NULL AND s.version <> u.uploaded_version))
    ORDER BY s.id
""")
# Every other item, made where the data is: a create for each new point (the preset's tags and
# the walker's, where the walker stood), and the points held back with their reason.
CREATES_AND_HELD = text("""
    WITH points AS MATERIALIZED (  -- the tag check once per point, not once per use
        SELECT s.id, s.status, s.tags, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon, m.outcome,
               m.osm_type, m.osm_id, m.duplicate_of_id,
               (SELECT t.key FROM jsonb_each_text(s.tags) AS t
                WHERE length(t.key) > :max OR length(t.value) > :max OR t.key ~ :not_xml
                   OR t.value ~ :not_xml ORDER BY t.key LIMIT 1) AS unwritable
        FROM submission s LEFT JOIN match m ON m.submission_id = s.id
        WHERE s.event_id = :event_id AND s.id <> ALL(:in_flight)
          AND s.verdict IS DISTINCT FROM 'missing'  -- a town's record not found: nothing to write
          AND NOT EXISTS (SELECT 1 FROM submission_osm u WHERE u.submission_id = s.id)
          AND (s.status = 'pending' OR (s.status = 'approved'
               AND (m.outcome IS NULL OR m.outcome IN ('new', 'ambiguous', 'duplicate'))))
    ), items AS (
        SELECT p.*, p.status = 'approved' AND p.outcome = 'new' AND p.unwritable IS NULL AS creates
        FROM points p
    )
    INSERT INTO osm_change (event_id, key, action, osm_type, osm_id, base_version, lat, lon,
                            tags_before, tags_after, diff, conflicts, element, submission_ids,
                            reason, held_by)
    SELECT :event_id, CASE WHEN i.creates THEN 'create/' ELSE 'held/' END || i.id,
           CASE WHEN i.creates THEN 'create' ELSE 'held' END,
           CASE WHEN i.creates THEN 'node' ELSE i.osm_type END,
           CASE WHEN i.creates THEN NULL ELSE i.osm_id END, NULL, i.lat, i.lon, '{}', i.tags,
           CASE WHEN i.creates THEN (
               SELECT coalesce(jsonb_agg(jsonb_build_object('key', t.key, 'before', NULL,
                                                            'after', t.value) ORDER BY t.key), '[]')
               FROM jsonb_each_text(i.tags) AS t) ELSE '[]' END,
           '{}', NULL, ARRAY[i.id],
           CASE WHEN i.creates THEN NULL
                WHEN i.status = 'pending' THEN '{"code": "not_reviewed"}'
                WHEN i.outcome IS NULL THEN '{"code": "not_matched"}'
                WHEN i.outcome <> 'new' THEN jsonb_build_object('code', i.outcome, 'of', i.duplicate_of_id)
                ELSE jsonb_build_object('code', 'tags_unwritable', 'key', left(i.unwritable, 60),
                                        'max', :max) END,
           CASE WHEN i.creates THEN h.held_by END
    FROM items i LEFT JOIN unnest(CAST(:held_keys AS text[]), CAST(:held_by AS text[])) AS h(key, held_by)
         ON h.key = 'create/' || i.id
""")
# What XML 1.0 cannot carry, as a PostgreSQL regular expression (its text has no NUL, nor
# lone surrogates): osmchange.NOT_XML's class.
NOT_XML_SQL = "[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
# Points in a changeset being uploaded (osm/upload.py): the log holds them, not the plan.
IN_FLIGHT = text("""
    SELECT DISTINCT CAST(jsonb_array_elements_text(c -> 'submission_ids') AS bigint)
    FROM osm_changeset_log l, jsonb_array_elements(l.changes) AS c
    WHERE l.event_id = :event_id AND l.state IN ('planned', 'opened', 'sending', 'applied')
""")
COLUMNS = ("event_id", "key", "action", "osm_type", "osm_id", "base_version", "lat", "lon",
           "tags_before", "tags_after", "diff", "conflicts", "element", "submission_ids",
           "reason", "held_by")
TYPES = ("int4", "text", "text", "text", "int8", "int4", "float8", "float8", "jsonb", "jsonb",
         "jsonb", "jsonb", "jsonb", "int8[]", "jsonb", "text")


def plan_of(event):
    """The event's plan and settings; the defaults, not yet stored, when it has none (a page
    that only reads stores nothing)."""
    plan = db.session.get(OsmPlan, event.id)
    if plan is None:
        plan = OsmPlan(event_id=event.id, comment="", hashtags=default_hashtags(event),
                       wiki_page="", mark_checked=False, max_changes=1000, max_size=0.05)
    return plan


def default_hashtags(event):
    return "#cartoparty #" + re.sub(r"[^\w-]", "", event.slug)


def hashtags_of(plan):
    return HASHTAG.findall(plan.hashtags)


def survey_day(observed_at):
    """The day the point was seen, in the deployment's time zone (check_date, survey:date)."""
    return observed_at.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date().isoformat()


def walker_base(tags, tag_diff):
    """OSM's value of each of the walker's keys when the point was matched (None: OSM had no
    such tag), read back from the match's diff of walker against OSM."""
    added, changed = (tag_diff or {}).get("added", {}), (tag_diff or {}).get("changed", {})
    return {key: None if key in added else changed[key][0] if key in changed else value
            for key, value in tags.items()}


def merge(matched, current, walker, settled=None):
    """The three-way merge of one element's tags. `matched`: OSM's value of each walker key when
    the point was matched; `current`: all of OSM's tags now; `walker`: the walker's tags;
    `settled`: the conflicts of the plan being replaced, whose choice stands only while the
    three values are the same. Returns (tags to write, conflicts); never a tag removed."""
    after, conflicts = dict(current), {}
    for key, wanted in walker.items():
        now, then = current.get(key), matched.get(key)
        if now == wanted:
            continue
        if now == then:
            after[key] = wanted
            continue
        conflicts[key] = conflict = _conflict(then, now, wanted, (settled or {}).get(key))
        if conflict["choice"] == "walker":
            after[key] = wanted
    return after, conflicts


def _conflict(matched, osm, walker, before=None):
    """A conflict, with the organiser's earlier choice if it was about these very values."""
    conflict = {"matched": matched, "osm": osm, "walker": walker, "choice": None}
    if before and all(before.get(k) == conflict[k] for k in ("matched", "osm", "walker")):
        conflict["choice"], conflict["settled_by"] = before.get("choice"), before.get("settled_by")
    return conflict


def tag_diff(before, after):
    return [{"key": key, "before": before.get(key), "after": value}
            for key, value in sorted(after.items()) if before.get(key) != value]


def unwritable(tags):
    """The first key whose tag OSM cannot take (too long, or not XML), or None."""
    for key, value in tags.items():
        if (len(key) > LIMITS["key_length"] or len(value) > LIMITS["value_length"]
                or NOT_XML.search(key) or NOT_XML.search(value)):
            return key
    return None


def _held(point, code, **params):
    return {"key": f"held/{point['id']}", "action": "held", "osm_type": point["osm_type"],
            "osm_id": point["osm_id"], "base_version": None, "lat": point["lat"],
            "lon": point["lon"], "tags_before": {}, "tags_after": point["tags"], "diff": [],
            "conflicts": {}, "element": None, "submission_ids": [point["id"]],
            "reason": {"code": code, **params}, "held_by": None}


def metres(lat1, lon1, lat2, lon2):
    """Distance on a sphere of the Earth's mean radius: plenty for a few metres to a few km."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _modify(point, current, wanted, check_date, radius, before):
    """The modify of the element `point` was matched to, against `current` (an api.Element),
    or a held item when that cannot be done. `before`: the same item in the plan replaced."""
    if current is None or not current.visible:
        return _held(point, "osm_deleted", osm_type=point["osm_type"], osm_id=point["osm_id"])
    settled = before["conflicts"] if before else {}
    matched = walker_base(wanted, point["tag_diff"])
    if "uploaded_version" in (point["tag_diff"] or {}):
        ours = current.version == point["tag_diff"]["uploaded_version"]
        matched = {key: current.tags.get(key) if ours else None for key in wanted}
    after, conflicts = merge(matched, current.tags, wanted, settled)
    # A newer check by someone else stands; ours replaces an older one.
    if check_date and after.get("check_date", "") < check_date:
        after["check_date"] = check_date
    if current.osm_type == "node" and point["stored_lat"] is not None:
        # Moved in OSM since the match, away from where the walker stood: maybe not the same
        # feature any more. The node is never moved; the organiser confirms or holds it.
        moved = metres(current.lat, current.lon, point["stored_lat"], point["stored_lon"])
        if moved > 1 and metres(current.lat, current.lon, point["lat"], point["lon"]) > radius:
            where = [f"{lat:.7f},{lon:.7f}" for lat, lon in (
                (point["stored_lat"], point["stored_lon"]), (current.lat, current.lon),
                (point["lat"], point["lon"]))]
            conflicts[POSITION] = _conflict(*where, settled.get(POSITION))
    if (key := unwritable(after)) is not None:
        return _held(point, "tags_unwritable", key=key[:60], max=LIMITS["value_length"])
    element = None
    if current.osm_type == "way":
        element = {"nodes": list(current.nodes)}
    elif current.osm_type == "relation":
        element = {"members": [{"type": kind, "ref": ref, "role": role}
                               for kind, ref, role in current.members]}
    lat, lon = ((current.lat, current.lon) if current.osm_type == "node"
                else (point["stored_lat"] or point["lat"], point["stored_lon"] or point["lon"]))
    return {"key": f"{current.osm_type}/{current.osm_id}", "action": "modify",
            "osm_type": current.osm_type, "osm_id": current.osm_id,
            "base_version": current.version, "lat": lat, "lon": lon,
            "tags_before": current.tags, "tags_after": after,
            "diff": tag_diff(current.tags, after), "conflicts": conflicts, "element": element,
            "submission_ids": [point["id"]], "reason": None,
            "held_by": before["held_by"] if before else None}


def _stored_element(point):
    """The element as the stored OSM data has it, when the API cannot be reached: nodes only,
    since a modify of a way or relation needs its node list or members, which are not stored."""
    if point["stored_version"] is None or point["osm_type"] != "node":
        return None
    return api.Element(osm_type="node", osm_id=point["osm_id"], version=point["stored_version"],
                       visible=True, tags=point["stored_tags"], lat=point["stored_lat"],
                       lon=point["stored_lon"])


def build(event, actor, fetch=True):
    """Build the event's plan anew from its points and matches, fetching the elements to modify
    from the OSM API first (unless `fetch` is false); keep the organiser's choices (conflicts
    settled, items held) where they still apply. Returns the plan; the caller commits."""
    plan = plan_of(event)
    db.session.add(plan)
    no_jit()
    presets = current_app.extensions["cartoparty.presets"]
    in_flight = list(db.session.scalars(IN_FLIGHT, {"event_id": event.id}))
    points = [_after_upload(p) for p in db.session.execute(POINTS, {
        "event_id": event.id, "in_flight": in_flight, "checked": plan.mark_checked}).mappings()]
    refs = {(p["osm_type"], p["osm_id"]) for p in points}
    plan.base, plan.base_error_detail, elements = "stored", None, None
    if fetch and refs:
        try:
            elements = _fetch(refs)
            plan.base = "api"
        except api.OsmApiError as error:
            plan.base_error_detail = error.detail()
    elif fetch:
        plan.base = "api"
    previous = _previous(event)
    items = []
    for point in points:
        item = _item(point, plan, presets, elements, previous)
        if item is not None:
            items.append(item)
    _store(event, items)
    held = {key: before["held_by"] for key, before in previous.items()
            if key.startswith("create/") and before["held_by"]}
    db.session.execute(CREATES_AND_HELD, {
        "event_id": event.id, "in_flight": in_flight, "max": LIMITS["value_length"],
        "not_xml": NOT_XML_SQL, "held_keys": list(held), "held_by": list(held.values())})
    plan.built_at, plan.built_by = datetime.now(UTC), actor
    return plan


def _after_upload(point):
    """A point corrected after it was uploaded is a modify of the element it became; the point
    itself is what the organiser approved. While OSM's element is still at the version our upload
    made, its tags are ours to change; after someone else's edit, any tag they hold that differs
    is a conflict."""
    if point["uploaded_version"] is None:
        return point
    point = dict(point)
    point.update(outcome="update", osm_type=point["uploaded_type"], osm_id=point["uploaded_id"],
                 stored_version=None, stored_lat=None, stored_lon=None,
                 tag_diff={"added": {}, "changed": {}, "uploaded_version": point["uploaded_osm_version"]})
    return point


def _fetch(refs):
    """The elements `refs` as OSM has them now, and the nodes of their ways (a JOSM file
    carries them so that the way is complete there)."""
    url, timeout = current_app.config["OSM_API_URL"], current_app.config["OSM_API_TIMEOUT"]
    elements = api.fetch_elements(url, refs, timeout=timeout)
    nodes = {("node", ref) for element in elements.values() if element.osm_type == "way"
             for ref in element.nodes} - elements.keys()
    if nodes:
        elements.update(api.fetch_elements(url, nodes, timeout=timeout))
    return elements


def _node_details(way, elements):
    return [{"osm_id": node.osm_id, "version": node.version, "lat": node.lat, "lon": node.lon,
             "tags": node.tags}
            for ref in way.nodes if (node := elements.get(("node", ref))) and node.visible]


def _item(point, plan, presets, elements, previous):
    """The modify for one point matched to an OSM element (None: nothing to do)."""
    check_date = survey_day(point["observed_at"]) if plan.mark_checked else None
    ref = (point["osm_type"], point["osm_id"])
    if elements is not None:
        current = elements.get(ref)
    elif point["osm_type"] != "node" or point["stored_version"] is None:
        # Not in the stored data (or not as a whole): only the API can say what it is now.
        return _held(point, "needs_osm_api", osm_type=point["osm_type"], osm_id=point["osm_id"])
    else:
        current = _stored_element(point)
    radius = (presets.get(point["preset"]) or {}).get("match_radius", 25)
    item = _modify(point, current, point["tags"], check_date, radius,
                   previous.get(f"{ref[0]}/{ref[1]}"))
    if item["action"] == "modify" and current.osm_type == "way" and elements is not None:
        item["element"]["node_details"] = _node_details(current, elements)
    if item["action"] == "modify" and not item["diff"] and not item["conflicts"]:
        return None  # OSM already says what the walker saw
    return item


def _previous(event):
    """The organiser's choices in the plan being replaced (conflicts, holds), by item key."""
    rows = db.session.execute(text("""
        SELECT key, conflicts, held_by FROM osm_change
        WHERE event_id = :id AND action <> 'held' AND (held_by IS NOT NULL OR conflicts <> '{}')
    """), {"id": event.id})
    return {key: {"conflicts": conflicts, "held_by": held_by} for key, conflicts, held_by in rows}


def _store(event, items):
    db.session.execute(text("DELETE FROM osm_change WHERE event_id = :id"), {"id": event.id})
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY osm_change ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(TYPES)
        for item in items:
            copy.write_row((
                event.id, item["key"], item["action"], item["osm_type"], item["osm_id"],
                item["base_version"], item["lat"], item["lon"], Jsonb(item["tags_before"]),
                Jsonb(item["tags_after"]), Jsonb(item["diff"]), Jsonb(item["conflicts"]),
                None if item["element"] is None else Jsonb(item["element"]),
                item["submission_ids"], None if item["reason"] is None else Jsonb(item["reason"]),
                item["held_by"]))


def unsettled(change):
    return any(conflict["choice"] is None for conflict in change.conflicts.values())


def ready(change):
    """Whether the change goes into the files: a create or modify, not held by the organiser,
    every conflict settled."""
    return change.action in ACTIONS and change.held_by is None and not unsettled(change)


# What the files are written from: plain rows, light enough for 100,000 changes.
# (The diff only for those who show it: 100,000 of them cost a second to read.)
READY = """
    SELECT id, key, action, osm_type, osm_id, base_version, lat, lon, tags_after, element,
           {diff} AS diff, submission_ids
    FROM osm_change c
    WHERE event_id = :id AND action IN ('create', 'modify') AND held_by IS NULL
      AND NOT EXISTS (SELECT 1 FROM jsonb_each(c.conflicts) AS x
                      WHERE x.value ->> 'choice' IS NULL)
    ORDER BY key
"""
READY_WITH_DIFF, READY_FILES = text(READY.format(diff="diff")), text(READY.format(diff="NULL"))
SUMMARY = text("""
    SELECT CASE WHEN action = 'held' THEN 'held:' || (reason ->> 'code')
                WHEN held_by IS NOT NULL THEN 'held_by_organiser'
                WHEN EXISTS (SELECT 1 FROM jsonb_each(c.conflicts) AS x
                             WHERE x.value ->> 'choice' IS NULL) THEN 'conflicts'
                ELSE action END AS what, count(*)
    FROM osm_change c WHERE event_id = :id GROUP BY 1
""")


def items(event):
    """Every item of the event's plan, in key order (the ORM objects, for tests and small plans)."""
    return db.session.scalars(db.select(OsmChange).where(OsmChange.event_id == event.id)
                              .order_by(OsmChange.key)).all()


def ready_changes(event, diff=True):
    """The changes that go into the files: creates and modifies not held by the organiser,
    every conflict settled, in a stable order (without their diff unless `diff`)."""
    no_jit()
    return db.session.execute(READY_WITH_DIFF if diff else READY_FILES, {"id": event.id}).all()


def no_jit():
    """For the rest of the transaction: PostgreSQL would compile the plan's big statements to
    machine code (JIT) for longer than they take to run (0.7 s of 1.7 s at 30,000 points)."""
    db.session.execute(text("SET LOCAL jit = off"))


def changesets(event, plan=None, max_changes=None, diff=True):
    """The ready changes of the event cut into changesets (osm/osmchange.split), at most
    `max_changes` each (the plan's setting by default)."""
    plan = plan or plan_of(event)
    return osmchange.split(ready_changes(event, diff), max_changes or plan.max_changes,
                           plan.max_size)


def summary(event):
    """Counts for the page and the CLI: create, modify, conflicts (to settle),
    held_by_organiser, and held:<reason> for each reason."""
    return dict(db.session.execute(SUMMARY, {"id": event.id}).all())


def change_of(event, change_id):
    """This change of this event, or NotFound."""
    change = db.session.get(OsmChange, change_id) if 0 < change_id < 2**63 else None
    if change is None or change.event_id != event.id:
        raise NotFound("change_not_found", field="change")
    return change


def settle(event, change_id, name, choice, actor):
    """The organiser settles one conflict: `choice` "osm" keeps OSM's value, "walker" takes the
    walker's (a position conflict can only keep OSM's: nothing is moved)."""
    change = change_of(event, change_id)
    conflict = change.conflicts.get(name)
    if conflict is None:
        raise NotFound("conflict_not_found", field="key")
    allowed = ("osm",) if name == POSITION else ("osm", "walker")
    if choice not in allowed:
        raise Invalid("position_choice_invalid" if name == POSITION else "conflict_choice_invalid",
                      field="choice")
    conflicts = {**change.conflicts, name: {**conflict, "choice": choice, "settled_by": actor}}
    after = dict(change.tags_after)
    if name != POSITION:
        if choice == "walker":
            after[name] = conflict["walker"]
        elif conflict["osm"] is None:
            after.pop(name, None)
        else:
            after[name] = conflict["osm"]
    change.conflicts, change.tags_after = conflicts, after
    change.diff = tag_diff(change.tags_before, after)
    return change


def hold(event, change_id, held, actor):
    """Hold a change back from the files (or release it)."""
    change = change_of(event, change_id)
    if change.action not in ACTIONS:
        raise Invalid("change_not_holdable", field="change")
    change.held_by = actor if held else None
    return change


def update_settings(plan, form):
    """Check and keep the organiser's changeset settings; raises Invalid naming the field."""
    comment = (form.get("comment") or "").strip()
    hashtags = " ".join((form.get("hashtags") or "").split())
    if NOT_XML.search(comment) or NOT_XML.search(hashtags):
        raise Invalid("changeset_text_invalid", field="comment")
    if hashtags and " ".join(HASHTAG.findall(hashtags)) != hashtags:
        raise Invalid("hashtags_invalid", field="hashtags")
    wiki = (form.get("wiki_page") or "").strip()
    if wiki.startswith(WIKI):
        wiki = wiki[len(WIKI):]
    wiki = wiki.replace(" ", "_")
    if wiki.startswith(WIKI_ACTIVITIES):
        wiki = wiki[len(WIKI_ACTIVITIES):]
    if wiki and (len(wiki) > 200 or not re.fullmatch(r"[\w().,'’:-]+(/[\w().,'’:-]+)*", wiki)):
        raise Invalid("wiki_page_invalid", field="wiki_page")
    try:
        max_changes = int(form.get("max_changes") or 1000)
        max_size = float(form.get("max_size") or 0.05)
    except ValueError:
        raise Invalid("max_changes_invalid", field="max_changes", max=MAX_CHANGES) from None
    if not 1 <= max_changes <= MAX_CHANGES:
        raise Invalid("max_changes_invalid", field="max_changes", max=MAX_CHANGES)
    if not 0.001 <= max_size <= 1:
        raise Invalid("max_size_invalid", field="max_size")
    plan.comment, plan.hashtags, plan.wiki_page = comment, hashtags, wiki
    plan.mark_checked = form.get("mark_checked") in ("on", "1", "true", True)
    plan.max_changes, plan.max_size = max_changes, max_size
    db.session.add(plan)
    full = full_comment(plan, plan.comment or "x")
    if len(full) > 255:
        raise Invalid("comment_too_long", field="comment", max=255)
    return plan


def full_comment(plan, comment):
    """The comment with the hashtags it does not already have, as iD writes it."""
    missing = [tag for tag in hashtags_of(plan) if tag not in comment]
    return " ".join([comment, *missing]).strip()


def version():
    try:
        return metadata.version("cartoparty")
    except metadata.PackageNotFoundError:
        return "dev"


def changeset_tags(event, plan, changeset, lang):
    """The tags of one changeset: what OSM's organised editing guidelines and mappers reading
    the history expect — the comment with hashtags, source, survey days, tool, locale, host."""
    # The event's name was typed before XML mattered: what XML cannot carry is dropped.
    comment = plan.comment or NOT_XML.sub("", event.name).strip() or event.slug
    overflow = len(full_comment(plan, comment)) - 255
    if overflow > 0:  # only the default (the event's name) can be too long here
        comment = comment[:max(1, len(comment) - overflow - 1)] + "…"
    points = [i for c in changeset for i in c.submission_ids]
    days = sorted({day for (day,) in db.session.execute(text(
        "SELECT DISTINCT to_char(observed_at AT TIME ZONE :tz, 'YYYY-MM-DD') FROM submission"
        " WHERE id = ANY(:ids)"), {"tz": current_app.config["TIMEZONE"], "ids": points})})
    tags = {"comment": full_comment(plan, comment),
            "created_by": f"cartoparty {version()}", "source": "survey",
            "survey:date": ";".join(days)[:255] if days else None,
            "hashtags": ";".join(hashtags_of(plan)) or None, "locale": lang,
            "host": current_app.config.get("PUBLIC_URL") or None,
            "organised_editing:wiki": (WIKI + WIKI_ACTIVITIES + plan.wiki_page)
            if plan.wiki_page else None}
    return {key: value for key, value in tags.items() if value}


def write_file(event, plan, fmt, changeset, out, lang):
    """Write one changeset (or, for the preview, any changes) as `fmt` to the binary `out`.
    An osmChange needs the fresh base: without it only JOSM (which checks versions itself on
    upload) gets the modifies."""
    generator = f"cartoparty {version()}"
    if fmt == "osc":
        if plan.base != "api":
            raise Conflict("osc_needs_fresh_base")
        osmchange.write_osc(changeset, out, generator=generator)
    elif fmt == "josm":
        extra = [SimpleNamespace(**node) for change in changeset
                 for node in (change.element or {}).get("node_details", [])]
        osmchange.write_josm(changeset, out, changeset_tags(event, plan, changeset, lang),
                             generator=generator, extra_nodes=extra)
    else:
        osmchange.write_preview(changeset, out)


def unsettled_conflicts(event):
    """(change, key, conflict) of every conflict still to settle, for the CLI's list."""
    rows = db.session.execute(text("""
        SELECT c.id, c.osm_type, c.osm_id, x.key, x.value FROM osm_change c,
               jsonb_each(c.conflicts) AS x
        WHERE c.event_id = :id AND x.value ->> 'choice' IS NULL ORDER BY c.key, x.key
    """), {"id": event.id})
    return rows.all()
