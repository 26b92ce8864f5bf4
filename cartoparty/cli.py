"""The `cartoparty` command: a Flask CLI group over create_app, using the project-local
database unless DATABASE_URL says otherwise.

Each command imports what it uses: building the app (the ORM, the blueprints) is most of a
command's start-up, and `event list` does without it."""

import logging
import os
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path

import click
import psycopg
from flask import current_app
from flask.cli import AppGroup, FlaskGroup

from . import localdb

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WHEN = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])


def _app_for_cli():
    from . import create_app
    from .extensions import bind_migrations
    from .presets import PresetError

    if not os.environ.get("DATABASE_URL"):
        localdb.ensure_running()
    try:
        app = create_app()
    except PresetError as error:  # a preset file someone edited: say which, in one line
        raise click.ClickException(str(error)) from None
    if click.get_current_context().find_root().invoked_subcommand == "db":
        bind_migrations(app)
    return app


class CommandGroup(FlaskGroup):
    """Flask-Migrate's `db` group (and with it Alembic, a sixth of the start-up) is imported
    only when `db` is the command being run."""

    def get_command(self, ctx, name):
        if name == "db":
            from flask_migrate.cli import db as db_group

            return db_group
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), "db"})


@click.group(cls=CommandGroup, create_app=_app_for_cli, add_version_option=False)
def cli():
    """Run and manage cartoparty: events, organisers, the database."""


organiser_cli = AppGroup("organiser", help="Organiser accounts.")
event_cli = AppGroup("event", help="Events.")
review_cli = AppGroup("review", help="Approve or reject submissions, as an organiser.")
osm_cli = AppGroup("osm", help="An event's OpenStreetMap data.")
participant_cli = AppGroup("participant", help="A walker's personal data: export, erase.")
retention_cli = AppGroup("retention", help="Erasing personal data once events' retention ends.")
for group in (organiser_cli, event_cli, review_cli, osm_cli, participant_cli, retention_cli):
    cli.add_command(group)


