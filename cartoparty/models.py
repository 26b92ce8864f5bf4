"""The data: events, their participants and submissions, photos and organisers.

Geometries are WGS84 (SRID 4326), longitude first, each with a GiST index.
"""

import enum
import hashlib
import secrets
import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names as postgresql_types
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import UserDefinedType

from .extensions import db
from .lookalikes import skeleton


class XID8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "xid8"


# So that reading the schema back (Alembic's comparison with the models) knows the type too.
postgresql_types["xid8"] = XID8

event_organisers = Table(
    "event_organiser",
    db.metadata,
    Column("event_id", ForeignKey("event.id", ondelete="CASCADE"), primary_key=True),
    Column("organiser_id", ForeignKey("organiser.id", ondelete="CASCADE"), primary_key=True),
)


def new_join_code():
    """A short random code for join links (about 48 bits)."""
    return secrets.token_urlsafe(6)


def hash_token(token):
    """The stored form of a participant's secret token (tokens are random, so sha256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Event(db.Model):
    """A mapping party: where (zone), what (presets) and when."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    zone = mapped_column(Geometry("MULTIPOLYGON", srid=4326), nullable=False)
    presets: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    join_code: Mapped[str] = mapped_column(String(16), unique=True, default=new_join_code)
    licence: Mapped[str] = mapped_column(String(100), default="ODbL-1.0")
    allow_outside_zone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The restitution page (/r/<slug>) is public from this moment; None while unpublished.
    restitution_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Matching radius in metres by preset id, where the event's organisers set one (else the
    # preset's own `match_radius`).
    match_radii: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # Shown on the public map of events (/events) once its organiser chooses so; never by default.
    listed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Personal data of its walkers is erased this many days after the event (privacy.erase_after).
    retention_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    # Who walkers write to about their data: an email or a postal address, as typed.
    privacy_contact: Mapped[str] = mapped_column(Text, default="", server_default="")

    organisers = relationship("Organiser", secondary=event_organisers, back_populates="events")
    teams = relationship("Team", order_by="Team.name", cascade="all, delete-orphan",
                         passive_deletes=True)

    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]*$'", name="event_slug_format"),
        CheckConstraint("ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at",
                        name="event_ends_after_start"),
        CheckConstraint("retention_days BETWEEN 1 AND 3650", name="event_retention_days"),
        CheckConstraint("char_length(privacy_contact) <= 200", name="event_privacy_contact_length"),
    )

    def is_organised_by(self, organiser):
        """Whether this organiser may see and change the event."""
        return organiser is not None and organiser in self.organisers

    def restitution_is_public(self):
        """Whether anyone may read the event's restitution page."""
        return self.restitution_published_at is not None

    def feedback_is_open(self, now):
        """Whether walkers are asked for their feedback: once the event has ended, or once its
        restitution is published (whichever comes first)."""
        return self.restitution_is_public() or (self.ends_at is not None and self.ends_at <= now)


class Team(db.Model):
    """A group of walkers with one theme (some presets) and one sector (part of the zone)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    presets: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    sector = mapped_column(Geometry("MULTIPOLYGON", srid=4326), nullable=True)
    join_code: Mapped[str] = mapped_column(String(16), unique=True, default=new_join_code)

    __table_args__ = (UniqueConstraint("event_id", "name", name="team_name_unique"),)


class Participant(db.Model):
    """A walker in one event: a pseudonym and when they accepted the licence, nothing more."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"),
                                                index=True)
    pseudonym: Mapped[str] = mapped_column(String(40))
    # What the pseudonym looks like (lookalikes.skeleton), computed once when the row is written:
    # one per event, so a look-alike of a taken pseudonym is refused by the index itself, even
    # when two walkers join at once. NULL only for rows written by hand in SQL (the benches).
    pseudonym_skeleton: Mapped[str | None] = mapped_column(
        Text, default=lambda context: skeleton(context.get_current_parameters()["pseudonym"]))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    consented_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the walker answered the feedback form (to the hour): they answer once, and the
    # answer itself does not say who gave it.
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When their pseudonym, token, notes and photos were erased (privacy.erase); their points stay.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who asked: an organiser's email, "walker" (themselves) or "retention" (the periodic task).
    erased_by: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        Index("participant_skeleton_unique", "event_id", "pseudonym_skeleton", unique=True),
    )


