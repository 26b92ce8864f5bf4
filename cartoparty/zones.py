"""Event zones: a GeoJSON outline read into one valid WGS84 multipolygon."""

import json

from sqlalchemy import func

from .errors import Invalid
from .extensions import db

POLYGONAL = {"Polygon", "MultiPolygon"}


def _geometries(document):
    """The polygon geometries of a GeoJSON geometry, Feature or FeatureCollection."""
    if not isinstance(document, dict):
        raise Invalid("zone_not_object", field="zone")
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list) or not features:
            raise Invalid("zone_no_features", field="zone")
        return [geometry for feature in features for geometry in _geometries(feature)]
    if kind == "Feature":
        return _geometries(document.get("geometry"))
    if kind in POLYGONAL:
        return [document]
    raise Invalid("zone_not_polygon", field="zone", kind=str(kind)[:40])


def _check_coordinates(value):
    if isinstance(value, list) and value and not isinstance(value[0], list):
        if len(value) < 2 or not all(isinstance(n, int | float) and not isinstance(n, bool)
                                     for n in value):
            raise Invalid("zone_position", field="zone")
        lon, lat = value[0], value[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise Invalid("zone_position_range", field="zone", lon=lon, lat=lat)
        return
    if not isinstance(value, list) or not value:
        raise Invalid("zone_coordinates", field="zone")
    for item in value:
        _check_coordinates(item)


def read_zone(document):
    """A valid multipolygon (as EWKT) from GeoJSON text or a parsed GeoJSON object."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise Invalid("zone_json", field="zone", detail=str(error)) from None
    geometries = _geometries(document)
    for geometry in geometries:
        _check_coordinates(geometry.get("coordinates"))
    collection = json.dumps({"type": "GeometryCollection", "geometries": geometries})
    shape = func.ST_SetSRID(func.ST_GeomFromGeoJSON(collection), 4326)
    try:
        with db.session.begin_nested():
            valid, reason, area, ewkt = db.session.execute(db.select(
                func.ST_IsValid(shape), func.ST_IsValidReason(shape),
                func.ST_Area(func.ST_CollectionExtract(shape, 3)),
                func.ST_AsEWKT(func.ST_Multi(func.ST_Union(func.ST_CollectionExtract(shape, 3)))),
            )).one()
    except db.exc.DBAPIError as error:
        raise Invalid("zone_unreadable", field="zone", detail=str(error.orig)) from None
    if not valid:
        raise Invalid("zone_invalid", field="zone", detail=reason)
    if not area:
        raise Invalid("zone_no_area", field="zone")
    return ewkt
