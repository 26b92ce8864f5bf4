"""Backup and restore of one event: `dump(event, path)` writes it whole into one zip archive,
`restore(path, slug)` loads such an archive into this database, under new ids.

The archive (FORMAT 1) holds:

    manifest.json          {"format": 1, "app_version", "alembic_revision", "event": its slug,
                            "created_at", "counts": {table: rows}, "organisers": [emails],
                            "photos": number of files, "missing_photos": [sha256]}
    <table>.jsonl          the event's rows of that table, one JSON object per line with every
                           column by name, as PostgreSQL's to_jsonb writes them (times ISO 8601
                           with their offset, JSONB as JSON, arrays as lists, bytea as "\\x…"),
                           geometries as hex EWKB; ordered by primary key
    organiser.jsonl        the id and email of the organisers the rows name (no password)
    photos/<sha256>.<ext>  the photo files

Columns are read from the database, not listed here, and restored by name: a column added by a
later migration is dumped as it is, and missing from an older archive it takes its default.
Not dumped: OSM accounts (tokens), sign-in and session rows, and what triggers write (revision
counters, the change log, removed points): restoring runs those triggers again. JSON null and
SQL NULL both come back as SQL NULL.
"""

import hashlib
import json
import os
import re
import secrets
import tempfile
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from . import __version__
from .extensions import db
from .models import Event, Organiser, Photo, hash_token, new_join_code

FORMAT = 1
OF_EVENT = "event_id = :event_id"
OF_SUBMISSIONS = "submission_id IN (SELECT id FROM submission WHERE event_id = :event_id)"
# The event's rows of each table, in an order where every row comes after those it refers to.
TABLES = {
    "event": "id = :event_id",
    "team": OF_EVENT,
    "participant": OF_EVENT,
    # before the submissions: a verdict names its row (the row's settlement names a verdict in
    # turn, set once the submissions are in: _settled_from)
    "reference_dataset": OF_EVENT,
    "reference_row": OF_EVENT,
    "submission": OF_EVENT,
    "photo": OF_SUBMISSIONS,
    "audit_entry": OF_SUBMISSIONS,
    "match": OF_SUBMISSIONS,
    "submission_osm": OF_SUBMISSIONS,
    "feedback": OF_EVENT,
    "osm_element": OF_EVENT,
    "osm_snapshot": OF_EVENT,
    "osm_check": OF_EVENT,
    "osm_plan": OF_EVENT,
    "osm_change": OF_EVENT,
    "osm_upload": OF_EVENT,
    "osm_changeset_log": OF_EVENT,
}
# Every other table, and why (tests check that each table of the models is in one of the two).
NOT_DUMPED = {
    "organiser": "accounts: only their emails go in the archive",
    "event_organiser": "as the organisers' emails",
    "osm_account": "OSM tokens never leave the database",
    "sign_in_failure": "not event data",
    "organiser_session": "not event data",
    "join_rate": "not event data",
    "event_revision": "written by triggers as rows are restored",
    "submission_change": "written by triggers as rows are restored",
    "submission_removed": "the walkers' sync log of the old database's transactions",
}
ORGANISERS = text("""
    SELECT id, email FROM organiser WHERE id IN (
        SELECT organiser_id FROM event_organiser WHERE event_id = :event_id
        UNION SELECT a.organiser_id FROM audit_entry a JOIN submission s ON s.id = a.submission_id
              WHERE s.event_id = :event_id
        UNION SELECT organiser_id FROM osm_upload WHERE event_id = :event_id) ORDER BY id
""")
PHOTOS = text("""
    SELECT DISTINCT p.sha256, p.media_type FROM photo p JOIN submission s ON s.id = p.submission_id
    WHERE s.event_id = :event_id ORDER BY p.sha256
""")
CHUNK = 5000  # rows per INSERT
# Plan items keyed by the submission they come from (osm/changes.py).
SUBMISSION_KEY = re.compile(r"(create|held)/(\d+)")


class BackupError(Exception):
    """An archive that cannot be written or restored; the message says why, in one line."""


