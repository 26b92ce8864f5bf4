import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import make_event
from geoalchemy2 import alembic_helpers
from sqlalchemy.exc import IntegrityError

from cartoparty.extensions import db
from cartoparty.models import Participant, Status, Submission


def test_migrations_build_exactly_the_models(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_object": lambda obj, name, type_, reflected, compare_to: not (
                type_ == "table" and reflected and compare_to is None)
            and alembic_helpers.include_object(obj, name, type_, reflected, compare_to)})
        assert compare_metadata(context, db.metadata) == []


def test_every_geometry_has_a_gist_index():
    rows = db.session.execute(db.text("""
        SELECT c.relname AS tbl, a.attname AS col,
               EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                       JOIN pg_am am ON am.oid = ic.relam
                       WHERE i.indrelid = c.oid AND a.attnum = ANY(i.indkey) AND am.amname = 'gist')
                   AS indexed
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.atttypid = 'geometry'::regtype
    """)).all()
    assert {(row.tbl, row.col) for row in rows} >= {("event", "zone"), ("submission", "geom")}
    assert all(row.indexed for row in rows)
    srids = db.session.execute(db.text("SELECT DISTINCT srid FROM geometry_columns")).scalars()
    assert set(srids) == {4326}


def _submission(event, participant, client_id):
    return Submission(event_id=event.id, participant_id=participant.id, client_id=client_id,
                      preset="tree", geom="SRID=4326;POINT(5.92 45.565)", tags={},
                      note="", observed_at=db.func.now(), body_sha256="x")


def test_client_id_is_unique_within_an_event():
    event = make_event()
    walker = Participant(event_id=event.id, pseudonym="Camille", token_hash="a" * 64,
                         consented_at=db.func.now())
    db.session.add(walker)
    db.session.flush()
    client_id = "0b1f3c1e-4a4f-4a53-9a8e-1d2b3c4d5e6f"
    db.session.add(_submission(event, walker, client_id))
    db.session.flush()
    assert db.session.scalar(db.select(Submission.status)) == Status.pending
    db.session.add(_submission(event, walker, client_id))
    with pytest.raises(IntegrityError):
        db.session.flush()


def test_event_slug_and_dates_are_checked_by_the_database():
    with pytest.raises(IntegrityError):
        make_event("Not A Slug")
    db.session.rollback()
    with pytest.raises(IntegrityError):
        make_event("late", starts_at=db.func.now(), ends_at=db.text("now() - interval '1 day'"))
