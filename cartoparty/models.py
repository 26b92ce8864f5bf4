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
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

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

    organisers = relationship("Organiser", secondary=event_organisers, back_populates="events")
    teams = relationship("Team", order_by="Team.name", cascade="all, delete-orphan",
                         passive_deletes=True)

    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]*$'", name="event_slug_format"),
        CheckConstraint("ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at",
                        name="event_ends_after_start"),
    )

    def is_organised_by(self, organiser):
        """Whether this organiser may see and change the event."""
        return organiser is not None and organiser in self.organisers


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
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    consented_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("participant_pseudonym_unique", "event_id", func.lower(pseudonym), unique=True),
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

    photos = relationship("Photo", back_populates="submission", order_by="Photo.id",
                          cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (
        UniqueConstraint("event_id", "client_id", name="submission_client_id_unique"),
        # Filters and counts of the review map read these four columns of many rows.
        Index("submission_event_status", "event_id", "status", "preset", "participant_id"),
        Index("submission_event_received", "event_id", "received_at"),
    )


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


class SignInAttempt(db.Model):
    """A failed sign-in, kept a while to slow down password guessing."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
        # Matching measures in metres on the sphere: the geography is indexed too.
        Index("osm_element_geography", text("(geom::geography)"), postgresql_using="gist"),
    )


class OsmSnapshot(db.Model):
    """When and from where an event's OSM data was last refreshed, and how it went."""

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"),
                                          primary_key=True)
    source: Mapped[str] = mapped_column(String(300))
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    element_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
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
    matched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("outcome IN ('new', 'existing', 'update', 'ambiguous', 'duplicate')",
                        name="match_outcome"),
    )