class Damaged(Exception):
    """Something in the archive is not what its manifest says."""


def _columns(table):
    """{column: type name} of a table, as the database has it now."""
    rows = db.session.execute(text(
        "SELECT column_name, udt_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position"),
        {"table": table})
    return dict(rows.all())


def _quote(name):
    return db.engine.dialect.identifier_preparer.quote(name)


def _alembic_revision():
    return db.session.scalar(text("SELECT version_num FROM alembic_version"))


def dump(event, path):
    """Write the event whole to the zip archive `path`, replaced whole or not at all. Returns
    the manifest (its counts, and the photos whose file was missing)."""
    target = Path(path)
    handle, partial = tempfile.mkstemp(prefix=".cartoparty-dump-", suffix=".zip", dir=target.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            manifest = _write_archive(archive, event)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return manifest


def _write_archive(archive, event):
    params = {"event_id": event.id}
    # Tables are read one after the other: locking the event row holds back, until the dump's
    # transaction ends, every new row that refers to it (a walker joining, a point arriving), so
    # that no row read later names one that was not there when its table was read.
    db.session.execute(text("SELECT id FROM event WHERE id = :event_id FOR UPDATE"), params)
    counts = {table: _dump_table(archive, table, where, params) for table, where in TABLES.items()}
    organisers = db.session.execute(ORGANISERS, params).mappings().all()
    archive.writestr("organiser.jsonl", "".join(json.dumps(dict(row)) + "\n" for row in organisers))
    written, missing = _dump_photos(archive, event)
    manifest = {
        "format": FORMAT, "app_version": __version__, "alembic_revision": _alembic_revision(),
        "event": event.slug, "created_at": datetime.now(UTC).isoformat(), "counts": counts,
        "organisers": [organiser.email for organiser in event.organisers],
        "photos": written, "missing_photos": missing,
    }
    archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    return manifest


def _dump_table(archive, table, where, params):
    """Write the rows of `table` that match `where` to <table>.jsonl; their number."""
    columns = _columns(table)
    geometries = "".join(f" || jsonb_build_object('{name}', t.{_quote(name)}::text)"
                         for name, kind in columns.items() if kind == "geometry")
    order = ", ".join(f"t.{_quote(column.name)}"
                      for column in db.metadata.tables[table].primary_key.columns)
    query = text(f"SELECT (to_jsonb(t){geometries})::text FROM {_quote(table)} t "  # noqa: S608
                 f"WHERE {where} ORDER BY {order}")
    count = 0
    with archive.open(f"{table}.jsonl", "w", force_zip64=True) as out:
        for line in db.session.execute(query.execution_options(yield_per=CHUNK), params).scalars():
            out.write(line.encode() + b"\n")
            count += 1
    return count


def _dump_photos(archive, event):
    """Copy the event's photo files in; (how many, sha256 of those missing from PHOTO_DIR)."""
    rows = db.session.execute(PHOTOS, {"event_id": event.id}).all()
    directory, written, missing = Path(current_app.config["PHOTO_DIR"]), 0, []
    for sha256, media_type in rows:
        stored = Photo(sha256=sha256, media_type=media_type).filename
        if not (directory / stored).is_file():
            missing.append(sha256)
            continue
        archive.write(directory / stored, f"photos/{Path(stored).name}")
        written += 1
    return written, missing


def restore(path, slug=None):
    """Load the archive `path` as a new event (under `slug`, else the one it was dumped from) in
    one transaction, committed; copy its photo files missing from PHOTO_DIR. Refuses with a
    BackupError, leaving nothing behind. Returns what was done (counts, organisers, photos)."""
    archive = _open_archive(path)
    with archive:
        manifest = _read_manifest(archive)
        slug = slug or manifest["event"]
        _check_target(slug, manifest["alembic_revision"])
        created = []
        try:
            report = _load(archive, manifest, slug, created)
            db.session.commit()
        except BaseException as error:
            db.session.rollback()
            for file in created:
                file.unlink(missing_ok=True)
            if isinstance(error, (zipfile.BadZipFile, zlib.error, EOFError, json.JSONDecodeError, Damaged)):
                raise BackupError(f"{Path(path).name} is damaged ({error})") from None
            if isinstance(error, DBAPIError):
                reason = str(error.orig).strip().splitlines()[0]
                raise BackupError(f"{Path(path).name} cannot be restored: {reason}") from None
            raise
    return report


def _open_archive(path):
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BackupError(f"there is no file {path}") from None
    except (zipfile.BadZipFile, OSError):
        raise BackupError(f"{Path(path).name} is not an event archive (not a whole zip file)") from None


def _read_manifest(archive):
    name = Path(archive.filename).name
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except KeyError:
        raise BackupError(f"{name} is not an event archive (no manifest.json)") from None
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError):
        raise BackupError(f"{name} is damaged (its manifest.json cannot be read)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{name} is in archive format {found!r}; this cartoparty reads format "
                          f"{FORMAT}: restore it with the cartoparty that made it")
    if not all(isinstance(manifest.get(key), kind) for key, kind in
               (("event", str), ("alembic_revision", str), ("counts", dict))) \
            or manifest["counts"].get("event") != 1:
        raise BackupError(f"{name} is damaged (its manifest.json lacks the event, its schema or its counts)")
    return manifest


