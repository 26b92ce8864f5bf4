// The restitution page's map: the event's zone and its approved points, with a popup each.
// Everything walkers typed is set as text, never as HTML.
/* global L */
import { element } from "../walker/form.js";

const MANY = 800;

const container = document.getElementById("map");
const state = JSON.parse(container.dataset.state);

function popup(point) {
  const preset = state.presets[point.preset] || { icon: "•", name: point.preset, fields: {} };
  const rows = Object.entries(preset.fields).filter(([key]) => point.tags[key] !== undefined)
    .map(([key, label]) => element("li", {}, element("b", { text: `${label} : ` }),
      element("span", { text: point.tags[key] })));
  return element("div", { class: "point-popup" },
    element("h3", { text: `${preset.icon} ${preset.name}` }), element("ul", {}, ...rows));
}

// Few points get their preset's icon; many get small dots, drawn on one canvas.
function marker(point, many) {
  if (many) {
    return L.circleMarker([point.lat, point.lon], { radius: 5, color: "#fff", weight: 1,
      fillColor: "#0b5d1e", fillOpacity: 0.9 });
  }
  const preset = state.presets[point.preset];
  const icon = L.divIcon({ className: "point-icon", html: "", iconSize: [28, 28], iconAnchor: [14, 14] });
  const made = L.marker([point.lat, point.lon], { icon, title: preset ? preset.name : point.preset });
  made.on("add", () => { made.getElement().textContent = preset ? preset.icon : "•"; });
  return made;
}

const map = L.map(container, { preferCanvas: state.points.length > MANY, scrollWheelZoom: false });
L.tileLayer(state.tiles.url, { attribution: state.tiles.attribution, maxZoom: 19 }).addTo(map);
const zone = L.geoJSON(state.zone, { style: { color: "#0b5d1e", weight: 2, fillOpacity: 0.04,
  interactive: false } }).addTo(map);
const points = L.featureGroup(state.points.map((point) =>
  marker(point, state.points.length > MANY).bindPopup(() => popup(point)))).addTo(map);

function fit() {
  map.invalidateSize();
  const bounds = points.getLayers().length ? points.getBounds().extend(zone.getBounds()) : zone.getBounds();
  map.fitBounds(bounds, { padding: [12, 12] });
}
fit();
// The map is laid out again for paper (a fixed height, the page's width) before printing.
window.addEventListener("beforeprint", fit);
window.addEventListener("afterprint", fit);
const print = document.getElementById("print");
if (print) print.addEventListener("click", () => window.print());