def read_password():
    """A new password: asked twice at a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@organiser_cli.command("add")
@click.argument("email")
def organiser_add(email):
    """Create an organiser account; the password is asked for (or read from stdin)."""
    from .auth import hash_password
    from .extensions import db
    from .models import Organiser

    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise click.ClickException(f"{email!r} is not an email address")
    if db.session.scalar(db.select(Organiser).filter_by(email=email)):
        raise click.ClickException(f"an organiser {email} exists already")
    password = read_password()
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    db.session.add(Organiser(email=email, password_hash=hash_password(password)))
    db.session.commit()
    click.echo(f"organiser {email} added")


def parse_presets(value):
    """Preset ids from 'id,id,…' (all presets when empty)."""
    from .presets import all_presets

    known = all_presets()
    if not value:
        return list(known)
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown or not chosen:
        raise click.ClickException(
            f"unknown preset {unknown[0] if unknown else value!r}; known: {', '.join(known)}")
    return list(dict.fromkeys(chosen))


@event_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The event's name, as walkers see it.")
@click.option("--zone", "zone_file", required=True, type=click.Path(dir_okay=False),
              help="A GeoJSON file with the zone's outline (Polygon or MultiPolygon).")
@click.option("--presets", default="", help="Comma-separated preset ids (default: all).")
@click.option("--organiser", "organiser_email", help="Email of an existing organiser.")
@click.option("--starts", type=WHEN, help="Start in local time, e.g. 2026-06-13T10:00.")
@click.option("--ends", type=WHEN, help="End in local time.")
def event_create(slug, name, zone_file, presets, organiser_email, starts, ends):
    """Create an event."""
    from .auth import SLUG
    from .errors import CartopartyError
    from .extensions import db
    from .models import Event, Organiser
    from .zones import read_zone

    if not SLUG.fullmatch(slug):
        raise click.ClickException(f"{slug!r} is not a slug: lowercase letters, digits, '-'")
    if db.session.scalar(db.select(Event).filter_by(slug=slug)):
        raise click.ClickException(f"an event {slug!r} exists already")
    if not name.strip() or len(name) > 200:
        raise click.ClickException("--name must be 1 to 200 characters")
    try:
        zone = read_zone(Path(zone_file).read_bytes())
    except OSError as error:
        raise click.ClickException(f"cannot read {zone_file}: {error.strerror}") from None
    except CartopartyError as error:
        raise click.ClickException(f"{zone_file}: {error.message}") from None
    event = Event(slug=slug, name=name.strip(), zone=zone, presets=parse_presets(presets),
                  starts_at=_aware(starts), ends_at=_aware(ends))
    if organiser_email:
        organiser = db.session.scalar(
            db.select(Organiser).filter_by(email=organiser_email.strip().lower()))
        if organiser is None:
            raise click.ClickException(f"no organiser {organiser_email}; "
                                       "add one with 'cartoparty organiser add'")
        event.organisers.append(organiser)
    if starts and ends and ends < starts:
        raise click.ClickException("--ends is before --starts")
    db.session.add(event)
    db.session.commit()
    click.echo(f"event {slug} created: walkers join at /e/{slug}")


def _aware(moment):
    return moment.astimezone() if isinstance(moment, datetime) else None


EVENTS = """
    SELECT event.slug, event.name, event.starts_at, count(submission.id)
    FROM event LEFT JOIN submission ON submission.event_id = event.id
    GROUP BY event.id ORDER BY event.slug"""


# Without the app, in plain SQL: this is the command people type to see what is there, and it
# answers in a quarter of a second instead of the app's 0.8 s of start-up.
@event_cli.command("list", with_appcontext=False)
def event_list():
    """List events with their number of submissions."""
    from . import config

    if not os.environ.get("DATABASE_URL"):
        localdb.ensure_running()
    with psycopg.connect(config.libpq_url()) as connection:
        rows = connection.execute(EVENTS).fetchall()
    if not rows:
        click.echo("no events yet")
    for slug, name, starts_at, count in rows:
        when = starts_at.date().isoformat() if starts_at else "-"
        click.echo(f"{slug}\t{when}\t{count} submissions\t{name}")


@event_cli.command("dump")
@click.argument("slug")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The archive to write (a zip); replaced whole, never left half-written.")
def event_dump(slug, output):
    """Write the event whole (settings, teams, walkers, points, reviews, OSM data, feedback,
    photos) to one archive that 'cartoparty event restore' loads."""
    from .backup import dump

    event = _event(slug)
    try:
        manifest = dump(event, output)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    for sha256 in manifest["missing_photos"]:
        click.echo(f"warning: the file of photo {sha256} is missing from PHOTO_DIR", err=True)
    click.echo(f"event {slug} written to {output}: {manifest['counts']['submission']} submission(s), "
               f"{manifest['photos']} photo file(s)")


@event_cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--slug", help="Restore under this slug instead of the archive's.")
def event_restore(path, slug):
    """Load an archive of 'cartoparty event dump' as a new event; refuses when its slug is taken."""
    from .backup import BackupError, restore

    try:
        report = restore(path, slug)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"event {report['slug']} restored: {report['counts']['submission']} submission(s), "
               f"{report['photos_copied']} photo file(s) copied")
    for email in report["unknown_organisers"]:
        click.echo(f"organiser {email} has no account here: not linked to the event", err=True)
    for sha256 in report["missing_photos"]:
        click.echo(f"warning: the file of photo {sha256} is neither here nor in the archive", err=True)


def _review(decision, slug, client_ids, all_pending, reason, email):
    """Approve or reject from the command line, audited like a decision on the map."""
    from . import review
    from .extensions import db
    from .models import Event, Organiser, Submission

    event = db.session.scalar(db.select(Event).filter_by(slug=slug))
    if event is None:
        raise click.ClickException(f"there is no event {slug!r}")
    organiser = db.session.scalar(db.select(Organiser).filter_by(email=email.strip().lower()))
    if organiser is None or not event.is_organised_by(organiser):
        raise click.ClickException(f"{email} is not an organiser of {slug}")
    if bool(client_ids) == all_pending:
        raise click.ClickException("name the submissions' CLIENT_IDs or give --all-pending")
    if decision == "reject" and not (reason or "").strip():
        raise click.ClickException("--reason is needed to reject")
    try:
        wanted = {uuid.UUID(value) for value in client_ids}
    except ValueError:
        raise click.ClickException("a CLIENT_ID is not a UUID") from None
    known = set(db.session.scalars(db.select(Submission.client_id).where(
        Submission.event_id == event.id, Submission.client_id.in_(wanted))))
    if wanted - known:
        raise click.ClickException(f"no submission {sorted(map(str, wanted - known))[0]} in {slug}")
    changed = review.decide(event, decision, f"{organiser.email} (command line)", organiser.id,
                            reason, client_ids=sorted(map(str, wanted)) if wanted else None,
                            all_pending=all_pending)
    db.session.commit()
    click.echo(f"{review.DECISIONS[decision]} {len(changed)} submission(s) of {slug}")


def _review_command(decision):
    @click.argument("client_ids", nargs=-1)
    @click.option("--event", "slug", required=True, help="The event's slug.")
    @click.option("--all-pending", is_flag=True, help="Every submission still pending.")
    @click.option("--reason", help="Why (needed to reject).")
    @click.option("--as", "email", required=True, help="The organiser deciding.")
    def command(client_ids, slug, all_pending, reason, email):
        _review(decision, slug, client_ids, all_pending, reason, email)

    command.__doc__ = f"{decision.capitalize()} submissions (CLIENT_IDs, or --all-pending)."
    return review_cli.command(decision)(command)


approve_command = _review_command("approve")
reject_command = _review_command("reject")


def _event(slug):
    from .extensions import db
    from .models import Event

    event = db.session.scalar(db.select(Event).filter_by(slug=slug))
    if event is None:
        raise click.ClickException(f"there is no event {slug!r}")
    return event


@osm_cli.command("fetch")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--force", is_flag=True, help="Even if fetched less than 5 minutes ago.")
def osm_fetch(slug, force):
    """Refresh the event's OSM data from Overpass (one query, or one per tile)."""
    from .errors import CartopartyError
    from .osm.store import refresh_from_overpass

    try:
        count = refresh_from_overpass(_event(slug), force=force)
    except CartopartyError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{count} OSM features stored for {slug}")


