"""Errors users can cause, and how they are answered: JSON under /api/, a page elsewhere.

An error is raised with a stable code and its parameters; its text comes from the message
`error.<code>` of the catalogs (translations/), in English for the API's `message` and the
command line, in the reader's language on a page or through the code in the pages' scripts:

    {"error": {"code": "outside_zone", "field": "lat", "message": "…", "params": {}}}
"""

from flask import current_app, jsonify, render_template_string, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from .i18n import language, translate


class CartopartyError(Exception):
    """An error for the user: `code` names it (the catalogs hold its texts as
    `error.<code>`), `field` the input at fault, `params` fill the texts' placeholders."""

    status = 400

    def __init__(self, code, field=None, status=None, **params):
        self.code = code
        self.field = field
        self.params = params
        self.message = translate("en", f"error.{code}", **params)
        super().__init__(self.message)
        if status is not None:
            self.status = status

    def text(self, lang):
        """The error's text in a language."""
        return translate(lang, f"error.{self.code}", **self.params)

    def detail(self):
        """Its code and parameters as JSON, for a page to say it in its reader's language."""
        return {"code": self.code, "params": {name: value if isinstance(value, int | float | bool | None)
                                              else str(value) for name, value in self.params.items()}}


class NotFound(CartopartyError):
    status = 404


class Unauthorised(CartopartyError):
    status = 401


class Forbidden(CartopartyError):
    status = 403


class Conflict(CartopartyError):
    status = 409


class Invalid(CartopartyError):
    status = 422


# What the framework itself refuses (no route, a wrong method, a body too large…), by status.
HTTP_CODES = {400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
              429: "too_many_requests"}

ERROR_PAGE = """<!doctype html><html lang="{{ lang }}"><meta charset="utf-8">
<title>{{ status }} · cartoparty</title><main><h1>{{ status }}</h1><p>{{ message }}</p></main></html>"""


def _render(error, headers=None):
    if request.path.startswith("/api/"):
        body = {"code": error.code, "field": error.field, "message": error.message,
                "params": error.detail()["params"]}
        return jsonify({"error": body}), error.status, headers or {}
    lang = language()
    return (render_template_string(ERROR_PAGE, status=error.status, message=error.text(lang),
                                   lang=lang), error.status, headers or {})


def register(app):
    """Turn every error into a clear answer, never a stack trace."""

    @app.errorhandler(CartopartyError)
    def user_error(error):
        return _render(error, getattr(error, "headers", None))  # Retry-After of a 429

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _render(CartopartyError("csrf_failed", status=400))

    @app.errorhandler(HTTPException)
    def http_error(error):
        code = HTTP_CODES.get(error.code, "bad_request")
        headers = {}
        if error.code == 405 and getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        return _render(CartopartyError(code, status=error.code), headers)

    @app.errorhandler(DBAPIError)
    def database_error(error):
        # The first request of each worker after PostgreSQL restarted meets a dead pooled
        # connection: the pool drops it and the next request gets a new one. Nothing was
        # written, so the client is told to try again in a moment, not that we failed.
        if error.connection_invalidated or isinstance(error, OperationalError):
            current_app.logger.warning("database unavailable on %s %s: %s", request.method,
                                       request.path, type(error.orig).__name__)
            return _render(CartopartyError("database_unavailable", status=503), {"Retry-After": "2"})
        return unexpected(error)

    @app.errorhandler(Exception)
    def unexpected(error):
        current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return _render(CartopartyError("internal", status=500))
