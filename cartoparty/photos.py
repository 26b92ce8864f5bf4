"""Photos of submissions: only real JPEG, PNG or WebP, re-encoded so that nothing but the pixels
and the orientation survives (no GPS position, camera serial, owner name, comment, XMP, ICC
profile or text chunk), kept under their sha256."""

import hashlib
import io
import os
import re
import tempfile
import uuid
import warnings
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file
from sqlalchemy.dialects.postgresql import insert

from .auth import member_required, participant_required
from .errors import CartopartyError, Forbidden, Invalid, NotFound
from .extensions import db
from .models import Photo, Submission

bp = Blueprint("photos", __name__, url_prefix="/api/events")

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
ORIENTATION = 0x0112
MAX_PHOTOS = 5
SHA256 = re.compile(r"[0-9a-f]{64}")


def _open(data, max_pixels):
    """The decoded image, or a 4xx saying why it is not one we take."""
    # Pillow is imported where photos are read, not by every command (heavy).
    from PIL import Image, UnidentifiedImageError

    too_large = CartopartyError("photo_too_large", field="photo", status=413, max=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES))
            if image.width * image.height > max_pixels:
                raise too_large
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_large from None
    except UnidentifiedImageError:
        raise CartopartyError("photo_format", field="photo", status=415) from None
    except (OSError, SyntaxError, ValueError):
        raise Invalid("photo_damaged", field="photo") from None
    return image


def _in_srgb(image):
    """The image's colours converted from its embedded ICC profile to sRGB (a profile is free
    text too: it can carry anything, a place name included), or as they are when it has none
    or one that cannot be read."""
    from PIL import ImageCms

    profile = image.info.get("icc_profile")
    if not profile:
        return image
    mode = "RGBA" if "A" in image.mode else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        if image.mode not in ("RGB", "RGBA", "CMYK"):
            image = image.convert(mode)
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                         outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image


def clean_photo(data, max_pixels):
    """Re-encode an uploaded image with nothing but its pixels and its orientation: no EXIF
    but that, no comment, XMP, IPTC, ICC profile (converted to sRGB first) nor text chunks.

    Returns (bytes, media type, width, height)."""
    from PIL import Image

    image = _open(data, max_pixels)
    kind, lossless = image.format, image.info.get("lossless", False)
    orientation = image.getexif().get(ORIENTATION)
    image = _in_srgb(image)
    # Pillow writes back what `info` holds (a JPEG comment, XMP…) unless told otherwise.
    image.info = {}
    exif = Image.Exif()
    if orientation in range(2, 9):
        exif[ORIENTATION] = orientation
    options = {"exif": exif.tobytes()} if len(exif) else {}
    if kind == "JPEG":
        options.update(quality=90)
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    elif kind == "WEBP":
        options.update(quality=90, lossless=lossless)
    media_type = MEDIA_TYPES[kind]
    out = io.BytesIO()
    image.save(out, format=kind, **options)
    return out.getvalue(), media_type, image.width, image.height


def _store(directory, relative, data):
    """Write the file atomically; return True if it was not there before."""
    path = Path(directory) / relative
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)
    return True


def _submission(event, participant, client_id):
    try:
        client_uuid = uuid.UUID(client_id)
    except ValueError:
        raise NotFound("no_such_submission", field="client_id") from None
    submission = db.session.scalar(
        db.select(Submission).filter_by(event_id=event.id, client_id=client_uuid))
    if submission is None:
        raise NotFound("photo_before_point", field="client_id")
    if submission.participant_id != participant.id:
        raise Forbidden("not_your_point", field="client_id")
    return submission


@bp.post("/<slug>/submissions/<client_id>/photos")
@participant_required
def upload(event, participant, client_id):
    submission = _submission(event, participant, client_id)
    upload = request.files.get("photo")
    if upload is None:
        raise Invalid("photo_missing", field="photo")
    data, media_type, width, height = clean_photo(
        upload.read(), current_app.config["MAX_PHOTO_PIXELS"])
    sha256 = hashlib.sha256(data).hexdigest()
    existing = db.session.scalar(db.select(Photo).filter_by(
        submission_id=submission.id, sha256=sha256))
    if existing is not None:
        return jsonify(photo_json(event, submission, existing)), 200
    if len(submission.photos) >= MAX_PHOTOS:
        raise Invalid("too_many_photos", field="photo", max=MAX_PHOTOS)
    photo = Photo(submission_id=submission.id, sha256=sha256, media_type=media_type,
                  size=len(data), width=width, height=height)
    created = _store(current_app.config["PHOTO_DIR"], photo.filename, data)
    try:
        photo_id = db.session.scalar(
            insert(Photo).values(submission_id=submission.id, sha256=sha256,
                                 media_type=media_type, size=len(data), width=width,
                                 height=height)
            .on_conflict_do_nothing(constraint="photo_once_per_submission")
            .returning(Photo.id))
        db.session.commit()
    except Exception:
        db.session.rollback()
        if created:
            (Path(current_app.config["PHOTO_DIR"]) / photo.filename).unlink(missing_ok=True)
        raise
    photo = db.session.get(Photo, photo_id) if photo_id else db.session.scalar(
        db.select(Photo).filter_by(submission_id=submission.id, sha256=sha256))
    return jsonify(photo_json(event, submission, photo)), 201 if photo_id else 200


def photo_json(event, submission, photo):
    """A stored photo as the API shows it."""
    return {"sha256": photo.sha256, "media_type": photo.media_type, "size": photo.size,
            "width": photo.width, "height": photo.height,
            "url": f"/api/events/{event.slug}/photos/{photo.sha256}"}


@bp.get("/<slug>/photos/<sha256>")
@member_required
def show(event, sha256):
    photo = db.session.scalar(
        db.select(Photo).join(Submission)
        .where(Submission.event_id == event.id, Photo.sha256 == sha256)
        .limit(1)) if SHA256.fullmatch(sha256) else None
    if photo is None:
        raise NotFound("no_such_photo", field="sha256")
    response = send_file(Path(current_app.config["PHOTO_DIR"]) / photo.filename,
                         mimetype=photo.media_type, max_age=86400)
    # Only the event's members may see it: no shared cache may keep it.
    response.cache_control.public = False
    response.cache_control.private = True
    response.vary.add("Authorization")
    return response



def forget_unused_files(photos):
    """Remove the files of deleted photos that no other submission uses."""
    for photo in photos:
        still_used = db.session.scalar(db.select(db.func.count()).select_from(Photo)
                                       .filter_by(sha256=photo.sha256))
        if not still_used:
            (Path(current_app.config["PHOTO_DIR"]) / photo.filename).unlink(missing_ok=True)
