"""Every /api/ request checked against openapi.json, the document the API publishes, so that
the document and the code cannot drift apart (openapi-core does the checking).

The path and query parameters are checked before the view runs, a JSON body where json_body()
reads it; but a request that breaks the document is not refused there: the view goes on, so
that what it refuses keeps its own, more telling error (`no_such_event` for a bad slug,
`pseudonym_too_long`…) in the order the document promises (event, credentials, then body).
Only if the view would accept the request is it refused, with 422 `invalid_field` naming the
field: before anything is committed, or in place of the answer of a view that commits nothing."""

from flask import current_app, g, has_request_context, request
from openapi_core import OpenAPI
from openapi_core.contrib.flask import FlaskOpenAPIRequest
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (
    InvalidParameter,
    InvalidRequestBody,
    MissingRequiredParameter,
)
from openapi_core.validation.request.validators import (
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from sqlalchemy import event
from sqlalchemy.orm import Session

from .errors import Invalid

EXTENSION = "cartoparty.apispec"


def build(document):
    """The validators of one document, built once per app (building one parses the whole spec)."""
    spec = OpenAPI.from_dict(document).spec
    return V31RequestParametersValidator(spec), V31RequestBodyValidator(spec)


def _field(error):
    """The name of the input a jsonschema error is about: `lat`, `tags.height`, `items[3].id`."""
    path = list(error.absolute_path)
    if error.validator == "required":
        path.append(next(name for name in error.validator_value if name not in error.instance))
    elif error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        path.append(next(name for name in error.instance if name not in known))
    field = ""
    for part in path:
        field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
    return field or None


def _refusal(errors):
    """The error for the first of openapi-core's errors that is about a value (not about a body
    that is no JSON, which json_body() answers), or None."""
    for error in errors:
        # (A missing header is the credentials' business: X-CSRFToken is needed with a cookie only.)
        if isinstance(error, InvalidParameter) or (
                isinstance(error, MissingRequiredParameter) and error.location != "header"):
            field = error.name
        elif isinstance(error, InvalidRequestBody) and getattr(error.__cause__, "schema_errors", None):
            field = _field(min(error.__cause__.schema_errors, key=lambda e: len(e.absolute_path)))
        else:
            continue
        name = (field or "body")[:100]
        return Invalid("invalid_field", field=field and field[:100], name=name)
    return None


def check_request():
    """Before each /api/ request: note what the document refuses in its parameters."""
    g.pop("spec_refusal", None)
    if request.path.startswith("/api/") and request.url_rule is not None:
        _note(0)


def check_body():
    """Note what the document refuses in the request's JSON body (json_body() calls it once it
    has read a JSON object: not before, since a view may commit before it reads its body)."""
    if request.url_rule is not None:
        _note(1)


def _note(which):
    try:
        errors = current_app.extensions[EXTENSION][which].iter_errors(FlaskOpenAPIRequest(request))
        g.spec_refusal = g.get("spec_refusal") or _refusal(errors)
    except PathError:  # a route the document does not describe: test_api's drift test tells
        pass


def refuse_before_commit(session):
    """Refuse, before it is committed, a request the document does not allow."""
    refusal = has_request_context() and g.pop("spec_refusal", None)
    if refusal:
        raise refusal


def refuse_answer(response):
    """Refuse a request the document does not allow that the view answered without committing."""
    refusal = g.pop("spec_refusal", None)
    if refusal and response.status_code < 400:
        return current_app.make_response(current_app.handle_user_exception(refusal))
    return response


def register(app, document):
    """Check the app's /api/ requests against `document`."""
    app.extensions[EXTENSION] = build(document)
    if not event.contains(Session, "before_commit", refuse_before_commit):
        event.listen(Session, "before_commit", refuse_before_commit)