class Feedback(db.Model):
    """One walker's answer to the end-of-event form, anonymous unless they chose to sign it
    with their pseudonym. No link to the participant: see Participant.feedback_at."""

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True,
                                          server_default=text("gen_random_uuid()"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    learnt: Mapped[str] = mapped_column(Text, default="", server_default="")
    improve: Mapped[str] = mapped_column(Text, default="", server_default="")
    come_again: Mapped[str] = mapped_column(String(5))
    signature: Mapped[str | None] = mapped_column(String(40))
    # To the hour, like participant.feedback_at, so that the times do not pair them up.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=text("date_trunc('hour', now())"))

    __table_args__ = (
        CheckConstraint("come_again IN ('yes', 'maybe', 'no')", name="feedback_come_again"),
        CheckConstraint("char_length(learnt) <= 2000 AND char_length(improve) <= 2000",
                        name="feedback_text_length"),
    )


class Status(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Submission(db.Model):
    """One point a walker recorded, identified by the client_id the phone gave it."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    preset: Mapped[str] = mapped_column(String(40))
    geom = mapped_column(Geometry("POINT", srid=4326), nullable=False)
    accuracy: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[dict] = mapped_column(JSONB, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[Status] = mapped_column(
        Enum(Status, name="submission_status"), default=Status.pending, server_default="pending")
    body_sha256: Mapped[str] = mapped_column(String(64))
    # Raised by every change; a save based on an older version is refused (optimistic locking).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission.id", ondelete="SET NULL"))
    # A verdict on a row of the event's reference dataset (issue 16): the walker checked the
    # town's record there and found it as described, different, moved, or missing. A missing
    # one is no feature: it goes to no OSM check, change or open-data export.
    reference_row_id: Mapped[int | None] = mapped_column(ForeignKey("reference_row.id"))
    verdict: Mapped[str | None] = mapped_column(String(10))
    # The transaction that last wrote the row (set by a trigger on update): walkers' phones ask
    # for what changed since a snapshot of theirs (see walkersync.py).
    changed_xid = mapped_column(XID8, nullable=False, server_default=text("pg_current_xact_id()"))

    photos = relationship("Photo", back_populates="submission", order_by="Photo.id",
                          cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (
        UniqueConstraint("event_id", "client_id", name="submission_client_id_unique"),
        # Filters and counts of the review map read these four columns of many rows.
        Index("submission_event_status", "event_id", "status", "preset", "participant_id"),
        Index("submission_event_received", "event_id", "received_at"),
        Index("submission_event_changed", "event_id", "changed_xid"),
        Index("ix_submission_reference_row_id", "reference_row_id",
              postgresql_where=text("reference_row_id IS NOT NULL")),
        CheckConstraint("(verdict IS NULL) = (reference_row_id IS NULL) AND "
                        "(verdict IS NULL OR verdict IN ('confirmed', 'different', 'moved', 'missing'))",
                        name="submission_verdict"),
    )


class SubmissionRemoved(db.Model):
    """A point that left the walkers' view: deleted (its author is told), or no longer approved
    (everyone who saw it approved is told). Written by triggers (see the migration) so that
    phones syncing since a snapshot drop it too."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # The author of a deleted point; None when the point only stopped being approved.
    participant_id: Mapped[int | None] = mapped_column(Integer)
    was_approved: Mapped[bool] = mapped_column(Boolean)
    xid = mapped_column(XID8, nullable=False, server_default=text("pg_current_xact_id()"))

    __table_args__ = (Index("submission_removed_event_xid", "event_id", "xid"),)


class EventRevision(db.Model):
    """How many times an event's submissions, photos or matches have been written.

    Bumped by triggers (see the migration) at the end of each statement. Several counters per
    event, one per shard of database sessions, so that walkers sending points at once do not
    queue on one row; the event's revision is their sum. A sum of committed counters can only
    grow when a change commits, unlike max(id) or a sequence, which a transaction still running
    may have drawn below the value someone already read."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class SubmissionChange(db.Model):
    """The change log of submissions, written by triggers (see the migration): +1 for each row a
    statement inserts, -1 for each it deletes, both for an update; `txid` is the writing
    transaction. The review map adds up the rows written since it last counted (reviewmap.py)
    instead of counting 100,000 points again. Rows older than an hour are pruned."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer)
    txid: Mapped[int] = mapped_column(BigInteger)
    sign: Mapped[int] = mapped_column(SmallInteger)
    preset: Mapped[str] = mapped_column(String(40))
    status: Mapped[Status] = mapped_column(Enum(Status, name="submission_status"))
    participant_id: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("submission_change_event_txid", "event_id", "txid"),
        Index("submission_change_changed_at", "changed_at", postgresql_using="brin"),
    )


class Photo(db.Model):
    """A photo of a submission; the file lives in PHOTO_DIR under its sha256."""

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    submission = relationship("Submission", back_populates="photos")

    __table_args__ = (UniqueConstraint("submission_id", "sha256", name="photo_once_per_submission"),)

    @property
    def filename(self):
        extension = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[self.media_type]
        return f"{self.sha256[:2]}/{self.sha256}.{extension}"


class Organiser(db.Model):
    """Someone who prepares events and reviews their submissions."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    events = relationship("Event", secondary=event_organisers, back_populates="organisers")


class AuditEntry(db.Model):
    """One change to a submission: who, when, what it was before and after."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    organiser_id: Mapped[int | None] = mapped_column(
        ForeignKey("organiser.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    before: Mapped[dict] = mapped_column(JSONB)
    after: Mapped[dict] = mapped_column(JSONB)


class SignInFailure(db.Model):
    """Recent failed sign-ins of one email from one address: guessing from there gets slower, and
    only there. `key` is an HMAC of the pair: neither the email nor the address is kept."""

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class OrganiserSession(db.Model):
    """A signed-in browser. Its cookie holds a random key whose hash is `key_hash`: signing out
    deletes the row, and every copy of the cookie stops working."""

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organiser_id: Mapped[int] = mapped_column(ForeignKey("organiser.id", ondelete="CASCADE"),
                                              index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JoinRate(db.Model):
    """How many joins came lately from one address (an HMAC of it), to slow down a flood of fake
    walkers while a whole party behind one router still joins."""

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    joins: Mapped[int] = mapped_column(Integer)


class OsmElement(db.Model):
    """An OpenStreetMap feature of an event's area, as last fetched (Overpass) or imported
    (an extract): ways and relations are kept at their centre."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"),
                                          primary_key=True)
    osm_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    osm_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int | None] = mapped_column(Integer)
    timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tags: Mapped[dict] = mapped_column(JSONB)
    geom = mapped_column(Geometry("POINT", srid=4326), nullable=False)

    __table_args__ = (
        CheckConstraint("osm_type IN ('node', 'way', 'relation')", name="osm_element_type"),
    )


class OsmSnapshot(db.Model):
    """When and from where an event's OSM data was last refreshed, and how it went."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"),
                                          primary_key=True)
    source: Mapped[str] = mapped_column(String(300))
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    element_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The same as a code and its parameters (errors.CartopartyError.detail), for the page.
    last_error_detail: Mapped[dict | None] = mapped_column(JSONB)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Match(db.Model):
    """What conflation found for one submission: new, existing, update, ambiguous, duplicate."""

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(10))
    osm_type: Mapped[str | None] = mapped_column(String(8))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    osm_version: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[float | None] = mapped_column(Float)
    tag_diff: Mapped[dict | None] = mapped_column(JSONB)
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission.id", ondelete="SET NULL"))
    overridden_by: Mapped[str | None] = mapped_column(String(300))
    # What decided it (osm/assignment.py): cost parts, the runner-up and the gap to it.
    explanation: Mapped[dict | None] = mapped_column(JSONB)
    matched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("outcome IN ('new', 'existing', 'update', 'ambiguous', 'duplicate')",
                        name="match_outcome"),
    )


