"""The JSON API fuzzed from its own OpenAPI description (schemathesis): no 5xx, and every answer
documented (status, content type, body schema), for a walker and for an organiser, operation by
operation and along the document's links. Calls go through WSGI in this process, so what the
fuzzer writes stays in the test's rolled-back transaction; the seed is fixed."""

import base64
import copy

import pytest
import schemathesis
from conftest import a_submission, join, make_event, make_organiser
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.security import generate_password_hash

from cartoparty.api import OPENAPI
from cartoparty.extensions import db

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MAX_EXAMPLES = 25
PASSWORD = "correct horse"

# (A copy: schemathesis changes the dict it is given, and the app serves this one.)
schema = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI), config=schemathesis.Config.from_dict({
    "seed": 14,
    # Every path is fuzzed in the event that exists; other slugs only ever meet a 404.
    "parameters": {"slug": "party"},
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
}))
# Each operation's examples share one fixture (an event, its walker, its organiser), all rolled back.
fuzz_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def party(client):
    """The event `party` with a point of its walker; (walker's headers, organiser's headers)."""
    event = make_event()
    walker = join(client, event.slug)
    recorded = client.post("/api/events/party/submissions", json=a_submission(), headers=walker)
    assert recorded.status_code == 201
    organiser = make_organiser(events=[event], password=PASSWORD)
    # The same check of HTTP Basic with a hash quick to verify: the fuzzer signs in at every call.
    organiser.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
    db.session.commit()
    basic = base64.b64encode(f"{organiser.email}:{PASSWORD}".encode()).decode()
    return walker, {"Authorization": f"Basic {basic}"}


@schema.parametrize()
@fuzz_settings
def test_walker_api_answers_as_documented(case, app, party):
    case.call_and_validate(app=app, headers=party[0], checks=CHECKS)


@schema.parametrize()
@fuzz_settings
def test_organiser_api_answers_as_documented(case, app, party):
    case.call_and_validate(app=app, headers=party[1], checks=CHECKS)


def test_sequences_along_the_links_answer_as_documented(app, party):
    """A walker records a point, then changes it, adds a photo or deletes it; the organiser
    reviews it, decides on it or corrects it (the links of createSubmission's answer)."""
    walker, organiser = party

    class Sequences(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"app": app, "headers": organiser if case.path.startswith("/api/organise/") else walker}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Sequences.run(settings=settings(max_examples=15, stateful_step_count=6, deadline=None,
                                    derandomize=True, suppress_health_check=list(HealthCheck)))
