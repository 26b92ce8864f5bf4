"""Alembic environment for cartoparty: the app's engine and metadata, and GeoAlchemy2's
helpers so that spatial columns and their GiST indexes are rendered once, correctly."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from geoalchemy2 import alembic_helpers

config = context.config
# Keep the app's own loggers working when migrations run inside it (tests, `db upgrade`).
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db
config.set_main_option(
    "sqlalchemy.url", db.engine.url.render_as_string(hide_password=False).replace("%", "%%"))


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS's own tables (spatial_ref_sys, tiger, topology) are not ours to migrate.
    if type_ == "table" and reflected and compare_to is None:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def process_revision_directives(context_, revision, directives):
    alembic_helpers.writer(context_, revision, directives)
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def configure(**options):
    context.configure(
        target_metadata=db.metadata,
        include_object=include_object,
        render_item=alembic_helpers.render_item,
        process_revision_directives=process_revision_directives,
        compare_type=True,
        **options,
    )


if context.is_offline_mode():
    configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with db.engine.connect() as connection:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
