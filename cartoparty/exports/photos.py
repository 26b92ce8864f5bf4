"""The approved points' photos as a zip, with an index of which point each shows."""

import csv
import io
import zipfile
from pathlib import Path

from flask import current_app

from ..extensions import db
from ..models import Photo, Status, Submission
from .common import licence_text, safe_cell


def write_photos(event, path, lang):
    """A zip of the approved points' photos (photos/<submission id>_<sha256>.<ext>), an index.csv
    and a README.txt; files are copied from disk one by one, never all held in memory."""
    directory = Path(current_app.config["PHOTO_DIR"])
    rows = db.session.execute(
        db.select(Photo, Submission.client_id, Submission.preset).join(Submission)
        .where(Submission.event_id == event.id, Submission.status == Status.approved)
        .order_by(Submission.id, Photo.id)).all()
    index = io.StringIO()
    writer = csv.writer(index)
    writer.writerow(["file", "submission_id", "client_id", "preset", "sha256", "media_type",
                     "width", "height"])
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", licence_text(event, "photos") + (
            "\nphotos/<submission id>_<sha256>.<ext>: the photos; index.csv says which point each "
            "shows (an empty file name: the photo file was missing on the server).\n"))
        for photo, client_id, preset in rows:
            source = directory / photo.filename
            name = f"photos/{photo.submission_id}_{photo.sha256}.{photo.filename.rsplit('.', 1)[1]}"
            if source.is_file():
                # Photos are compressed already: stored as they are.
                archive.write(source, name, compress_type=zipfile.ZIP_STORED)
                count += 1
            else:
                name = ""
            writer.writerow(safe_cell(value) for value in [
                name, photo.submission_id, client_id, preset, photo.sha256, photo.media_type,
                photo.width, photo.height])
        archive.writestr("index.csv", index.getvalue())
    return count