@osm_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--event", "slug", required=True, help="The event's slug.")
def osm_import(path, slug):
    """Load the event's OSM data from an extract (.osm, .osm.pbf, .osm.gz, .osm.bz2)."""
    from .errors import CartopartyError
    from .osm.store import import_extract

    try:
        count = import_extract(_event(slug), path)
    except CartopartyError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{count} OSM features stored for {slug} from {Path(path).name}")


@cli.command("conflate")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Also write each point's match and what decided it to FILE.csv or FILE.geojson.")
@click.option("--radius", "radii", multiple=True, metavar="PRESET=METRES",
              help="Set the event's matching radius for a preset (kept for the event), e.g. tree=4; "
                   "PRESET= goes back to the preset's own.")
def conflate_command(slug, output, radii):
    """Match every submission of the event against its OSM data."""
    from .extensions import db
    from .models import OsmSnapshot
    from .osm import conflate, report

    try:
        if output:
            report.check_format(output)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    event = _event(slug)
    if radii:
        _set_radii(event, radii)
    if db.session.get(OsmSnapshot, event.id) is None:
        raise click.ClickException(f"no OSM data for {slug} yet: run 'cartoparty osm fetch' or "
                                   "'cartoparty osm import' first")
    counts = conflate.match(event)
    db.session.commit()
    click.echo(", ".join(f"{count} {outcome}" for outcome, count in counts.items()))
    if output:
        try:
            written = report.write_matches(event, output)
        except OSError as error:
            raise click.ClickException(f"{output}: {error.strerror}") from None
        click.echo(f"{written} points written to {output}")


