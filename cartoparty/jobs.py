"""The job queue: procrastinate on the app's own PostgreSQL (its tables come from the
migrations). A job is deferred inside the session's transaction, so that it exists exactly when
what the request wrote does; `cartoparty worker` runs the jobs, each inside an app context.

procrastinate is heavy to import: the queue is built by queue(app) the first time a job is
deferred or a worker runs, so that the other commands and requests never load it."""

import asyncio
import functools
import logging
import signal

from flask import current_app
from sqlalchemy.engine import make_url

from .extensions import db

EXTENSION = "cartoparty.jobs"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger(__name__)
# The tasks by name, registered by the modules that define them (see task()).
TASKS = {}


def task(name, retry=None, cron=None):
    """Register the decorated function as the job `name`; the worker runs it in an app context.
    `retry`, if given, makes procrastinate's retry strategy when the queue is built (so that
    procrastinate is imported only then). With `cron` ("17 * * * *"), every worker also
    defers it at those times (procrastinate defers each time once, however many workers run),
    with the time it was due as its `timestamp` argument."""

    def register(function):
        TASKS[name] = (function, retry, cron)
        return function

    return register


def conninfo(database_uri):
    """The libpq URI of the app's database: SQLAlchemy's `postgresql+psycopg://` is not one."""
    return make_url(database_uri).set(drivername="postgresql").render_as_string(hide_password=False)


def queue(app):
    """The app's procrastinate App with the registered tasks (the app factory has imported
    the modules that define them), built on first use and kept in `app.extensions`; no
    connection is opened here."""
    if EXTENSION not in app.extensions:
        import procrastinate  # heavy: imported when a job is deferred or a worker runs

        built = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(app.config["SQLALCHEMY_DATABASE_URI"]), min_size=1, max_size=4))
        for name, (function, retry, cron) in TASKS.items():
            registered = built.task(name=name, pass_context=True, retry=retry() if retry else False)(
                _in_app_context(function))
            if cron:
                built.periodic(cron=cron)(registered)
        # Two first requests at once build two: both keep the one stored first.
        app.extensions.setdefault(EXTENSION, built)
    return app.extensions[EXTENSION]


def _in_app_context(function):
    """The task as the worker calls it: `function(**kwargs)` inside the worker's Flask app."""

    @functools.wraps(function)
    def task(context, **kwargs):
        with context.additional_context["flask_app"].app_context():
            return function(**kwargs)

    return task


def defer(name, **kwargs):
    """Queue the job `name` with JSON `kwargs` in the session's transaction (it is there once
    the caller commits, and gone if it rolls back); return the job's id."""
    # procrastinate writes on the session's own psycopg connection: nothing half-written.
    connection = db.session.connection().connection.driver_connection
    return queue(current_app).configure_task(name, connection=connection).defer(**kwargs)


def run_worker(app, wait=True, signals=True, **options):
    """Run the queued jobs, then wait for more until SIGINT or SIGTERM, which stop the worker
    once the running job is finished; with `wait` False, stop when none is left. `options`
    go to procrastinate's worker."""
    stopper = _Stopper()
    previous = {signum: signal.signal(signum, stopper) for signum in STOP_SIGNALS} if signals else {}
    try:
        asyncio.run(_work(queue(app), stopper, wait=wait,
                          additional_context={"flask_app": app}, **options))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Stopper:
    """The handler of SIGINT and SIGTERM: the first cancels the worker's task (procrastinate
    then finishes the running job), the next ones are only noted. When Ctrl-C reaches a whole
    process group, the script that started the worker also sends it SIGTERM: that must not kill
    the job being finished (Python's default would)."""

    def __init__(self):
        self.loop = self.worker = None
        self.asked = False

    def __call__(self, signum, frame):
        name = signal.Signals(signum).name
        if self.asked:
            log.info("%s: already stopping, once the running job is finished", name)
            return
        self.asked = True
        log.info("%s: stopping once the running job is finished", name)
        if self.worker is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.worker.cancel)

    def watch(self, worker):
        """Cancel `worker` when asked to stop (now, if it was asked while starting)."""
        self.loop, self.worker = asyncio.get_running_loop(), worker
        if self.asked:
            worker.cancel()


async def _work(job_queue, stopper, **options):
    async with job_queue.open_async():
        worker = asyncio.create_task(job_queue.run_worker_async(install_signal_handlers=False,
                                                                **options))
        stopper.watch(worker)
        try:
            await worker
        except asyncio.CancelledError:
            log.info("worker stopped")
