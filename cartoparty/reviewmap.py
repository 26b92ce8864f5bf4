"""The review map's data: clusters or points in view, the list beside the map, live counts."""

from flask import Blueprint

bp = Blueprint("reviewmap", __name__, url_prefix="/api/organise")
