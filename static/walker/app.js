// The walker app: join an event, see the map, record points that reach the server once.
import { buildForm, element, shrinkPhoto } from "./form.js";
import { createMap, followPosition, pointMarker, pointPopup } from "./map.js";
import { Outbox } from "./outbox.js";

const root = document.getElementById("app");
const state = JSON.parse(root.dataset.state);
const { event, lang } = state;
const slug = event.slug;
const t = (key) => state.messages[key] ?? key;
const presets = Object.fromEntries(event.presets.map((preset) => [preset.id, preset]));
const tokenKey = `cartoparty:${slug}:token`;
const pointsKey = `cartoparty:${slug}:points`;
const POOR_ACCURACY_M = 20;

const $ = (selector) => document.querySelector(selector);
const myTeam = () => JSON.parse(localStorage.getItem(`${tokenKey}:team`) || "null");

// A team walks one theme: its presets only (all of them if the theme names none of the event's).
function offeredPresets() {
  const team = myTeam();
  const theme = team ? event.presets.filter((preset) => team.presets.includes(preset.id)) : [];
  return theme.length ? theme : event.presets;
}
let token = localStorage.getItem(tokenKey);

function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch(path, { method, headers, body: payload, cache: "no-store" });
}

const outbox = new Outbox(slug, api);

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- Joining ---------------------------------------------------------------------------

function showJoin() {
  $("#join").hidden = false;
  $("#walk").hidden = true;
  $("#join-form").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const message = $("#join-error");
    message.textContent = "";
    let response;
    try {
      response = await fetch(`/api/events/${encodeURIComponent(slug)}/participants`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ pseudonym: $("#pseudonym").value, consent: $("#consent").checked,
          team: state.team ? state.team.code : undefined }),
      });
    } catch {
      message.textContent = t("join_offline");
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      message.textContent = answer.error || t("join_failed");
      return;
    }
    token = answer.token;
    localStorage.setItem(tokenKey, token);
    localStorage.setItem(`${tokenKey}:pseudonym`, answer.pseudonym);
    localStorage.setItem(`${tokenKey}:team`, JSON.stringify(answer.team));
    showWalk();
  });
}

// ---- The map and its points ------------------------------------------------------------

let map;
let layer;
let fix = null;
let serverPoints = JSON.parse(localStorage.getItem(pointsKey) || "[]");

async function loadServerPoints() {
  try {
    const response = await api("GET", `/api/events/${encodeURIComponent(slug)}/submissions.geojson`);
    if (response.status === 401) return rejoin();
    if (!response.ok) return;
    const collection = await response.json();
    serverPoints = collection.features
      .filter((f) => f.properties.mine || f.properties.status === "approved")
      .map((f) => ({ ...f.properties, lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] }));
    localStorage.setItem(pointsKey, JSON.stringify(serverPoints));
    render(await outbox.all());
  } catch {
    // offline: the last copy is shown
  }
}

function rejoin() {
  localStorage.removeItem(tokenKey);
  token = null;
  $("#join-error").textContent = t("rejoin");
  showJoin();
}

// What to draw: the server's points, overlaid by what still waits in the outbox.
function mergedPoints(records) {
  const points = new Map(serverPoints.map((p) => [p.client_id, {
    ...p, state: p.mine ? p.status : "approved", editable: p.mine && p.status === "pending" }]));
  for (const record of records) {
    if (record.op === "delete") {
      points.delete(record.client_id);
      continue;
    }
    const known = points.get(record.client_id) || {};
    points.set(record.client_id, { ...known, ...record.body, client_id: record.client_id,
      mine: true, state: record.state, error: record.error, editable: true,
      photos: record.photos.length });
  }
  return [...points.values()];
}

function render(records) {
  const waiting = records.filter((r) => r.state === "waiting").length;
  const refused = records.filter((r) => r.state === "refused").length;
  const status = $("#sync");
  status.dataset.state = waiting ? "waiting" : refused ? "refused" : "sent";
  status.textContent = waiting ? t("n_waiting").replace("{n}", waiting)
    : refused ? t("n_refused").replace("{n}", refused) : t("all_sent");
  layer.clearLayers();
  for (const point of mergedPoints(records)) {
    const preset = presets[point.preset];
    const marker = pointMarker(point, preset);
    marker.bindPopup(() => pointPopup(point, preset, lang, t, { edit: openSheet, remove: removePoint }));
    layer.addLayer(marker);
  }
}