class OsmCheck(db.Model):
    """A check of an event against OpenStreetMap, run as a job (see osm/check.py): fetch the OSM
    data if asked, then match every submission. Organisers follow its status and step."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    # procrastinate's job id; no foreign key: procrastinate may purge its old jobs.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="queued", server_default="queued")
    step: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Whether it refreshes the OSM data from Overpass first ("fetch" is an SQL keyword).
    fetch_osm: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    # The same as a code and its parameters (errors.CartopartyError.detail), for the page.
    error_detail: Mapped[dict | None] = mapped_column(JSONB)
    counts: Mapped[dict | None] = mapped_column(JSONB)
    requested_by: Mapped[str] = mapped_column(String(300))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')",
                        name="osm_check_status"),
        Index("osm_check_event", "event_id", "id"),
        # At most one check queued or running per event, even when two organisers ask at once.
        Index("osm_check_one_active", "event_id", unique=True,
              postgresql_where=text("status IN ('queued', 'running')")),
    )


class OsmPlan(db.Model):
    """An event's plan of OpenStreetMap changes (osm/changes.py): when it was built and from
    what base, and the organiser's settings for its changesets."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"),
                                          primary_key=True)
    built_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    built_by: Mapped[str | None] = mapped_column(String(300))
    # 'api': the elements to modify were fetched again just before; 'stored': the OSM API could
    # not be reached and the plan rests on the stored OSM data (only the JOSM file is offered).
    base: Mapped[str | None] = mapped_column(String(8))
    base_error_detail: Mapped[dict | None] = mapped_column(JSONB)
    comment: Mapped[str] = mapped_column(String(255), default="", server_default="")
    hashtags: Mapped[str] = mapped_column(String(255), default="", server_default="")
    wiki_page: Mapped[str] = mapped_column(String(255), default="", server_default="")
    mark_checked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    max_changes: Mapped[int] = mapped_column(Integer, default=1000, server_default="1000")
    max_size: Mapped[float] = mapped_column(Float, default=0.05, server_default="0.05")

    __table_args__ = (
        CheckConstraint("base IN ('api', 'stored')", name="osm_plan_base"),
        CheckConstraint("max_changes BETWEEN 1 AND 10000", name="osm_plan_max_changes"),
        CheckConstraint("max_size > 0 AND max_size <= 1", name="osm_plan_max_size"),
    )


