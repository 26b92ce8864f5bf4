"""The organiser's page of an event's reference dataset: how many rows it holds, a form to
upload a town's file (kind, CRS, columns), and the report of the import just made."""

from flask import Blueprint, request

from ..accounts import event_organiser_required
from ..errors import CartopartyError, Invalid
from ..extensions import db
from ..i18n import language
from ..organise import render
from .read import KINDS, WGS84
from .store import count_rows, import_reference

bp = Blueprint("reference", __name__, url_prefix="/organise")
SHOWN = 50  # refused rows listed on the page; the command line lists as many as asked


def _page(event, status=200, report=None, error=None, form=None):
    return render("reference/page.html", status, event=event, kinds=KINDS, report=report,
                  error=error, form=form or {"crs": WGS84}, count=count_rows(event), shown=SHOWN)


def _column(name):
    """An optional column name from the form; None when left empty."""
    return request.form.get(name, "").strip()[:200] or None


@bp.route("/<slug>/reference", methods=["GET", "POST"])
@event_organiser_required
def page(event, organiser):
    if request.method == "GET":
        return _page(event)
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise Invalid("reference_no_file", field="file")
        report = import_reference(event, upload.read(), upload.filename[:200],
                                  request.form.get("kind", ""), request.form.get("crs", ""),
                                  _column("lat"), _column("lon"), _column("id"))
    except CartopartyError as error:
        db.session.rollback()
        return _page(event, 422, error=error.text(language()), form=request.form)
    db.session.commit()
    return _page(event, report=report, form=request.form)