def _set_radii(event, radii):
    """Change the event's matching radii from PRESET=METRES options, or one line and exit 1."""
    from .errors import CartopartyError
    from .osm import conflate
    from .presets import all_presets

    changes = {}
    for option in radii:
        preset, sep, metres = option.partition("=")
        if not sep:
            raise click.ClickException(f"--radius {option!r}: write it PRESET=METRES, e.g. tree=4")
        changes[preset.strip()] = metres
    try:
        set_now = conflate.read_match_radii(changes, all_presets())
    except CartopartyError as error:
        raise click.ClickException(f"--radius: {error.message}") from None
    kept = {preset: radius for preset, radius in (event.match_radii or {}).items() if preset not in changes}
    event.match_radii = {**kept, **set_now}


@osm_cli.command("check")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--no-fetch", is_flag=True, help="Match against the OSM data already stored.")
@click.option("--force", is_flag=True, help="Fetch even if fetched less than 5 minutes ago.")
def osm_check(slug, no_fetch, force):
    """Queue a check of the event against OSM (fetch, then match) for `cartoparty worker`."""
    from .errors import CartopartyError
    from .extensions import db
    from .osm.check import request_check

    try:
        check, queued = request_check(_event(slug), "cli", fetch=not no_fetch, force=force)
    except CartopartyError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    if queued:
        click.echo(f"check {check.id} of {slug} queued; 'cartoparty worker' runs it")
    else:
        click.echo(f"check {check.id} of {slug} is already {check.status}")


@cli.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs already queued, then stop.")
def worker_command(once):
    """Run background jobs (checks against OSM) until Ctrl-C or SIGTERM, which stop it once
    the running job is finished."""
    from sqlalchemy import text

    from . import jobs
    from .extensions import db

    # Fails here, in one line, if the database is unreachable or not upgraded yet.
    if not db.session.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")):
        raise click.ClickException("the job queue is missing: run 'cartoparty db upgrade' first")
    db.session.close()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    jobs.run_worker(current_app._get_current_object(), wait=not once)


@cli.command("export")
@click.argument("fmt", metavar="geojson|csv|gpkg|dae|html|photos|osc|josm|osm-preview")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The file to write; replaced whole, never left half-written.")
@click.option("--max-changes", type=click.IntRange(1, 10_000),
              help="osc, josm: at most this many changes per changeset (file).")
@click.option("--no-fetch", is_flag=True,
              help="osc, josm, osm-preview: do not read the features again from the OSM API.")
def export_command(fmt, slug, output, max_changes, no_fetch):
    """Export the event's approved points: GeoJSON, CSV, GeoPackage, schema-dae CSV of the
    defibrillators, an HTML map, or the photos as a zip; or its OpenStreetMap changes as
    osmChange, JOSM or a GeoJSON preview, after preparing them again (fetching the features
    to modify from the OSM API)."""
    from . import exports
    from .osm.changes import FORMATS as OSM_FORMATS

    if fmt not in exports.FORMATS and fmt not in OSM_FORMATS:
        known = ", ".join([*exports.FORMATS, *OSM_FORMATS])
        raise click.ClickException(f"unknown format {fmt!r}: one of {known}")
    event = _event(slug)
    target = Path(output)
    if target.is_dir():
        raise click.ClickException(f"{output} is a folder: give the file to write")
    if fmt in OSM_FORMATS:
        return _export_changes(event, fmt, target, max_changes, fetch=not no_fetch)
    try:
        count = exports.write(event, fmt, target)
        companion = exports.write_companion(event, fmt, target)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    what = "photo(s)" if fmt == "photos" else "approved point(s)"
    licence = f"; licence in {companion}" if companion else ""
    click.echo(f"{count} {what} of {slug} written to {output}{licence}")