class OsmChange(db.Model):
    """One item of an event's plan: a node to create, an element to modify, or points held
    back with the reason, and the submissions it comes from."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    # What an organiser's choices are kept under when the plan is built again.
    key: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(8))
    osm_type: Mapped[str | None] = mapped_column(String(8))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    base_version: Mapped[int | None] = mapped_column(Integer)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    tags_before: Mapped[dict] = mapped_column(JSONB)
    tags_after: Mapped[dict] = mapped_column(JSONB)
    # [{"key", "before", "after"}] for each tag added or changed; nothing is ever removed.
    diff: Mapped[list] = mapped_column(JSONB)
    # {key: {"matched", "osm", "walker", "choice"}}: OSM changed a tag the walker changed too.
    conflicts: Mapped[dict] = mapped_column(JSONB)
    # The rest of a modified element as it is in OSM: a way's "nodes", a relation's "members".
    element: Mapped[dict | None] = mapped_column(JSONB)
    submission_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    # Why held back (an error code of the catalogs, with its parameters).
    reason: Mapped[dict | None] = mapped_column(JSONB)
    held_by: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint("action IN ('create', 'modify', 'held')", name="osm_change_action"),
        Index("osm_change_event_key", "event_id", "key", unique=True),
    )


class SubmissionOsm(db.Model):
    """Where a point is in OpenStreetMap once uploaded (osm/upload.py): the element, its version
    after our change, the changeset, and the submission's version that was sent. A table of its
    own: writing it touches neither the walkers' sync nor the review map's revisions."""

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), primary_key=True)
    osm_type: Mapped[str] = mapped_column(String(8))
    osm_id: Mapped[int] = mapped_column(BigInteger)
    osm_version: Mapped[int] = mapped_column(Integer)
    changeset: Mapped[int] = mapped_column(BigInteger)
    uploaded_version: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OsmAccount(db.Model):
    """An organiser's linked OpenStreetMap account (osm/account.py): who they are on OSM and
    their OAuth 2.0 token, encrypted at rest; deleted when they unlink it."""

    organiser_id: Mapped[int] = mapped_column(ForeignKey("organiser.id", ondelete="CASCADE"),
                                              primary_key=True)
    osm_uid: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(255))
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[str] = mapped_column(String(200))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OsmUpload(db.Model):
    """An upload of an event's plan of changes to OSM, run as a job (osm/upload.py): its state,
    progress, and why it paused (the hourly limit) or stopped."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    # Whose OSM account sends it; none when the CLI uses OSM_ACCESS_TOKEN.
    organiser_id: Mapped[int | None] = mapped_column(ForeignKey("organiser.id", ondelete="SET NULL"))
    requested_by: Mapped[str] = mapped_column(String(300))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="queued", server_default="queued")
    step: Mapped[str] = mapped_column(String(200), default="", server_default="")
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_detail: Mapped[dict | None] = mapped_column(JSONB)
    counts: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'paused', 'stopped', 'done', 'failed')",
                        name="osm_upload_status"),
        # One upload at a time per event, however many organisers press the button.
        Index("osm_upload_one_active", "event_id", unique=True,
              postgresql_where=text("status IN ('queued', 'running', 'paused')")),
    )


