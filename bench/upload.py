"""OSM upload benchmark (not a test): 20,000 planned changes, 70 % creates and 30 % modifies of
nodes a local OSM API stand-in holds, uploaded to that stand-in by cartoparty.osm.upload.run():
the time from the start to the last changeset closed, the requests made per changeset, and the
share of that time the stand-in spent answering.

    .venv/bin/python bench/upload.py [--changes 20000] [--faults]

The database is filled as bench/changeset.py does (its fill(): approved submissions, 30 % beside
a stored OSM node with a match `update`, the others `new`), and the same nodes are served by
tests/osm/osm_api.py's OsmApiStandIn in a child Python process (off this process's GIL), with an
account whose hourly limit is far above the changes sent. The plan is built (timed apart, not
part of the measure) with the default plan settings (1,000 changes and 0.05° per changeset),
then an OsmUpload row is run with OSM_READBACK_DELAY = 0.

The child counts each request by kind and the seconds it spent handling them (from reading the
request line to the last byte of the answer): the stand-in's time. Total minus that is
cartoparty's part (its HTTP client included), given as a ratio to the stand-in's time.
--faults makes the stand-in apply a few uploads and drop their connection before answering
(drop_after_apply()), armed through a control route: each is read back, never resent. In both
variants the stand-in's elements are checked at the end: every create made once, every modify
once. The database and the child process are removed at the end, whatever happens.
"""

import argparse
import json
import os
import re
import resource
import signal
import sys
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack, contextmanager

import changeset
from changeset import fill, migrated_event, reset_peak_memory, resident_mib
from common import (
    ROOT,
    create_database,
    machine,
    process_cpu_seconds,
    run,
    throwaway_database,
)

os.environ.setdefault("SECRET_KEY", "bench-only-secret")

from cartoparty import create_app  # noqa: E402

TOKEN = "bench-upload-token"
HOURLY_LIMIT = 1_000_000  # far above --changes: the rate limit is not what is measured
FAULTS = 3  # uploads dropped after being applied, with --faults
# The stand-in's requests by kind: (name, method, path regex without the query).
KINDS = [("create", "PUT", r"/api/0\.6/changeset/create"),
         ("upload", "POST", r"/api/0\.6/changeset/\d+/upload"),
         ("close", "PUT", r"/api/0\.6/changeset/\d+/close"),
         ("read", "GET", r"/api/0\.6/changeset/\d+"),
         ("download", "GET", r"/api/0\.6/changeset/\d+/download"),
         ("fetch", "GET", r"/api/0\.6/(node|way|relation)s?(/\d+)?")]
PER_CHANGESET = ("create", "upload", "close")


def kind_of(method, path):
    """The name of a stand-in request's kind (KINDS), else "other"."""
    path = path.partition("?")[0]
    return next((name for name, wanted, pattern in KINDS
                 if method == wanted and re.fullmatch(pattern, path)), "other")


# The child process: the stand-in.

def serve_stand_in():
    """The child process: an OsmApiStandIn with the account of the first stdin line (JSON) and
    the nodes of the next ones (JSON lines up to an empty one); print its URL and serve until
    stdin is closed. GET /bench/stats and POST /bench/drop-after-apply are its control routes."""
    sys.path.insert(0, str(ROOT / "tests"))
    from osm import osm_api

    account = json.loads(sys.stdin.readline())
    stand_in = osm_api.OsmApiStandIn()
    stand_in.add_account(account["token"], account["display_name"],
                         hourly_limit=account["hourly_limit"])
    loaded = {}
    for line in sys.stdin:
        if not line.strip():
            break
        osm_id, version, tags, lat, lon = json.loads(line)
        stand_in.add_node(osm_id, lat, lon, tags, version=version)
        loaded[osm_id] = version
    state = {"serve_seconds": 0.0, "answer_seconds": 0.0, "uploads": 0, "drop_at": set()}
    instrument(osm_api, stand_in, state)
    control_routes(osm_api, state, loaded)
    print(stand_in.url, flush=True)
    sys.stdin.read()  # until the bench closes the pipe, or dies
    stand_in.close()