def _export_changes(event, fmt, target, max_changes, fetch):
    from .errors import CartopartyError
    from .exports.osm import write_plan
    from .extensions import db
    from .osm import changes

    plan = changes.build(event, "cli", fetch=fetch)
    db.session.commit()
    if plan.base_error_detail:
        click.echo(f"warning: {_detail_text(plan.base_error_detail)}; "
                   "only the JOSM file holds the modifies", err=True)
    for _, osm_type, osm_id, key, conflict in changes.unsettled_conflicts(event):
        click.echo(f"conflict left out: {osm_type}/{osm_id} {key}: OSM had {conflict['matched']!r} "
                   f"when matched, has {conflict['osm']!r} now, surveyed {conflict['walker']!r}; "
                   "settle it on the OSM changes page", err=True)
    try:
        written = write_plan(event, fmt, target, "fr", max_changes)
    except CartopartyError as error:
        raise click.ClickException(error.message) from None
    except OSError as error:
        raise click.ClickException(f"cannot write {target}: {error.strerror or error}") from None
    for path, count in written:
        click.echo(f"{count} change(s) of {event.slug} written to {path}")


@cli.command("upload")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent, send nothing.")
@click.option("--as", "email", help="Send with this organiser's linked OSM account "
              "(default: the token in OSM_ACCESS_TOKEN).")
def upload_command(slug, dry_run, email):
    """Upload the event's prepared OSM changes (conflicts settled), as the page's button does,
    in the foreground; run again, it carries on from where its log says."""
    from .extensions import db
    from .models import Organiser, OsmUpload
    from .osm import changes, upload
    from .osm.account import cli_token, token_for

    event = _event(slug)
    if dry_run:
        for number, changeset in enumerate(changes.changesets(event), start=1):
            creates = sum(change.action == "create" for change in changeset)
            click.echo(f"changeset {number}: {len(changeset)} change(s), {creates} new")
        pending = len(upload.pending_logs(event))
        click.echo(f"{pending} changeset(s) of an earlier upload to finish; nothing sent")
        return
    if email:
        organiser = db.session.scalar(db.select(Organiser).filter_by(email=email.strip().lower()))
        if organiser is None:
            raise click.ClickException(f"there is no organiser {email}")
        token = token_for(organiser.id)
    else:
        token = cli_token()
    if not token:
        raise click.ClickException("no OSM token: set OSM_ACCESS_TOKEN, or --as EMAIL of an organiser "
                                   "who linked their OSM account")
    if upload.active_upload(event) is not None:
        raise click.ClickException(f"an upload of {slug} is already queued or running")
    plan = changes.plan_of(event)
    if plan.built_at is None or plan.base != "api":
        raise click.ClickException("prepare the changes first, with the OSM API reachable "
                                   "(the OSM changes page, or 'cartoparty export osc')")
    run = OsmUpload(event_id=event.id, requested_by="cli", status="queued", counts={})
    db.session.add(run)
    db.session.commit()
    upload.run(run, token)
    site = current_app.config["OSM_AUTH_URL"]
    for changeset_id in upload.changesets_of(run):
        click.echo(f"{site}/changeset/{changeset_id}")
    if run.status == "paused":
        click.echo(_detail_text(run.error_detail))
    elif run.status == "stopped":
        raise click.ClickException(_detail_text(run.error_detail))
    else:
        click.echo(f"upload of {slug} {run.status}")


def _detail_text(detail):
    """The English text of a stored error (CartopartyError.detail)."""
    from .i18n import translate

    return translate("en", f"error.{detail['code']}", **detail["params"])


def _participant(slug, pseudonym):
    """The event's participant with this pseudonym, or one line and exit 1."""
    from .extensions import db
    from .models import Participant

    event = _event(slug)
    # A walker may have chosen "anonyme-12", the name participant 12 got once erased: theirs first.
    participant = db.session.scalar(db.select(Participant).filter_by(
        event_id=event.id, pseudonym=pseudonym.strip())
        .order_by(Participant.erased_at.desc().nullsfirst()).limit(1))
    if participant is None:
        raise click.ClickException(f"no participant {pseudonym!r} in {slug}")
    return participant