class OsmChangesetLog(db.Model):
    """One changeset of an upload, written before anything is sent (osm/upload.py): the changes
    it holds and the payload's digest, then OSM's changeset id and what OSM applied, so that a
    run cut at any step reads back instead of sending twice."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("osm_upload.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    # The plan's items (osm_change rows, copied: a later plan replaces those rows); read only
    # when used (a thousand changes, and the row is read again after each step's commit).
    changes: Mapped[list] = mapped_column(JSONB, deferred=True)
    tags: Mapped[dict] = mapped_column(JSONB)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    # Placeholder id → the change's key, for creates.
    placeholders: Mapped[dict] = mapped_column(JSONB)
    changeset_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10), default="planned", server_default="planned")
    # What OSM applied: {change key: [osm_type, osm_id, new_version]}.
    applied: Mapped[dict | None] = mapped_column(JSONB)
    error_detail: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("state IN ('planned', 'opened', 'sending', 'applied', 'closed', 'failed')",
                        name="osm_changeset_log_state"),
        Index("osm_changeset_log_upload", "upload_id", "id"),
    )


class ReferenceRow(db.Model):
    """One row of a town's own dataset (defibrillators, trees…) loaded into an event to be
    checked in the field (reference/): its own identifier, where it is, all its fields as the
    file gave them, and what the import fixed. One dataset per event, replaced whole."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    row_number: Mapped[int] = mapped_column(Integer)  # its line in the file, or feature from 1
    source_id: Mapped[str] = mapped_column(Text)
    geom = mapped_column(Geometry("POINT", srid=4326), nullable=False)
    fields: Mapped[dict] = mapped_column(JSONB)
    fixed: Mapped[str | None] = mapped_column(String(40))  # e.g. "lat_lon_swapped"
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The organiser's word on the row once walkers checked it (reference/settle.py), and the
    # verdict whose position and tags it takes; NULL: the walkers' approved verdicts propose.
    settled: Mapped[str | None] = mapped_column(String(12))
    settled_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission.id", ondelete="SET NULL", use_alter=True))
    settled_by: Mapped[str | None] = mapped_column(String(300))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_id", "source_id", name="reference_row_source_id"),
        CheckConstraint("kind IN ('dae', 'trees', 'geojson', 'csv')", name="reference_row_kind"),
        CheckConstraint("settled IS NULL OR settled IN "
                        "('confirmed', 'corrected', 'moved', 'missing', 'not_checked')",
                        name="reference_row_settled"),
    )


class ReferenceDataset(db.Model):
    """What an event's reference dataset is, beyond its rows: its kind and the preset its
    rows are checked with, the file it came from, and what the export back to the town needs
    to write the file in its own layout (columns in order, delimiter, position columns, CRS)."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    preset: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    schema: Mapped[str | None] = mapped_column(String(40))  # "schema-dae 1.0.7"…
    format: Mapped[str] = mapped_column(String(10))  # "csv" or "geojson"
    columns: Mapped[list] = mapped_column(JSONB)  # the fields' names, in the file's order
    delimiter: Mapped[str] = mapped_column(String(1))
    # The fields holding the position, as named in `columns`; the same for a "lat, lon" text;
    # None for GeoJSON (the geometry).
    lat_column: Mapped[str | None] = mapped_column(Text)
    lon_column: Mapped[str | None] = mapped_column(Text)
    crs: Mapped[str] = mapped_column(String(20))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
