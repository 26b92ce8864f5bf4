// The walker's map: tiles as the deployment sets them, the event zone, the walker's live GPS
// position with its accuracy circle (followed until the walker pans), the points, and the
// reference dataset's rows to check (beneath the points: a walker's verdict sits on its row).
/* global L */
import { element } from "./form.js";
import { errorText } from "./i18n.js";

// The header above the map and the "add" button below it: popups open between them.
const POPUP_PADDING = { autoPanPaddingTopLeft: [8, 96], autoPanPaddingBottomRight: [8, 96] };

export function createMap(container, state) {
  const map = L.map(container, { zoomControl: false, tap: true });
  L.tileLayer(state.tiles.url, { attribution: state.tiles.attribution, maxZoom: 19 }).addTo(map);
  const zone = L.geoJSON(state.event.zone, {
    style: { color: "#0b5d1e", weight: 3, fillOpacity: 0.04, interactive: false },
  }).addTo(map);
  map.fitBounds(zone.getBounds(), { padding: [8, 8] });
  L.control.zoom({ position: "topright" }).addTo(map);
  map.createPane("reference");  // walker.css puts it under the markers' pane
  return map;
}

// Whether the segment a-b of [lon, lat] positions passes through (lon, lat), within a hair:
// the server's ST_Covers counts the boundary as inside, and rounding must not refuse it.
function onSegment([ax, ay], [bx, by], lon, lat) {
  const cross = (bx - ax) * (lat - ay) - (by - ay) * (lon - ax);
  const scale = Math.max(Math.abs(bx - ax), Math.abs(by - ay), 1e-12);
  return Math.abs(cross) <= 1e-9 * scale
    && Math.min(ax, bx) - 1e-12 <= lon && lon <= Math.max(ax, bx) + 1e-12
    && Math.min(ay, by) - 1e-12 <= lat && lat <= Math.max(ay, by) + 1e-12;
}

// "inside", "boundary" or "outside" of one closed ring (ray casting towards east).
function ringPlace(ring, lon, lat) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    if (onSegment(ring[j], ring[i], lon, lat)) return "boundary";
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > lat) !== (yj > lat) && lon < xj + ((lat - yj) * (xi - xj)) / (yi - yj)) inside = !inside;
  }
  return inside ? "inside" : "outside";
}

function polygonCovers(rings, lon, lat) {
  const outer = ringPlace(rings[0], lon, lat);
  if (outer !== "inside") return outer === "boundary";
  return rings.slice(1).every((hole) => ringPlace(hole, lon, lat) !== "inside");
}

