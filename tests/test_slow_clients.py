"""Slow clients cannot take the service: under gunicorn with the project's configuration, phones
that dribble their requests a byte a second hold a thread each, and the others are served."""

import json
import select
import socket
import threading
import time

import pytest
import requests
from conftest import a_submission, make_event
from gunicorn_server import gunicorn

from cartoparty.extensions import db
from cartoparty.models import Event

SLUG = "slow"
SOCKET_TIMEOUT = 10  # seconds; generous: an answer comes in milliseconds


@pytest.fixture(scope="module")
def server(database_url, app, tmp_path_factory):
    """One gunicorn worker (threads as configured) on the test database."""
    with gunicorn(database_url, tmp_path_factory.mktemp("gunicorn"), workers=1) as running:
        yield running


@pytest.fixture
def slow_event(app):
    event = make_event(SLUG)
    yield event
    db.session.execute(db.delete(Event).where(Event.slug == SLUG))
    db.session.commit()


def submission_request(token):
    """A walker's new point: (head, body) as bytes."""
    body = json.dumps(a_submission()).encode()
    head = (f"POST /api/events/{SLUG}/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head, body


class Dribbler:
    """A client sending its request one byte a second: `sent` bytes of `data` are out so far."""

    def __init__(self, port, data, at_once=b""):
        self.data = data
        self.sent = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
        self.sock.sendall(at_once)

    def send_next_byte(self):
        self.sock.sendall(self.data[self.sent:self.sent + 1])
        self.sent += 1

    def unanswered(self):
        """Whether the server has neither answered nor closed the connection yet."""
        readable, _, _ = select.select([self.sock], [], [], 0)  # an answer, or the end
        return not readable

    def finish(self):
        """Send the rest at once; the status code of the answer."""
        self.sock.sendall(self.data[self.sent:])
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        return int(answer.split(b" ", 2)[1])


def dribble(dribblers, stop):
    """Send one byte on each slow socket every second until `stop` is set."""
    while not stop.wait(1):
        for dribbler in dribblers:
            if dribbler.sent < len(dribbler.data) - 1:  # never complete: they stay slow
                dribbler.send_next_byte()


@pytest.mark.commits
def test_three_slow_clients_do_not_stop_a_fourth(server, slow_event):
    fast = requests.Session()
    joined = fast.post(f"{server.url}/api/events/{SLUG}/participants",
                       json={"pseudonym": "Rapide", "consent": True}, timeout=SOCKET_TIMEOUT)
    token = joined.json()["token"]
    slow_head, slow_body = submission_request(token)
    dribblers = [
        Dribbler(server.port, b"GET /api/presets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        Dribbler(server.port, b"".join(submission_request(token))),
        Dribbler(server.port, slow_body, at_once=slow_head),  # whole headers, a slow body
    ]
    stop = threading.Event()
    sender = threading.Thread(target=dribble, args=(dribblers, stop))
    sender.start()
    try:
        # A few bytes out on every slow socket: each holds a thread reading its request.
        deadline = time.monotonic() + SOCKET_TIMEOUT
        while min(dribbler.sent for dribbler in dribblers) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        answered = []
        for _ in range(10):
            answered.append(fast.get(f"{server.url}/api/presets", timeout=SOCKET_TIMEOUT).status_code)
            answered.append(fast.post(f"{server.url}/api/events/{SLUG}/submissions",
                                      json=a_submission(), headers={"Authorization": f"Bearer {token}"},
                                      timeout=SOCKET_TIMEOUT).status_code)
        still_waiting = [dribbler.unanswered() for dribbler in dribblers]
    finally:
        stop.set()
        sender.join()
    assert answered == [200, 201] * 10
    assert still_waiting == [True, True, True], server.log()
    # The slow ones were kept, not dropped: once their requests are complete, they are answered.
    assert [dribbler.finish() for dribbler in dribblers] == [200, 201, 201]


def test_an_overlong_request_line_is_refused_before_the_app(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(f"GET /api/presets?{'x' * 5000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status_line = sock.makefile("rb").readline()
    assert status_line.split(b" ")[1] == b"414"


def test_too_many_header_fields_are_refused(server):
    headers = "".join(f"X-Filler-{number}: {number}\r\n" for number in range(60))
    with socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(f"GET /api/presets HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
        status_line = sock.makefile("rb").readline()
    assert status_line.split(b" ")[1] == b"431"
