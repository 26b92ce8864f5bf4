// The map of the OSM changes page: the plan's creates (green) and modifies (orange), drawn
// from the same GeoJSON preview the organiser can download.
const root = document.getElementById("osm-changes");
const tiles = JSON.parse(root.dataset.tiles);
const map = L.map("changes-map");
L.tileLayer(tiles.url, { attribution: tiles.attribution, maxZoom: 20 }).addTo(map);
const colours = { create: "#1a7f37", modify: "#d4750b" };

const answer = await fetch(root.dataset.preview, { credentials: "same-origin" });
// A failed preview leaves the map empty, said as such, rather than stopping the script.
const preview = answer.ok ? await answer.json() : { type: "FeatureCollection", features: [] };
if (!answer.ok) root.dataset.mapError = String(answer.status);
const layer = L.geoJSON(preview, {
  pointToLayer: (feature, latlng) => L.circleMarker(latlng, {
    radius: 6, color: colours[feature.properties.action], weight: 2, fillOpacity: 0.6,
  }),
  onEachFeature: (feature, marker) => {
    const p = feature.properties;
    const lines = p.diff.map((row) => `${row.key}=${row.after}`);
    // Text only: tag values are what people typed.
    marker.bindTooltip(() => {
      const box = document.createElement("div");
      box.textContent = `${p.action} ${p.osm_type}${p.osm_id ? "/" + p.osm_id : ""} · ${lines.join(", ")}`;
      return box;
    });
  },
}).addTo(map);
if (layer.getLayers().length) map.fitBounds(layer.getBounds(), { maxZoom: 18, padding: [20, 20] });
else map.fitBounds(JSON.parse(root.dataset.bounds));
root.dataset.mapReady = String(layer.getLayers().length);