async function removePoint(point) {
  if (!confirm(t("confirm_delete"))) return;
  map.closePopup();
  await outbox.saveDelete(point.client_id);
}

// ---- Recording a point -----------------------------------------------------------------

let draft = null;

function openSheet(existing = null) {
  map.closePopup();
  const where = existing ? [existing.lat, existing.lon] : fix ? [fix.lat, fix.lon]
    : [map.getCenter().lat, map.getCenter().lng];
  draft = {
    existing, preset: existing ? presets[existing.preset] : null, moved: Boolean(existing),
    photos: [], marker: L.marker(where, { draggable: true, autoPan: true }).addTo(map),
  };
  draft.marker.on("dragend", () => { draft.moved = true; });
  map.setView(where, Math.max(map.getZoom(), 18));
  $("#accuracy-warning").hidden = Boolean(existing) || Boolean(fix && fix.accuracy <= POOR_ACCURACY_M);
  $("#accuracy-warning").textContent = fix ? t("poor_accuracy").replace("{m}", Math.round(fix.accuracy))
    : t("no_position");
  $("#note").value = existing ? existing.note || "" : "";
  $("#photo").value = "";
  $("#photo-preview").replaceChildren();
  $("#sheet-error").textContent = "";
  $("#sheet-title").textContent = existing ? t("edit_point") : t("new_point");
  showPresets();
  if (draft.preset) choosePreset(draft.preset);
  $("#sheet").hidden = false;
  $("#add").hidden = true;
}

function closeSheet() {
  if (draft) map.removeLayer(draft.marker);
  draft = null;
  $("#sheet").hidden = true;
  $("#add").hidden = false;
}

function showPresets() {
  $("#presets").replaceChildren(...offeredPresets().map((preset) => {
    const button = element("button", { type: "button", class: "preset", "data-preset": preset.id,
      "aria-pressed": String(draft.preset === preset) },
    element("span", { class: "icon", text: preset.icon }), element("span", { text: preset.name[lang] }));
    button.addEventListener("click", () => choosePreset(preset));
    return button;
  }));
  $("#details").hidden = !draft.preset;
}

function choosePreset(preset) {
  draft.preset = preset;
  for (const button of document.querySelectorAll(".preset")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === preset.id));
  }
  $("#preset-hint").textContent = preset.hint[lang];
  draft.readTags = buildForm($("#fields"), preset, draft.existing ? draft.existing.tags || {} : {}, lang, t);
  $("#details").hidden = false;
}

async function save() {
  if (!draft.preset) {
    $("#sheet-error").textContent = t("choose_preset");
    return;
  }
  const position = draft.marker.getLatLng();
  const body = {
    preset: draft.preset.id, lat: Number(position.lat.toFixed(7)), lon: Number(position.lng.toFixed(7)),
    accuracy: !draft.moved && fix ? Math.round(fix.accuracy * 10) / 10 : null,
    tags: draft.readTags(), note: $("#note").value.trim(),
  };
  if (draft.existing) {
    await outbox.saveEdit(draft.existing.client_id, body, draft.photos);
  } else {
    await outbox.saveNew({ client_id: newClientId(), ...body, observed_at: new Date().toISOString() },
      draft.photos);
  }
  closeSheet();
  toast(t("saved_on_phone"));
}

async function addPhoto(input) {
  for (const file of input.files) {
    try {
      const photo = await shrinkPhoto(file);
      draft.photos.push(photo);
      const preview = element("img", { alt: t("photo"), src: URL.createObjectURL(photo.blob) });
      $("#photo-preview").append(preview);
    } catch {
      $("#sheet-error").textContent = t("photo_unreadable");
    }
  }
}