def instrument(osm_api, stand_in, state):
    """Time each request as the stand-in handles it (whole, and inside answer()) and arm
    drop_after_apply() just before the uploads numbered in state["drop_at"]."""
    handle = osm_api._Handler.handle_one_request
    answer = stand_in.answer

    def timed_handle(handler):
        began = time.perf_counter()
        try:
            handle(handler)
        finally:
            if not getattr(handler, "path", "").startswith("/bench/"):
                state["serve_seconds"] += time.perf_counter() - began

    def timed_answer(method, path, *args):
        if kind_of(method, path) == "upload":
            state["uploads"] += 1
            if state["uploads"] in state["drop_at"]:
                stand_in.drop_after_apply()
        began = time.perf_counter()
        try:
            return answer(method, path, *args)
        finally:
            if not path.startswith("/bench/"):
                state["answer_seconds"] += time.perf_counter() - began

    osm_api._Handler.handle_one_request = timed_handle  # this process is the bench's alone
    stand_in.answer = timed_answer


def control_routes(osm_api, state, loaded):
    """The bench's routes: the counts and times so far (?elements=1: and what the uploads made
    of the elements), and faults on the uploads to come."""
    @osm_api.route("GET", r"/bench/stats")
    def stats(api, call):
        kinds = Counter(kind_of(method, path) for method, path in api.calls
                        if not path.startswith("/bench/"))
        figures = {"requests": dict(kinds), "serve_seconds": state["serve_seconds"],
                   "answer_seconds": state["answer_seconds"], "uploads": state["uploads"]}
        if call.query.get("elements"):
            figures["elements"] = element_counts(api, loaded)
        return 200, json.dumps(figures).encode(), "application/json"

    @osm_api.route("POST", r"/bench/drop-after-apply")
    def drop(api, call):
        # The body lists uploads counted from now: [2, 5] drops the second and the fifth.
        state["drop_at"] = {state["uploads"] + number for number in json.loads(call.body)}
        return 200, json.dumps(sorted(state["drop_at"])).encode(), "application/json"


def element_counts(api, loaded):
    """What the uploads made, against the nodes loaded ({id: version}): new nodes (and how many
    distinct places + tags among them), loaded nodes one version up or more, versions made twice."""
    new = [e for (kind, osm_id), e in api.elements.items() if kind == "node" and osm_id not in loaded]
    spots = {(round(e.lat, 7), round(e.lon, 7), tuple(sorted(e.tags.items()))) for e in new}
    steps = Counter(api.elements["node", osm_id].version - version for osm_id, version in loaded.items())
    made = Counter((stored.osm_type, stored.osm_id, stored.version) for stored in api.history)
    return {"new_nodes": len(new), "new_distinct": len(spots), "new_not_v1": sum(e.version != 1 for e in new),
            "modified_once": steps[1], "modified_more": sum(n for step, n in steps.items() if step > 1),
            "versions_made": len(api.history), "made_twice": sum(n > 1 for n in made.values())}


# The bench process.

def stand_in_process(nodes):
    """The stand-in of changeset.py, run by this bench's --stand-in with its account first."""
    account = {"token": TOKEN, "display_name": "Bench mapper", "hourly_limit": HOURLY_LIMIT}
    return changeset.stand_in_process(nodes, script=__file__, first=[account],
                                      said=f", hourly limit {HOURLY_LIMIT:,} changes")


def control(api_url, route, body=None, query=""):
    """The JSON answer of one of the child's /bench/ routes."""
    url = f"{api_url.rsplit('/api/', 1)[0]}/bench/{route}{query}"
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as answer:
        return json.load(answer)


