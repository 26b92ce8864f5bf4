"""The Flask extensions, created unbound and attached in create_app().

Flask-Migrate (and with it Alembic, a sixth of a command's start-up) is bound only where the
schema changes: the `db` command and `upgrade_schema()`."""

from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()


def bind_migrations(app):
    """Attach Flask-Migrate to `app` (once), with the project's migrations."""
    from flask_migrate import Migrate

    from .config import MIGRATIONS_DIR

    if "migrate" not in app.extensions:
        Migrate(app, db, directory=str(MIGRATIONS_DIR))


def upgrade_schema():
    """Bring the current app's database to the newest migration."""
    import flask_migrate

    bind_migrations(current_app)
    flask_migrate.upgrade()