@participant_cli.command("export")
@click.argument("pseudonym")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The zip to write (participant.json and the photos).")
def participant_export(pseudonym, slug, output):
    """Write everything held about a participant to a zip."""
    from .exports.common import replace_whole
    from .privacy import export_participant

    data = export_participant(_participant(slug, pseudonym))
    try:
        replace_whole(Path(output), lambda partial: Path(partial).write_bytes(data), "zip")
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(f"data of {pseudonym} in {slug} written to {output}")


@participant_cli.command("erase")
@click.argument("pseudonym")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def participant_erase(pseudonym, slug, yes):
    """Erase a participant's pseudonym, token, notes and photos; their points stay, anonymous
    (what went to OpenStreetMap stays there, under the ODbL)."""
    from .privacy import erase

    participant = _participant(slug, pseudonym)
    if not yes:
        click.confirm(f"Erase the personal data of {pseudonym} in {slug}? Their points stay, "
                      "anonymous", abort=True)
    erase([participant.id], "command line")
    click.echo(f"{pseudonym} erased from {slug}; their points stay, anonymous")


@retention_cli.command("run")
def retention_run():
    """Erase the participants of events past their retention period and delete old finished
    jobs, once (what the worker does every hour)."""
    from .privacy import run_retention

    erased, purged = run_retention()
    click.echo(f"{erased} participant(s) erased, {purged} finished job(s) deleted")


@cli.command("demo")
@click.option("--keep", is_flag=True, help="Keep the demo event and its points if it exists.")
def demo_command(keep):
    """Load or refresh the demo event (slug 'demo') and its organiser."""
    from .demo import load_demo

    email, password, loaded = load_demo(keep=keep)
    what = "demo event loaded" if loaded else "demo event kept as it was"
    click.echo(f"{what}; sign in as organiser {email} with password {password}")


def main():
    """Entry point of the console script: errors become one line and a non-zero exit."""
    try:
        cli.main(prog_name="cartoparty")
    except localdb.LocalDatabaseError as error:
        click.echo(f"cartoparty: {error}", err=True)
        sys.exit(1)
    except Exception as error:
        cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps psycopg's error
        if isinstance(cause, psycopg.errors.UndefinedTable):  # a new database, or an old schema
            click.echo("cartoparty: the database lacks cartoparty's tables: run "
                       "`cartoparty db upgrade` (make run does it)", err=True)
            sys.exit(1)
        if not isinstance(cause, psycopg.OperationalError):
            raise
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        click.echo(f"cartoparty: cannot reach the database: {reason}", err=True)
        sys.exit(1)


submissions_cli = AppGroup("submissions", help="Walkers' points, and points from other tools.")
cli.add_command(submissions_cli)


@submissions_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--preset", "preset_id", required=True, help="The preset of every point of the file.")
@click.option("--id-field", help="The property, column or GPX element holding each point's id "
                                 "(default: id; for GPX, name).")
@click.option("--show", default=20, show_default=True, help="How many refused rows to list.")
def submissions_import(path, slug, preset_id, id_field, show):
    """Import points collected with other tools (ODK, Kobo, a GPS, paper) from a GeoJSON, CSV
    or GPX file as pending points of one preset, under one participant per file ("import:
    FILE"). Importing the same file again adds nothing."""
    from .errors import CartopartyError
    from .extensions import db
    from .pointsimport import import_points

    event = _event(slug)
    try:
        report = import_points(event, path, preset_id, id_field)
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror or error}") from None
    except CartopartyError as error:
        raise click.ClickException(f"{Path(path).name}: {error.message}") from None
    db.session.commit()
    click.echo(report.summary())
    for where, reason in report.refused[:show]:
        click.echo(f"  {where}: {reason}")
    if len(report.refused) > show:
        click.echo(f"  … and {len(report.refused) - show} more refused")


