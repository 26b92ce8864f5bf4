"""The app under a real gunicorn, started with the project's gunicorn.conf.py on a free loopback
port, for the tests that need real sockets and processes (slow clients, faults)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 90  # seconds: each worker imports the whole app, on a busy 2-core machine


def free_port():
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running gunicorn: its address, its master process and its workers."""

    def __init__(self, process, port, log_path):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def workers(self):
        """The pids of the master's children: its workers."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return sorted(children)

    def log(self):
        """What gunicorn wrote so far (its own log and the access log), for failure messages."""
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_until_answering(server):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/api/presets", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer within {START_TIMEOUT} s:\n{server.log()}")


@contextmanager
def gunicorn(database_url, directory, workers=1):
    """Serve `cartoparty:create_app()` on `database_url` until the block ends; logs and photos
    go to `directory`."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "WEB_WORKERS": str(workers),
           "PHOTO_DIR": str(Path(directory) / "photos")}
    log_path = Path(directory) / "gunicorn.log"
    # No control socket: several gunicorns (tests, `make run`) would share ~/.gunicorn's.
    command = [str(GUNICORN), "--config", str(PROJECT_DIR / "gunicorn.conf.py"),
               "--bind", f"127.0.0.1:{port}", "--no-control-socket", "cartoparty:create_app()"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    server = Server(process, port, log_path)
    try:
        _wait_until_answering(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
