"""Organiser pages: their events, preparing one (zone, presets, teams), join links and QR codes."""

from flask import Blueprint

bp = Blueprint("organise", __name__)
