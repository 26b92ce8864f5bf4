"""Reviewing submissions: approve, reject, correct, move, merge; every change audited."""

from flask import Blueprint

bp = Blueprint("review", __name__)