function toast(text) {
  const node = $("#toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 2500);
}

// ---- Feedback at the end of the event --------------------------------------------------

const feedbackUrl = `/api/events/${encodeURIComponent(slug)}/feedback`;

// The server says when to ask (the event is over, or its restitution is out) and whether
// this walker already answered.
async function offerFeedback() {
  let answer;
  try {
    const response = await api("GET", feedbackUrl);
    if (!response.ok) return;
    answer = await response.json();
  } catch {
    return; // offline: asked again when the app comes back
  }
  const link = $("#restitution-link");
  link.hidden = !answer.restitution_url;
  if (answer.restitution_url) link.href = answer.restitution_url;
  const banner = $("#feedback-banner");
  banner.dataset.state = answer.answered ? "answered" : answer.open ? "open" : "closed";
  banner.hidden = banner.dataset.state !== "open" || !$("#feedback-sheet").hidden;
}

function openFeedback() {
  if (draft) closeSheet();
  $("#feedback-banner").hidden = true;
  $("#feedback-error").textContent = "";
  $("#feedback-sheet").hidden = false;
  $("#add").hidden = true;
}

function closeFeedback(answered) {
  $("#feedback-sheet").hidden = true;
  $("#add").hidden = false;
  if (!answered) offerFeedback();
}

async function sendFeedback() {
  const error = $("#feedback-error");
  error.textContent = "";
  const comeAgain = document.querySelector('input[name="come_again"]:checked');
  if (!comeAgain) {
    error.textContent = t("fb_choose_come_again");
    return;
  }
  let response;
  try {
    response = await api("POST", feedbackUrl, { learnt: $("#fb-learnt").value,
      improve: $("#fb-improve").value, come_again: comeAgain.value, sign: $("#fb-sign").checked });
  } catch {
    error.textContent = t("fb_offline");
    return;
  }
  if (response.status === 401) return rejoin();
  // 409: this walker had already answered (from another tab, say): nothing is lost.
  if (response.status === 201 || response.status === 409) {
    closeFeedback(true);
    toast(t("fb_thanks"));
    return;
  }
  const answer = await response.json().catch(() => ({}));
  error.textContent = answer.error || t("fb_failed");
}

// ---- Start -----------------------------------------------------------------------------

function showWalk() {
  $("#join").hidden = true;
  $("#walk").hidden = false;
  $("#who").textContent = localStorage.getItem(`${tokenKey}:pseudonym`) || "";
  map = createMap($("#map"), state);
  const team = myTeam();
  if (team && team.sector) {
    L.geoJSON(team.sector, { style: { color: "#0d47a1", weight: 3, dashArray: "8 6", fillOpacity: 0.06,
      interactive: false } }).addTo(map);
    $("#who").textContent += ` · ${team.name}`;
  }
  layer = L.layerGroup().addTo(map);
  const recentre = followPosition(map, (position) => { fix = position; }, (problem) => {
    toast(t(problem === "denied" ? "gps_denied" : "gps_unavailable"));
  });
  $("#recentre").addEventListener("click", recentre);
  $("#add").addEventListener("click", () => openSheet());
  $("#cancel").addEventListener("click", closeSheet);
  $("#save").addEventListener("click", save);
  $("#photo").addEventListener("change", (changed) => addPhoto(changed.target));
  $("#feedback-open").addEventListener("click", openFeedback);
  $("#feedback-cancel").addEventListener("click", () => closeFeedback(false));
  $("#feedback-send").addEventListener("click", sendFeedback);
  map.on("click", (clicked) => { if (draft) { draft.marker.setLatLng(clicked.latlng); draft.moved = true; } });
  outbox.onChange((records, detail = {}) => {
    if (detail.unauthorised) return rejoin();
    if (detail.sent) loadServerPoints();
    render(records);
  });
  outbox.all().then(render);
  outbox.flush(true);
  loadServerPoints();
  offerFeedback();
  window.addEventListener("online", () => outbox.flush(true));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    outbox.flush(true);
    offerFeedback();
  });
  setInterval(() => outbox.flush(), 10000);
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").then(async () => {
    const registration = await navigator.serviceWorker.ready;
    registration.active.postMessage({ keep: location.pathname });
  }).catch(() => { /* the app still works online */ });
}

if (token) showWalk();
else showJoin();