def build_plan(event_id, changes_wanted, modifies):
    """Build the plan (+ commit) and check it is what was generated; its changesets' sizes."""
    from cartoparty.extensions import db
    from cartoparty.models import Event
    from cartoparty.osm import changes

    event = db.session.get(Event, event_id)
    began = time.perf_counter()
    plan = changes.build(event, "bench")
    db.session.commit()
    built = time.perf_counter() - began
    if plan.base != "api":
        raise RuntimeError(f"the plan was built on the stored data: {plan.base_error_detail}")
    summary = changes.summary(event)
    if summary != {"create": changes_wanted - modifies, "modify": modifies}:
        raise RuntimeError(f"the plan is not what was generated: {summary}")
    sizes = [len(changeset) for changeset in changes.changesets(event)]
    print(f"plan (not part of the measure): {summary['create']} creates, {summary['modify']} "
          f"modifies in {built:.2f} s (changes.build() + commit, the nodes fetched again); "
          f"{len(sizes)} changesets of {min(sizes)}–{max(sizes)} changes (plan settings "
          f"{plan.max_changes} changes, {plan.max_size}° each)")
    db.session.close()
    return sizes


def upload_all(event_id, api_url, child):
    """Run the upload, timed from its start to the last changeset closed; the figures."""
    from cartoparty.extensions import db
    from cartoparty.models import OsmUpload
    from cartoparty.osm import api, changes, osmchange, upload

    row = OsmUpload(event_id=event_id, requested_by="bench", status="queued", counts={})
    db.session.add(row)
    db.session.commit()
    sql, spent = {"seconds": 0.0, "statements": 0, "commits": 0}, {}
    before, child_cpu, own_cpu = (control(api_url, "stats"), process_cpu_seconds(child.pid),
                                  process_cpu_seconds(os.getpid()))
    with ExitStack() as stack:
        stack.enter_context(counting_sql(db, sql))
        for module, name in ((api, "_request"), (changes, "changesets"), (changes, "ready_changes"),
                             (osmchange, "write_osc"), (api, "close_changeset")):
            spent[name] = stack.enter_context(timed(module, name, sql))
        began = time.perf_counter()
        upload.run(row, TOKEN)
        returned = time.perf_counter() - began
    after = control(api_url, "stats", query="?elements=1")
    last_close = spent["close_changeset"]["last"]
    figures = {"total": returned if last_close is None else last_close - began,
               "returned": returned, "status": row.status, "error": row.error_detail,
               "child_cpu": _less(process_cpu_seconds(child.pid), child_cpu),
               "own_cpu": _less(process_cpu_seconds(os.getpid()), own_cpu),
               "request": spent["_request"]["seconds"], "split": spent["changesets"]["seconds"],
               "ready_sql": spent["ready_changes"]["sql"], "write": spent["write_osc"]["seconds"],
               "sql": sql, "serve": after["serve_seconds"] - before["serve_seconds"],
               "answer": after["answer_seconds"] - before["answer_seconds"],
               "requests": Counter(after["requests"]) - Counter(before["requests"]),
               "elements": after["elements"], "log": upload_log(event_id)}
    db.session.close()
    return figures


@contextmanager
def timed(module, name, sql):
    """While inside, add the seconds of each call of module.name to spent["seconds"] and the SQL
    seconds run meanwhile to spent["sql"], and note when the last call ended (spent["last"])."""
    original, spent = getattr(module, name), {"seconds": 0.0, "sql": 0.0, "last": None}

    def wrapper(*args, **kwargs):
        began, sql_before = time.perf_counter(), sql["seconds"]
        try:
            return original(*args, **kwargs)
        finally:
            spent["last"] = time.perf_counter()
            spent["seconds"] += spent["last"] - began
            spent["sql"] += sql["seconds"] - sql_before

    setattr(module, name, wrapper)
    try:
        yield spent
    finally:
        setattr(module, name, original)


