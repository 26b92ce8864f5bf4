// The walker's map: tiles as the deployment sets them, the event zone, the walker's live GPS
// position with its accuracy circle (followed until the walker pans), and the points.
/* global L */
import { element } from "./form.js";

export function createMap(container, state) {
  const map = L.map(container, { zoomControl: false, tap: true });
  L.tileLayer(state.tiles.url, { attribution: state.tiles.attribution, maxZoom: 19 }).addTo(map);
  const zone = L.geoJSON(state.event.zone, {
    style: { color: "#0b5d1e", weight: 3, fillOpacity: 0.04, interactive: false },
  }).addTo(map);
  map.fitBounds(zone.getBounds(), { padding: [8, 8] });
  L.control.zoom({ position: "topright" }).addTo(map);
  return map;
}

// Follow the walker's GPS position; calls onFix({lat, lon, accuracy}) at each fix.
export function followPosition(map, onFix, onError) {
  let marker = null;
  let circle = null;
  let following = true;
  map.on("dragstart", () => { following = false; });
  const recentre = () => {
    following = true;
    if (marker) map.setView(marker.getLatLng(), Math.max(map.getZoom(), 17));
  };
  if (!("geolocation" in navigator)) {
    onError("unsupported");
    return recentre;
  }
  navigator.geolocation.watchPosition((position) => {
    const { latitude: lat, longitude: lon, accuracy } = position.coords;
    const where = [lat, lon];
    if (!marker) {
      circle = L.circle(where, { radius: accuracy, color: "#1565c0", weight: 1, fillOpacity: 0.12,
        interactive: false }).addTo(map);
      marker = L.circleMarker(where, { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0",
        fillOpacity: 1, interactive: false }).addTo(map);
      map.setView(where, Math.max(map.getZoom(), 17));
    } else {
      marker.setLatLng(where);
      circle.setLatLng(where).setRadius(accuracy);
      if (following) map.panTo(where);
    }
    onFix({ lat, lon, accuracy });
  }, (error) => onError(error.code === 1 ? "denied" : "unavailable"),
  { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
  return recentre;
}

// A point's marker: its preset's icon, its colour from its state.
export function pointMarker(point, preset) {
  const icon = L.divIcon({
    className: "",
    html: "",
    iconSize: [36, 36],
    iconAnchor: [18, 18],
  });
  const marker = L.marker([point.lat, point.lon], { icon, keyboard: true,
    title: preset ? preset.name.en : point.preset });
  marker.on("add", () => {
    const node = marker.getElement();
    node.className = `point point-${point.state} leaflet-marker-icon leaflet-interactive`;
    node.textContent = preset ? preset.icon : "•";
    node.dataset.clientId = point.client_id;
  });
  return marker;
}

// The popup of a point, built as DOM nodes so that tags and notes stay text.
export function pointPopup(point, preset, lang, t, actions) {
  const rows = Object.entries(point.tags || {})
    .filter(([key]) => !(preset && key in preset.tags))
    .map(([key, value]) => element("li", {}, element("b", { text: `${labelOf(preset, key, lang)} : ` }),
      element("span", { text: value })));
  const body = element("div", { class: "popup" },
    element("h3", { text: preset ? `${preset.icon} ${preset.name[lang]}` : point.preset }),
    element("p", { class: "state", text: t(`state_${point.state}`) }),
    element("ul", {}, ...rows));
  if (point.note) body.append(element("p", { class: "note", text: point.note }));
  if (point.error) body.append(element("p", { class: "error", text: point.error }));
  if (point.editable) {
    const edit = element("button", { type: "button", class: "small", text: t("edit") });
    edit.addEventListener("click", () => actions.edit(point));
    const remove = element("button", { type: "button", class: "small danger", text: t("delete") });
    remove.addEventListener("click", () => actions.remove(point));
    body.append(element("div", { class: "row" }, edit, remove));
  }
  return body;
}

function labelOf(preset, key, lang) {
  const field = preset && preset.fields.find((f) => f.key === key);
  return field ? field.label[lang] : key;
}