def _check_target(slug, revision):
    """Refuse a slug that is taken or not one, and an archive of a newer schema."""
    from alembic.script import ScriptDirectory

    from .auth import SLUG
    from .config import MIGRATIONS_DIR

    if not SLUG.fullmatch(slug):
        raise BackupError(f"{slug!r} is not a slug: lowercase letters, digits, '-'")
    if db.session.scalar(db.select(Event.id).filter_by(slug=slug)) is not None:
        raise BackupError(f"an event {slug!r} exists already: restore under another slug (--slug)")
    current = _alembic_revision()
    if revision == current:
        return
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    if revision not in {migration.revision for migration in script.walk_revisions()}:
        raise BackupError(f"the archive's schema {revision} comes from a newer cartoparty: "
                          "upgrade cartoparty and run 'cartoparty db upgrade' first")
    if revision not in {migration.revision for migration in script.iterate_revisions(current, "base")}:
        raise BackupError(f"the archive's schema {revision} is newer than this database's "
                          f"({current}): run 'cartoparty db upgrade' first")


def _load(archive, manifest, slug, created):
    """Insert every table's rows under new ids, link the organisers, copy the photos."""
    emails = {row["id"]: row["email"] for row in _lines(archive, "organiser.jsonl")}
    found = dict(db.session.execute(db.select(Organiser.email, Organiser.id)
                                    .where(Organiser.email.in_(emails.values()))).all())
    ids = {"organiser": {old: found[email] for old, email in emails.items() if email in found}}
    fresh = slug != manifest["event"]  # a second copy: its codes must differ from the first's
    counts = {}
    for table in TABLES:
        counts[table] = _restore_table(archive, table, ids, {"slug": slug, "fresh": fresh})
        if counts[table] != manifest["counts"].get(table, 0):
            raise Damaged(f"{table}: {counts[table]} rows, not {manifest['counts'].get(table, 0)}")
    _settled_from(archive, ids)
    event_id = next(iter(ids["event"].values()))
    linked = [email for email in manifest.get("organisers", []) if email in found]
    db.session.execute(text("INSERT INTO event_organiser (event_id, organiser_id) "
                            "SELECT :event_id, id FROM organiser WHERE email = ANY(:emails)"),
                       {"event_id": event_id, "emails": linked})
    _stop_uploads(event_id)
    copied, missing = _restore_photos(archive, event_id, created)
    return {"slug": slug, "counts": counts, "organisers": linked,
            "unknown_organisers": [email for email in manifest.get("organisers", []) if email not in found],
            "photos_copied": copied, "missing_photos": missing}