@contextmanager
def counting_sql(db, sql):
    """While inside, count the statements the app's engine runs and the commits of its session,
    and add the seconds from each statement sent to its rows received to sql["seconds"]."""
    from sqlalchemy import event

    def before(conn, *args):
        conn.info["bench_began"] = time.perf_counter()

    def after(conn, *args):
        sql["seconds"] += time.perf_counter() - conn.info.pop("bench_began")
        sql["statements"] += 1

    def committed(session):
        sql["commits"] += 1

    listeners = [(db.engine, "before_cursor_execute", before),
                 (db.engine, "after_cursor_execute", after), (db.session, "after_commit", committed)]
    for target, name, function in listeners:
        event.listen(target, name, function)
    try:
        yield sql
    finally:
        for target, name, function in listeners:
            event.remove(target, name, function)


def _less(now, then):
    return None if now is None or then is None else now - then


def upload_log(event_id):
    """The changesets' states in the log, and the submissions linked to an uploaded element."""
    from sqlalchemy import text

    from cartoparty.extensions import db

    states = dict(db.session.execute(text(
        "SELECT state, count(*) FROM osm_changeset_log WHERE event_id = :id GROUP BY state"),
        {"id": event_id}).all())
    linked = db.session.scalar(text(
        "SELECT count(*) FROM submission s JOIN submission_osm u ON u.submission_id = s.id"
        " WHERE s.event_id = :id"), {"id": event_id})
    return {"states": states, "linked": linked}


def report(figures, sizes, creates, modifies, dropped):
    """Print the requests per changeset, the times and their shares, and what OSM now holds;
    the list of what is not as it should be."""
    count, requests = len(sizes), figures["requests"]
    sent = sum(requests.values())
    kinds = ", ".join(f"{name} {requests[name]}" for name, _, _ in KINDS if requests[name])
    print(f"upload: {figures['status']}, {count} changesets of {min(sizes)}–{max(sizes)} changes; "
          f"{len(dropped)} uploads dropped after being applied"
          + (f" (numbers {', '.join(map(str, dropped))})" if dropped else ""))
    print(f"(1) requests: {sent} ({kinds}): {sent / count:.2f} per changeset (aim: 3, create + "
          f"upload + close, without faults)")
    if dropped:
        extra = sum(requests[name] for name in requests if name not in PER_CHANGESET)
        print(f"    reading back: {extra} extra requests, {extra / count:.2f} per changeset, "
              f"{extra / len(dropped):.1f} per dropped upload; uploads sent: {requests['upload']} "
              f"for {count} changesets ({'none' if requests['upload'] == count else 'some'} resent)")
    times(figures, creates + modifies)
    made = figures["elements"]
    print(f"(3) the stand-in now holds {made['new_nodes']} new nodes ({made['new_distinct']} distinct "
          f"places + tags) and {made['modified_once']} of its nodes one version up, "
          f"{made['modified_more']} more than one; {made['made_twice']} versions made twice; "
          f"{figures['log']['linked']} submissions linked to their element; log {figures['log']['states']}")
    return problems(figures, count, creates, modifies, dropped)


def times(figures, changes_sent):
    """Print the total, the stand-in's part and cartoparty's, with where cartoparty's goes."""
    total, serve = figures["total"], figures["serve"]
    ours = total - serve
    cpu = "" if figures["child_cpu"] is None else f", {figures['child_cpu']:.2f} s CPU in all"
    print(f"(2) time from the start to the last changeset closed: {total:.2f} s "
          f"({changes_sent / total:.0f} changes/s; run() returned after {figures['returned']:.2f} s)")
    print(f"    the stand-in (its own process), handling the requests: {serve:.2f} s, "
          f"{100 * serve / total:.0f} % of the total, of which answer() {figures['answer']:.2f} s{cpu}")
    print(f"    cartoparty's part (total - stand-in): {ours:.2f} s, {ours / serve:.1f}x the "
          f"stand-in's time (aim: under 1x, the time dominated by the stand-in)")
    sql, ready_sql = figures["sql"], figures["ready_sql"]
    cut = figures["split"] - ready_sql
    rest = total - figures["request"] - sql["seconds"] - cut - figures["write"]
    own = "" if figures["own_cpu"] is None else f"; this process used {figures['own_cpu']:.2f} s CPU"
    print(f"      HTTP client and loopback around the stand-in's time (api._request - stand-in): "
          f"{figures['request'] - serve:.2f} s")
    print(f"      SQL: {sql['statements']} statements, {sql['seconds']:.2f} s from sent to rows "
          f"received, of which the ready changes read again before each changeset "
          f"(changes.ready_changes) {ready_sql:.2f} s; {sql['commits']} commits")
    print(f"      those rows decoded and cut again (changes.changesets - its SQL): {cut:.2f} s; "
          f"osmChange written (osmchange.write_osc, twice per changeset): {figures['write']:.2f} s")
    print(f"      the rest (commits, ORM rows reloaded after each commit and their JSON decoded, "
          f"changeset tags, diffResult parsed): {rest:.2f} s{own}")


