"""The approved points as a self-contained folium map to share: one HTML file, Leaflet inlined."""

import html
import json
from pathlib import Path

# folium and branca are heavy: each is imported in the functions that use it, so that the app
# and the other commands start without them.
import xstatic.pkg.leaflet as leaflet
from flask import current_app
from jinja2 import Template
from markupsafe import escape
from sqlalchemy import text

from ..extensions import db
from ..presets import all_presets
from .common import approved_points, licence, licence_text

POPUP_STYLE = """<style>.leaflet-popup-content th { text-align: left; white-space: nowrap; }
.leaflet-popup-content th, .leaflet-popup-content td { vertical-align: top; padding: 1px 4px 1px 0; }
.leaflet-popup-content td, .leaflet-popup-content strong { overflow-wrap: anywhere; }
.leaflet-popup-content strong { display: block; }</style>"""


# The points and the zone drawn by Leaflet; popups are built with textContent, so that nothing
# a walker typed is ever read as HTML, and the data is JSON escaped for <script>.
POINTS_SCRIPT = Template("""{% macro script(this, kwargs) %}
(function () {
  var map = {{ this._parent.get_name() }};
  var data = {{ this.data|tojson }};
  var zone = L.geoJSON(data.zone, {interactive: false,
                                   style: {color: "#0b5d1e", weight: 2, fill: false}}).addTo(map);
  var points = L.featureGroup().addTo(map);
  data.points.forEach(function (point) {
    var box = document.createElement("div");
    var title = document.createElement("strong");
    title.textContent = point.title;
    box.appendChild(title);
    var table = document.createElement("table");
    point.rows.forEach(function (pair) {
      var row = table.insertRow();
      var key = document.createElement("th");
      key.textContent = pair[0];
      row.appendChild(key);
      row.insertCell().textContent = pair[1];
    });
    box.appendChild(table);
    L.circleMarker([point.lat, point.lon], {radius: 7, color: "#0b5d1e", fillOpacity: 0.8})
      .bindPopup(box, {maxWidth: 320}).addTo(points);
  });
})();
{% endmacro %}""")


def _points_layer(data):
    """The map's element drawing `data` ({"zone": GeoJSON, "points": popups}) with POINTS_SCRIPT."""
    from branca.element import MacroElement

    # What a MacroElement subclass would set, without importing branca with this module.
    layer = MacroElement()
    layer._template = POINTS_SCRIPT
    layer.data = data
    return layer


def _popup(point, presets, lang):
    preset = presets.get(point["preset"])
    name = f"{preset['icon']} {preset['name'][lang]}" if preset else point["preset"]
    title = f"{name} — {point['tags']['name']}" if point["tags"].get("name") else name
    rows = [[key, value] for key, value in sorted(point["tags"].items())]
    rows.append(["observed_at", point["observed_at"].isoformat(timespec="minutes")])
    if point["note"]:
        rows.append(["note", point["note"]])
    return {"lat": point["lat"], "lon": point["lon"], "title": title, "rows": rows}


def map_bounds(points, zone):
    """[[south, west], [north, east]] in WGS84 degrees: around the points, or the zone's
    (`zone` a GeoJSON geometry) when there is no point."""
    if points:
        lats, lons = [p["lat"] for p in points], [p["lon"] for p in points]
    else:
        positions = [position for polygon in zone["coordinates"] for ring in polygon
                     for position in ring]
        lats, lons = [p[1] for p in positions], [p[0] for p in positions]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


def write_html(event, path, lang):
    """Write map_html() to `path`; the number of points."""
    page, count = map_html(event, lang)
    Path(path).write_text(page, encoding="utf-8")
    return count


def map_html(event, lang):
    """A self-contained folium map (Leaflet inlined; only the tiles come from the network),
    opening on the bounds of its points: (the page's HTML, the number of points)."""
    import folium
    from branca.element import Element

    zone = json.loads(db.session.scalar(text("SELECT ST_AsGeoJSON(zone, 7) FROM event WHERE id = :id"),
                                        {"id": event.id}))
    presets = all_presets()
    points = [_popup(point, presets, lang) for point in approved_points(event)]
    info = licence(event, "html")
    source = Path(leaflet.BASE_DIR)
    (south, west), (north, east) = bounds = map_bounds(points, zone)
    figure = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=16, tiles=None,
                        control_scale=True)
    figure.fit_bounds(bounds, max_zoom=18)
    figure.default_js, figure.default_css = [], []
    root = figure.get_root()
    # Nothing in a comment is markup; only "--" could end it early.
    comment = html.escape(licence_text(event, "html"), quote=False).replace("--", "- -")
    root.header.add_child(Element(f"<!--\n{comment}-->"))
    root.header.add_child(Element(f"<title>{escape(event.name)}</title>"))
    root.header.add_child(Element(f"<style>{(source / 'leaflet.css').read_text()}</style>"))
    root.header.add_child(Element(f"<script>{(source / 'leaflet.js').read_text()}</script>"))
    root.header.add_child(Element(POPUP_STYLE))
    licence_link = (f'<a href="{escape(info["licence_url"])}">{escape(info["licence"])}</a>'
                    if info["licence_url"] else escape(info["licence"]))
    folium.TileLayer(tiles=current_app.config["TILE_URL"], max_zoom=19, attr=(
        f"{current_app.config['TILE_ATTRIBUTION']} | {escape(info['attribution'])}, {licence_link}"
    )).add_to(figure)
    _points_layer({"zone": zone, "points": points}).add_to(figure)
    return root.render(), len(points)