def _settled_from(archive, ids):
    """Link each settled reference row to the verdict it was settled from, now that both are in."""
    pairs = [(ids["reference_row"][row["id"]], ids["submission"].get(row["settled_from_id"]))
             for row in _lines(archive, "reference_row.jsonl") if row.get("settled_from_id")]
    if pairs:
        db.session.execute(text(
            "UPDATE reference_row r SET settled_from_id = v.ref "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:refs AS bigint[])) AS v(id, ref) WHERE r.id = v.id"),
            {"ids": [row_id for row_id, _ in pairs], "refs": [ref for _, ref in pairs]})


def _lines(archive, name):
    """The rows of one .jsonl member (none when the archive has no such table)."""
    if name not in archive.NameToInfo:
        return
    with archive.open(name) as lines:
        for line in lines:
            yield json.loads(line)


def _chunks(rows):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _restore_table(archive, table, ids, context):
    """Insert the archive's rows of `table` under new ids, their references remapped (old id →
    new id in `ids[table]`); how many."""
    name, meta, columns = f"{table}.jsonl", db.metadata.tables[table], _columns(table)
    keys = list(meta.primary_key.columns)
    key = keys[0].name if len(keys) == 1 and not keys[0].foreign_keys else None
    sequence = key and db.session.scalar(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                         {"table": table, "column": key})
    # Transaction ids mean nothing in another database; a UUID key is drawn again (feedback).
    skipped = {column for column, kind in columns.items() if kind == "xid8"} | (
        {key} if key and not sequence else set())
    if sequence:
        old = [row[key] for row in _lines(archive, name)]
        ids[table] = dict(zip(old, db.session.scalars(
            text("SELECT nextval(:sequence) FROM generate_series(1, :n)"),
            {"sequence": sequence, "n": len(old)}).all(), strict=True))
    references = {fk.parent.name: fk.column.table.name for fk in meta.foreign_keys}
    inserted, later, count = set(), [], 0
    for chunk in _chunks(_lines(archive, name)):
        if sequence:
            inserted.update(row[key] for row in chunk)
        for row in chunk:
            later.extend(_remap(row, table, key if sequence else None, references, ids, inserted))
        FIXES.get(table, lambda *_: None)(chunk, ids, context)
        present = ", ".join(_quote(column) for column in columns
                            if column in chunk[0] and column not in skipped)
        db.session.execute(text(
            f"INSERT INTO {_quote(table)} ({present}) SELECT {present} "  # noqa: S608
            f"FROM jsonb_populate_recordset(NULL::{_quote(table)}, CAST(:rows AS jsonb))"),
            {"rows": json.dumps(chunk)})
        count += len(chunk)
    for column in {column for column, _, _ in later}:
        pairs = [(row_id, ref) for name_, row_id, ref in later if name_ == column]
        db.session.execute(text(
            f"UPDATE {_quote(table)} t SET {_quote(column)} = v.ref "  # noqa: S608
            f"FROM unnest(CAST(:ids AS bigint[]), CAST(:refs AS bigint[])) AS v(id, ref) "
            f"WHERE t.{_quote(key)} = v.id"),
            {"ids": [row_id for row_id, _ in pairs], "refs": [ref for _, ref in pairs]})
    return count


def _remap(row, table, key, references, ids, inserted):
    """Give the row its new id and new references; a reference to a row of the same table not
    inserted yet (a later chunk) is left NULL, and returned as (column, id, reference) to set
    once that row is in."""
    later = []
    for column, target in references.items():
        value = row.get(column)
        if value is not None and target == table and value not in inserted:
            later.append((column, ids[table][row[key]], ids[table].get(value)))
            row[column] = None
        elif value is not None:
            row[column] = ids.get(target, {}).get(value)
    if key:
        row[key] = ids[table][row[key]]
    return later


def _fresh_codes(rows, table, column, context, make):
    """Keep each row's globally unique code unless this is a second copy of the event (another
    slug) or the code is taken here already."""
    taken = set() if context["fresh"] else set(db.session.scalars(
        text(f"SELECT {column} FROM {table} WHERE {column} = ANY(:codes)"),  # noqa: S608
        {"codes": [row[column] for row in rows]}))
    for row in rows:
        if context["fresh"] or row[column] in taken:
            row[column] = make()


