"""The project-local PostgreSQL + PostGIS cluster, used whenever DATABASE_URL is unset.

It lives in `.local/pg` beside the package, listens on 127.0.0.1 on its own port
(54329 unless CARTOPARTY_DB_PORT says otherwise) and trusts local connections,
so it is for development and tests only. PostgreSQL refuses to run as root, so
as root the cluster belongs to, and runs as, the `postgres` system user.

    python -m cartoparty.localdb start|stop|status|url
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

PORT = int(os.environ.get("CARTOPARTY_DB_PORT", "54329"))
USER = "cartoparty"
DATABASE = "cartoparty"
PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("CARTOPARTY_LOCAL_DIR", PROJECT_DIR / ".local"))


class LocalDatabaseError(Exception):
    """The local cluster could not be prepared; the message says what to do."""


def url(database=DATABASE):
    """The SQLAlchemy URL of a database in the local cluster."""
    return f"postgresql+psycopg://{USER}@127.0.0.1:{PORT}/{database}"


def _as_root():
    return os.geteuid() == 0


def _run(args, check=True):
    """Run a PostgreSQL program, as the postgres user when we are root."""
    if _as_root():
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=check, capture_output=True, text=True)  # noqa: S603


def _bin(program):
    """Path of a PostgreSQL server program (Debian keeps them out of PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return str(found[-1])
    on_path = shutil.which(program)
    if on_path:
        return on_path
    raise LocalDatabaseError(
        f"PostgreSQL's {program} is not installed: run "
        "'apt-get install postgresql postgresql-postgis' (as root), or set DATABASE_URL")


def cluster_dir():
    """Where the cluster lives: .local/pg, unless the postgres user cannot reach it."""
    preferred = LOCAL_DIR / "pg"
    if not _as_root():
        return preferred
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    reachable = _run(["test", "-x", str(LOCAL_DIR)], check=False).returncode == 0
    if reachable:
        return preferred
    # A checkout under /root is closed to other users; keep the cluster under
    # PostgreSQL's own folder, one per checkout.
    digest = hashlib.sha256(str(PROJECT_DIR).encode()).hexdigest()[:12]
    return Path("/var/lib/postgresql") / f"cartoparty-{digest}"


@contextmanager
def _lock():
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCAL_DIR / "pg.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def is_running(directory):
    """Whether a server is running on the cluster in `directory`."""
    data = directory / "data"
    return (data / "PG_VERSION").exists() and \
        _run([_bin("pg_ctl"), "status", "-D", str(data)], check=False).returncode == 0


def _init(directory):
    directory.mkdir(parents=True, exist_ok=True)
    if _as_root():
        shutil.chown(directory, "postgres", "postgres")
    result = _run([_bin("initdb"), "-D", str(directory / "data"), "-U", USER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C"], check=False)
    if result.returncode != 0:
        raise LocalDatabaseError(f"initdb failed: {result.stderr.strip().splitlines()[-1]}")


def _start(directory):
    options = f"-p {PORT} -k {directory} -c listen_addresses=127.0.0.1"
    result = _run([_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(directory / "data"),
                   "-l", str(directory / "postgresql.log"), "-o", options], check=False)
    if result.returncode != 0:
        raise LocalDatabaseError(
            f"the local PostgreSQL did not start on port {PORT}; see {directory}/postgresql.log "
            "(set CARTOPARTY_DB_PORT if the port is taken)")


def create_database(name):
    """Create a database in the local cluster if it does not exist yet."""
    with psycopg.connect(f"host=127.0.0.1 port={PORT} user={USER} dbname=postgres",
                         autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_running():
    """Create and start the local cluster and its database if needed; return the URL."""
    with _lock():
        directory = cluster_dir()
        if not (directory / "data" / "PG_VERSION").exists():
            _init(directory)
        if not is_running(directory):
            _start(directory)
        create_database(DATABASE)
    return url()


def stop():
    """Stop the local cluster if it runs."""
    directory = cluster_dir()
    if is_running(directory):
        _run([_bin("pg_ctl"), "stop", "-m", "fast", "-D", str(directory / "data")])


def main(argv=None):
    command = (argv or sys.argv[1:] or ["start"])[0]
    try:
        if command == "start":
            print(ensure_running())
        elif command == "stop":
            stop()
        elif command == "status":
            running = is_running(cluster_dir())
            print(f"{'running' if running else 'stopped'}: {cluster_dir()} port {PORT}")
        elif command == "url":
            print(url())
        else:
            raise LocalDatabaseError(f"unknown command {command!r}: use start, stop, status or url")
    except LocalDatabaseError as error:
        print(f"cartoparty: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
