"""Errors users can cause, and how they are answered: JSON under /api/, a page elsewhere."""

from flask import jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException


class CartopartyError(Exception):
    """An error whose message is for the user; `field` names the input at fault."""

    status = 400

    def __init__(self, message, field=None, status=None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status


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


ERROR_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8">
<title>{{ status }} · cartoparty</title><main><h1>{{ status }}</h1><p>{{ message }}</p></main></html>"""


def _render(status, message, field=None):
    if request.path.startswith("/api/"):
        body = {"error": message}
        if field:
            body["field"] = field
        return jsonify(body), status
    return render_template_string(ERROR_PAGE, status=status, message=message), status


def register(app):
    """Turn every error into a clear answer, never a stack trace."""

    @app.errorhandler(CartopartyError)
    def user_error(error):
        return _render(error.status, error.message, error.field)

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = error.description if error.code != 413 else "the request body is too large"
        return _render(error.code, message)

    @app.errorhandler(Exception)
    def unexpected(error):
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return _render(500, "something went wrong on our side; nothing was saved")