def _fix_event(rows, ids, context):
    for row in rows:
        row["slug"] = context["slug"]
    _fresh_codes(rows, "event", "join_code", context, new_join_code)


def _fix_team(rows, ids, context):
    _fresh_codes(rows, "team", "join_code", context, new_join_code)


def _fix_participant(rows, ids, context):
    # A new hash is that of a token nobody has: those walkers join the copy again.
    _fresh_codes(rows, "participant", "token_hash", context,
                 lambda: hash_token(secrets.token_urlsafe(32)))


def _no_job(rows, ids, context):
    # procrastinate's jobs stay in the database they ran in.
    for row in rows:
        row["job_id"] = None


def _submission_key(key, submissions):
    """A plan item's key ('create/<submission id>', 'held/<id>') with the new id."""
    match = SUBMISSION_KEY.fullmatch(key or "")
    if not match or int(match[2]) not in submissions:
        return key
    return f"{match[1]}/{submissions[int(match[2])]}"


def _remap_change(item, submissions):
    """The submission ids inside a plan item (an osm_change row, or its copy in a log)."""
    item["key"] = _submission_key(item.get("key"), submissions)
    if "submission_ids" in item:
        item["submission_ids"] = [submissions[old] for old in item["submission_ids"] or []
                                  if old in submissions]
    reason = item.get("reason")
    if isinstance(reason, dict) and reason.get("of") in submissions:
        reason["of"] = submissions[reason["of"]]


def _fix_change(rows, ids, context):
    for row in rows:
        _remap_change(row, ids.get("submission", {}))


def _fix_changeset_log(rows, ids, context):
    submissions = ids.get("submission", {})
    for row in rows:
        for item in row.get("changes") or []:
            _remap_change(item, submissions)
        row["placeholders"] = {number: _submission_key(key, submissions)
                               for number, key in (row.get("placeholders") or {}).items()}
        if row.get("applied"):
            row["applied"] = {_submission_key(key, submissions): value
                              for key, value in row["applied"].items()}


def _fix_audit(rows, ids, context):
    submissions = ids.get("submission", {})
    for row in rows:
        for side in ("before", "after"):
            snapshot = row.get(side)
            if isinstance(snapshot, dict) and snapshot.get("duplicate_of_id") is not None:
                snapshot["duplicate_of_id"] = submissions.get(snapshot["duplicate_of_id"])


FIXES = {"event": _fix_event, "team": _fix_team, "participant": _fix_participant,
         "audit_entry": _fix_audit, "osm_check": _no_job, "osm_upload": _no_job,
         "osm_change": _fix_change, "osm_changeset_log": _fix_changeset_log}


def _stop_uploads(event_id):
    """An upload caught running by the dump has no job here: stopped, to be started again (its
    log says what was sent already)."""
    from .errors import CartopartyError

    db.session.execute(text(
        "UPDATE osm_upload SET status = 'stopped', step = 'stopped', finished_at = now(), "
        "error_detail = CAST(:detail AS jsonb) "
        "WHERE event_id = :event_id AND status IN ('queued', 'running', 'paused')"),
        {"event_id": event_id, "detail": json.dumps(CartopartyError("upload_restored").detail())})


def _restore_photos(archive, event_id, created):
    """Copy the photo files PHOTO_DIR lacks, checked against their sha256; (how many copied,
    sha256 of those neither here nor in the archive)."""
    rows = db.session.execute(PHOTOS, {"event_id": event_id}).all()
    directory, copied, missing = Path(current_app.config["PHOTO_DIR"]), 0, []
    for sha256, media_type in rows:
        stored = directory / Photo(sha256=sha256, media_type=media_type).filename
        member = f"photos/{stored.name}"
        if stored.is_file():
            continue
        if member not in archive.NameToInfo:
            missing.append(sha256)
            continue
        data = archive.read(member)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise Damaged(f"{member} does not match its sha256")
        stored.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=stored.parent, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, stored)
        created.append(stored)
        copied += 1
    return copied, missing