def problems(figures, count, creates, modifies, dropped):
    """What differs from a clean upload of every change once."""
    made, log, requests = figures["elements"], figures["log"], figures["requests"]
    wanted = {"status": ("done", figures["status"]), "new nodes": (creates, made["new_nodes"]),
              "distinct new nodes": (creates, made["new_distinct"]),
              "new nodes not at version 1": (0, made["new_not_v1"]),
              "nodes modified once": (modifies, made["modified_once"]),
              "nodes modified more than once": (0, made["modified_more"]),
              "versions made twice": (0, made["made_twice"]),
              "submissions linked": (creates + modifies, log["linked"]),
              "changesets closed in the log": ({"closed": count}, log["states"]),
              "uploads sent": (count, requests["upload"]),
              "changesets read back": (len(dropped), requests["read"])}
    return [f"{name}: {got} instead of {want}" for name, (want, got) in wanted.items() if got != want]


def memory_line(reset, before_mib, setup_peak_kib):
    """The peak memory sentence, saying what was measured."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not reset:
        return (f"(4) peak memory: {peak:.0f} MiB resident (ru_maxrss over the whole run: the "
                f"high-water mark could not be reset before the upload)")
    return (f"(4) peak memory of the bench process during the upload: {peak:.0f} MiB resident "
            f"(ru_maxrss, its high-water mark reset just before through /proc/self/clear_refs; "
            f"{before_mib:.0f} MiB resident at the start, the setup's peak {setup_peak_kib / 1024:.0f} MiB)")


def drops(count):
    """Which uploads (1 = the first) to drop after applying: the second, the middle, the last."""
    return sorted({min(count, number) for number in (2, count // 2 + 1, count)})[:FAULTS]


def bench(url, changes_wanted, faults):
    """Migrate, fill, serve the nodes, build the plan, upload it, and report."""
    from cartoparty.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    app.config["OSM_READBACK_DELAY"] = 0
    with app.app_context():
        event_id = migrated_event("Bench upload")
        nodes = fill(url, event_id, changes_wanted)
        with stand_in_process(nodes) as (child, api_url):
            app.config["OSM_API_URL"] = api_url
            sizes = build_plan(event_id, changes_wanted, len(nodes))
            dropped = drops(len(sizes)) if faults else []
            if dropped:
                control(api_url, "drop-after-apply", dropped)
            setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            before, reset = resident_mib(), reset_peak_memory()
            figures = upload_all(event_id, api_url, child)
            memory = memory_line(reset, before, setup_peak)
        db.engine.dispose()
    wrong = report(figures, sizes, changes_wanted - len(nodes), len(nodes), dropped)
    print(memory)
    if wrong:
        raise RuntimeError("the upload is not what it should be: " + "; ".join(wrong))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=20_000, help="planned changes (20000)")
    parser.add_argument("--faults", action="store_true",
                        help=f"drop {FAULTS} uploads after the stand-in applied them")
    parser.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stand_in:
        serve_stand_in()
        return 0
    if args.changes < 10:
        parser.error("--changes must be at least 10")
    # A plain kill ends the bench through its finally clauses too (database, stand-in).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(machine())
    with throwaway_database("upload") as (base_url, name):
        bench(create_database(base_url, name), args.changes, args.faults)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