// Whether a GeoJSON Polygon or MultiPolygon covers the position `lat`, `lon` (WGS84 degrees),
// its boundary included, as PostGIS's ST_Covers says on the server.
export function covers(geometry, lat, lon) {
  if (!geometry) return false;
  if (geometry.type === "Polygon") return polygonCovers(geometry.coordinates, lon, lat);
  if (geometry.type === "MultiPolygon") {
    return geometry.coordinates.some((rings) => polygonCovers(rings, lon, lat));
  }
  return false;
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

// A preset's drawn icon (static/icons/<id>.svg), decorative: its name is always beside it.
// Drawn rather than an emoji, which phones without an emoji font show as empty boxes.
export function presetIcon(preset) {
  return element("img", { class: "icon", src: `/static/icons/${encodeURIComponent(preset.id)}.svg`,
    alt: "", width: 24, height: 24 });
}

// A point's marker: its preset's icon, its colour from its state, its name in `lang`.
export function pointMarker(point, preset, lang) {
  const icon = L.divIcon({ className: "", html: "", iconSize: [36, 36], iconAnchor: [18, 18] });
  const marker = L.marker([point.lat, point.lon], { icon, keyboard: true,
    title: preset ? preset.name[lang] : point.preset });
  marker.on("add", () => {
    const node = marker.getElement();
    node.className = `point point-${point.state} leaflet-marker-icon leaflet-interactive`;
    node.replaceChildren(preset ? presetIcon(preset) : element("span", { class: "dot" }));
    node.dataset.clientId = point.client_id;
  });
  return marker;
}

// Attach the point's popup; its body scrolls so that its buttons stay within reach.
export function bindPointPopup(marker, build) {
  marker.bindPopup(build, { maxWidth: 300, ...POPUP_PADDING });
}

// A server error about one of the preset's questions names the question as the walker reads it.
function withLabel(error, preset, lang) {
  if (!error || typeof error !== "object" || !error.params || !error.params.key) return error;
  return { ...error, params: { ...error.params, key: labelOf(preset, error.params.key, lang) } };
}

// The popup of a point, built as DOM nodes so that tags and notes stay text.
export function pointPopup(point, preset, lang, t, actions) {
  const rows = Object.entries(point.tags || {})
    .filter(([key]) => !(preset && key in preset.tags))
    .map(([key, value]) => element("li", {}, element("b", { text: `${labelOf(preset, key, lang)} : ` }),
      element("span", { text: value })));
  const name = element("span", { text: preset ? preset.name[lang] : point.preset });
  const title = element("h3", {}, ...(preset ? [presetIcon(preset), name] : [name]));
  const body = element("div", { class: "popup-body" },
    element("p", { class: "state", text: t(`state_${point.state}`) }), element("ul", {}, ...rows));
  if (point.verdict) {
    body.prepend(element("p", { class: "verdict",
      text: t("ref_verdict", { verdict: t(`reference_verdict_${point.verdict}`) }) }));
  }
  if (point.state === "rejected" && point.mine && point.review_reason) {
    const reason = t("rejected_reason", { reason: point.review_reason });
    body.append(element("p", { class: "reason", text: reason }));
  }
  if (point.note) body.append(element("p", { class: "note", text: point.note }));
  if (point.error) {
    body.append(element("p", { class: "error", text: errorText(t, withLabel(point.error, preset, lang),
      t("state_refused")) }));
  }
  const popup = element("div", { class: "popup" }, title, body);
  if (point.editable) popup.append(popupActions(point, t, actions));
  return popup;
}

function popupActions(point, t, actions) {
  const edit = element("button", { type: "button", class: "small", text: t("edit") });
  edit.addEventListener("click", () => actions.edit(point));
  const remove = element("button", { type: "button", class: "small danger", text: t("delete") });
  remove.addEventListener("click", () => actions.remove(point));
  return element("div", { class: "row actions-row" }, edit, remove);
}

function labelOf(preset, key, lang) {
  const field = preset && preset.fields.find((f) => f.key === key);
  return field ? field.label[lang] : key;
}

// A reference row's marker: a diamond, "?" to check, "✓" once checked (by anyone, or by this
// walker's own verdict); its title names it for screen readers ("À vérifier : Mairie").
export function referenceMarker(row, checked, t) {
  const state = checked ? "checked" : "to-check";
  const icon = L.divIcon({ className: `reference reference-${state}`, iconSize: [44, 44], iconAnchor: [22, 22],
    html: `<span class="diamond" aria-hidden="true"><span>${checked ? "✓" : "?"}</span></span>` });
  const marker = L.marker([row.lat, row.lon], { icon, keyboard: true, pane: "reference",
    title: t(checked ? "ref_marker_checked" : "ref_marker_to_check", { title: row.title }) });
  marker.on("add", () => { marker.getElement().dataset.referenceId = row.id; });
  return marker;
}

// The popup of a reference row: its title, whether it was checked, and what the walker found
// there (actions.confirmed, .different, .moved, .missing), unless they gave their verdict.
export function referencePopup(row, verdict, t, actions) {
  const state = verdict ? t("ref_state_mine", { verdict: t(`reference_verdict_${verdict}`) })
    : t(row.checked ? "ref_state_checked" : "ref_state_to_check");
  const popup = element("div", { class: "popup reference-popup" }, element("h3", { text: row.title }),
    element("p", { class: "state", text: state }));
  if (verdict) return popup;
  const choices = ["confirmed", "different", "moved", "missing"].map((choice) => {
    const button = element("button", { type: "button", class: `small choice-${choice}`,
      text: t(`ref_choice_${choice}`) });
    button.addEventListener("click", () => actions[choice](row));
    return button;
  });
  popup.append(element("div", { class: "choices", role: "group", "aria-label": t("ref_choices") },
    ...choices));
  return popup;
}