reference_cli = AppGroup("reference", help="A town's own dataset (defibrillators, trees) to check "
                                           "in the field.")
cli.add_command(reference_cli)


@reference_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("--kind", required=True, type=click.Choice(["dae", "trees", "geojson", "csv"]),
              help="dae: schema-dae 1.0.7/1.0.8; trees: schema-arbre 0.2/0.3; geojson, csv: any.")
@click.option("--crs", default="EPSG:4326", show_default=True,
              help="The file's coordinate reference system, e.g. EPSG:3945 (Lambert CC45).")
@click.option("--lat", help="The latitude (or northing) column, when not found by its name.")
@click.option("--lon", help="The longitude (or easting) column; the --lat column again for a "
                            "\"lat, lon\" text column.")
@click.option("--id", "id_name", help="The column (GeoJSON property) of each row's own identifier.")
@click.option("--preset", help="For geojson and csv: the preset walkers check the rows with "
                               "(dae rows are checked as defibrillators, trees as trees).")
@click.option("--show", default=10, show_default=True, help="How many refused rows to list.")
def reference_import(path, slug, kind, crs, lat, lon, id_name, preset, show):
    """Load a town's dataset (CSV or GeoJSON) as the event's reference dataset, replacing the
    one imported before; each row is loaded, fixed (latitude and longitude swapped) or refused
    with its reason. Nothing is written when the file cannot be read whole."""
    from .errors import CartopartyError
    from .extensions import db
    from .reference.store import import_reference

    event = _event(slug)
    try:
        data = Path(path).read_bytes()
        report = import_reference(event, data, Path(path).name, kind, crs, lat, lon, id_name, preset)
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror or error}") from None
    except CartopartyError as error:
        raise click.ClickException(f"{Path(path).name}: {error.message}") from None
    db.session.commit()
    for line in report.lines(show):
        click.echo(line)


@reference_cli.command("export")
@click.option("--event", "slug", required=True, help="The event's slug.")
@click.option("-o", "--output", "path", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The file to write: the town's dataset, corrected, in its own format.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True),
              help="Also write the change report (CSV): each checked row, each field changed.")
@click.option("--schema", type=click.Path(exists=True, dir_okay=False),
              help="A Table Schema (JSON) to validate the written CSV against, e.g. schema-dae's.")
@click.option("--show", default=100, show_default=True, help="How many validation errors to list.")
def reference_export(slug, path, report, schema, show):
    """Write the event's reference dataset back as the town gave it (same columns, delimiter,
    CRS), corrected by the approved checks, with two more columns: verification_terrain and
    date_verification. Rows refused at import are not in it. With --schema, exit 1 when the
    written CSV is not valid against it."""
    from .errors import CartopartyError
    from .reference import export

    event = _event(slug)
    try:
        dataset = export.dataset_of(event)
        title = export.schema_title(schema) if schema else None
        if schema and dataset.format != "csv":
            raise click.ClickException("--schema validates a CSV; this dataset is GeoJSON")
        counts = export.export(event, path, report)
        errors = export.validate(path, schema, dataset.delimiter) if schema else []
    except OSError as error:
        where = error.filename or path
        raise click.ClickException(f"cannot write {where}: {error.strerror or error}") from None
    except CartopartyError as error:
        raise click.ClickException(error.message) from None
    told = ", ".join(f"{counts[outcome]} {outcome.replace('_', ' ')}" for outcome in export.WORDS)
    click.echo(f"{path}: {sum(counts.values())} rows ({told}); rows refused at import are not in it")
    if report:
        click.echo(f"{report}: the change report")
    for error in errors[:show]:
        click.echo(f"  row {error['row'] or 'header'}, {error['field'] or '-'}: {error['message']}")
    if len(errors) > show:
        click.echo(f"  … and {len(errors) - show} more errors")
    if errors:
        raise click.ClickException(f"{len(errors)} error{'s' if len(errors) > 1 else ''} against {title}")
    if schema:
        click.echo(f"valid against {title}")
