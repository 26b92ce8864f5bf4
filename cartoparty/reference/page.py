"""The organiser's page of an event's reference dataset: how many rows it holds and how many
were checked, each checked row with the walkers' verdicts and the organiser's settlement, a
form to upload a town's file (kind, CRS, columns, preset), and the report of the import just
made."""

from flask import Blueprint, redirect, request, url_for

from ..accounts import event_organiser_required
from ..errors import CartopartyError, Invalid
from ..extensions import db
from ..i18n import language
from ..organise import render
from . import checks
from .mapping import row_tags, title
from .read import KINDS, WGS84
from .store import count_rows, import_reference

bp = Blueprint("reference", __name__, url_prefix="/organise")
SHOWN = 50  # refused rows listed on the page; the command line lists as many as asked
CHECKED_SHOWN = 500  # checked rows listed on the page, in file order


def _checked_rows(event, dataset):
    """The rows walkers checked or the organiser settled, with their verdicts and what each
    verdict changes of the row's tags."""
    verdicts = checks.verdicts_by_row(event)
    shown = []
    for row in checks.outcomes(event):
        if row["id"] not in verdicts and row["settled"] is None:
            continue
        before = row_tags(dataset.preset, row["fields"])
        listed = [{**verdict, "changes": [(key, before.get(key, ""), verdict["tags"].get(key, ""))
                                          for key in sorted(set(before) | set(verdict["tags"]))
                                          if verdict["verdict"] != "missing"
                                          and before.get(key) != verdict["tags"].get(key)]}
                  for verdict in verdicts.get(row["id"], [])]
        shown.append({**row, "title": title(row["fields"], row["source_id"]), "verdicts": listed})
    return shown


def _page(event, status=200, report=None, error=None, form=None, settle_error=None):
    dataset = checks.dataset(event)
    checked = _checked_rows(event, dataset) if dataset else []
    return render("reference/page.html", status, event=event, kinds=KINDS, report=report,
                  error=error, form=form or {"crs": WGS84}, count=count_rows(event), shown=SHOWN,
                  dataset=dataset, summary=checks.summary(event), checked=checked[:CHECKED_SHOWN],
                  checked_count=len(checked), checked_shown=CHECKED_SHOWN,
                  proposals=sum(row["settled"] is None and row["outcome"] != "not_checked"
                                for row in checked),
                  outcomes=checks.OUTCOMES_ORDER, settle_error=settle_error)


def _number(name):
    value = request.form.get(name, "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0


@bp.post("/<slug>/reference/settle")
@event_organiser_required
def settle(event, organiser):
    """The organiser's word on one row: an outcome, and the verdict it takes its values from."""
    try:
        checks.settle(event, _number("row"), request.form.get("settled", ""), _number("verdict"),
                      organiser.email)
    except CartopartyError as error:
        db.session.rollback()
        return _page(event, error.status, settle_error=error.text(language()))
    db.session.commit()
    return redirect(url_for("reference.page", slug=event.slug, _anchor="checks"), 303)


@bp.post("/<slug>/reference/settle-proposed")
@event_organiser_required
def settle_proposed(event, organiser):
    """Every row not settled yet takes what its approved verdicts propose."""
    checks.settle_proposed(event, organiser.email)
    db.session.commit()
    return redirect(url_for("reference.page", slug=event.slug, _anchor="checks"), 303)


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
                                  _column("lat"), _column("lon"), _column("id"), _column("preset"))
    except CartopartyError as error:
        db.session.rollback()
        return _page(event, 422, error=error.text(language()), form=request.form)
    db.session.commit()
    return _page(event, report=report, form=request.form)
