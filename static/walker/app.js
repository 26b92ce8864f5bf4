// The walker app: join an event, see the map, record points that reach the server once.
import { buildForm, checkNote, checkTags, element, shrinkPhoto } from "./form.js";
import { errorText, translator } from "./i18n.js";
import {
  bindPointPopup, covers, createMap, followPosition, pointMarker, pointPopup, presetIcon,
  referenceMarker, referencePopup,
} from "./map.js";
import { createFeedback } from "./feedback.js";
import { createMyData } from "./mydata.js";
import { Outbox } from "./outbox.js";
import { ServerPoints } from "./points.js";
import {
  ReferenceRows, editedVerdict, myVerdicts, nearestUnchecked, ownTags, verdictOf,
} from "./reference.js";

const root = document.getElementById("app");
const state = JSON.parse(root.dataset.state);
const { event, lang } = state;
const slug = event.slug;
const t = translator(state.messages, lang);
const presets = Object.fromEntries(event.presets.map((preset) => [preset.id, preset]));
const tokenKey = `cartoparty:${slug}:token`;
const POOR_ACCURACY_M = 20;
// A fast double tap on "Enregistrer" closes the form with the first tap; the next ones would
// fall on the "add" button beneath and open a new form: it comes back a moment later.
const GHOST_TAP_MS = 400;

const $ = (selector) => document.querySelector(selector);
// The point and feedback sheets are sent by their buttons: Enter in a field must not submit them.
for (const sheet of ["#sheet", "#feedback-sheet"]) {
  $(sheet).addEventListener("submit", (submitted) => submitted.preventDefault());
}
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
const serverPoints = new ServerPoints(slug, api, () => rejoin());
const reference = new ReferenceRows(slug, api, () => rejoin());
const myData = createMyData({ slug, api, t, outbox, onErased: forgetWalker, onUnauthorised: rejoin,
  onOpen: () => { if (draft) closeSheet(); },
  pseudonym: () => localStorage.getItem(`${tokenKey}:pseudonym`) || "" });

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
}

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
    message.textContent = errorText(t, answer.error, t("join_failed"));
    return;
  }
  serverPoints.forget();  // another walker now: which points are "mine" changes
  say("#join-notice", "");
  token = answer.token;
  localStorage.setItem(tokenKey, token);
  localStorage.setItem(`${tokenKey}:pseudonym`, answer.pseudonym);
  localStorage.setItem(`${tokenKey}:team`, JSON.stringify(answer.team));
  showWalk();
});

// ---- The map and its points ------------------------------------------------------------

let map;
let layer;
let referenceLayer;
let shown = [];  // the points last drawn: they tell which rows this walker has checked
let fix = null;
// Only what changed since the last answer is asked for (static/walker/points.js).
async function loadServerPoints() {
  const changed = await serverPoints.load();
  // Erased while the answer was on its way: what it brought is not kept.
  if (!token) serverPoints.forget();
  else if (changed) render(await outbox.all());
}

async function loadReference() {
  if (await reference.load() && token) render(await outbox.all());
}

// Already signed out (asked to join again, or erased), the phone has nothing more to forget.
function rejoin() {
  if (!token) return;
  localStorage.removeItem(tokenKey);
  serverPoints.forget();
  token = null;
  $("#join-error").textContent = t("rejoin");
  showJoin();
}

// The walker erased their data (mydata.js emptied the outbox): this phone forgets them and
// leaves the event, and says so on the join screen.
function forgetWalker() {
  for (const key of [tokenKey, `${tokenKey}:pseudonym`, `${tokenKey}:team`]) {
    localStorage.removeItem(key);
  }
  serverPoints.forget();
  reference.forget();
  token = null;
  if (draft) closeSheet();
  $("#feedback-sheet").hidden = true;
  $("#feedback-banner").hidden = true;
  $("#pseudonym").value = "";
  $("#consent").checked = false;
  $("#join-error").textContent = "";
  say("#join-notice", t("mydata_erased"));
  showJoin();
}

// What to draw: the server's points, overlaid by what still waits in the outbox.
function mergedPoints(records) {
  const points = new Map(serverPoints.all().map((p) => [p.client_id, {
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
  status.textContent = waiting ? t("n_waiting", { n: waiting })
    : refused ? t("n_refused", { n: refused }) : t("all_sent");
  layer.clearLayers();
  shown = mergedPoints(records);
  for (const point of shown) {
    const preset = presets[point.preset];
    const marker = pointMarker(point, preset, lang);
    const actions = { edit: (existing) => openSheet(existing), remove: removePoint };
    bindPointPopup(marker, () => pointPopup(point, preset, lang, t, actions));
    layer.addLayer(marker);
  }
  drawReference();
}

// The dataset's rows, "checked" once anyone's verdict was approved or this walker gave theirs.
function drawReference() {
  referenceLayer.clearLayers();
  if (!presets[reference.preset()]) return;  // no dataset, or its preset left the event
  const mine = myVerdicts(shown);
  const check = (verdict) => (row) => openSheet(null, { row, verdict });
  const actions = { confirmed: confirmRow, different: check("different"), moved: check("moved"),
    missing: check("missing") };
  for (const row of reference.rows()) {
    const marker = referenceMarker(row, row.checked || mine.has(row.id), t);
    bindPointPopup(marker, () => referencePopup(row, mine.get(row.id), t, actions));
    referenceLayer.addLayer(marker);
  }
}

// "Here as described": nothing to ask, the verdict is saved at once at the row's position,
// unless the server would refuse the row's answers as they are (the sheet then shows why).
async function confirmRow(row) {
  const preset = presets[reference.preset()];
  const tags = ownTags(row.tags, preset);
  if (checkTags(preset, tags, event.limits, lang).length) {
    openSheet(null, { row, verdict: "confirmed" });
    return;
  }
  map.closePopup();
  try {
    await outbox.saveNew({ client_id: newClientId(), preset: preset.id, lat: row.lat, lon: row.lon,
      accuracy: null, tags, note: "", observed_at: new Date().toISOString(), reference: row.id,
      verdict: "confirmed" }, []);
  } catch {
    toast(t("save_failed"));
    return;
  }
  toast(t("ref_confirmed", { title: row.title }));
}

// The verdict a point gives, with its row as the phone last saw it, or null for a plain point.
function checkOf(point) {
  const preset = point && presets[point.preset];
  return point ? reference.checkOf(point, preset ? preset.name[lang] : point.preset) : null;
}

async function removePoint(point) {
  if (!confirm(t("confirm_delete"))) return;
  map.closePopup();
  await outbox.saveDelete(point.client_id);
}

// ---- Recording a point -----------------------------------------------------------------

let draft = null;

// The form's client_id is made when it opens: saving the same form twice (a double tap, a
// retry) saves the same point twice, which the outbox and the server keep once. A verdict on a
// reference row (`check`: {row, verdict}) is the row's preset, pre-filled with its answers, at
// its position, except a "moved" one, placed by the walker as a new point.
function openSheet(existing = null, check = checkOf(existing)) {
  map.closePopup();
  const fixed = Boolean(check) && check.verdict !== "moved";
  const where = existing ? [existing.lat, existing.lon] : fixed ? [check.row.lat, check.row.lon]
    : fix ? [fix.lat, fix.lon] : [map.getCenter().lat, map.getCenter().lng];
  const presetId = existing ? existing.preset : check ? reference.preset() : null;
  draft = {
    existing, check, fixed, clientId: existing ? existing.client_id : newClientId(),
    observedAt: new Date().toISOString(), saving: false, preset: presets[presetId] || null,
    tags: existing ? existing.tags || {} : check ? check.row.tags || {} : {},
    moved: Boolean(existing) || fixed,
    photos: [], marker: L.marker(where, { draggable: !fixed, autoPan: true }).addTo(map),
  };
  draft.marker.on("dragend", () => moveDraft(draft.marker.getLatLng()));
  map.setView(where, Math.max(map.getZoom(), 18));
  $("#accuracy-warning").hidden = Boolean(existing) || fixed
    || Boolean(fix && fix.accuracy <= POOR_ACCURACY_M);
  $("#accuracy-warning").textContent = fix ? t("poor_accuracy", { m: Math.round(fix.accuracy) })
    : t("no_position");
  $("#note").value = existing ? existing.note || "" : "";
  $("#photo").value = "";
  $("#photo-preview").replaceChildren();
  $("#sheet-title").textContent = check ? t(`ref_sheet_${check.verdict}`, { title: check.row.title })
    : existing ? t("edit_point") : t("new_point");
  $("#save").disabled = false;
  $("#place-hint").hidden = fixed;
  $("#nearby").hidden = true;
  $("#sheet .actions").hidden = false;
  showPresets();
  $("#presets").hidden = Boolean(check);
  $("#fields").hidden = Boolean(check) && check.verdict === "missing";
  if (draft.preset) choosePreset(draft.preset);
  if (check) showCheck(check);
  showProblems([]);
  showPlace();
  $("#sheet").hidden = false;
  $("#add").hidden = true;
}

function closeSheet() {
  if (draft) map.removeLayer(draft.marker);
  draft = null;
  $("#sheet").hidden = true;
  setTimeout(() => { $("#add").hidden = Boolean(draft) || !$("#feedback-sheet").hidden; }, GHOST_TAP_MS);
}

// A verdict's sheet says where its answers come from; "not found" asks only a note and a photo.
function showCheck({ verdict }) {
  if (verdict === "missing") draft.form = null;
  $("#preset-hint").textContent = t(verdict === "missing" ? "ref_hint_missing" : "ref_hint_form");
}

function moveDraft(latlng) {
  if (draft.fixed) return;
  draft.marker.setLatLng(latlng);
  draft.moved = true;
  showPlace();
}

// Outside the team's sector is only a warning (the sector is a plan, not a rule); outside
// the event's zone is refused when saving, as the server would.
function showPlace() {
  const { lat, lng } = draft.marker.getLatLng();
  const sector = myTeam() && myTeam().sector;
  $("#sector-warning").hidden = !sector || covers(sector, lat, lng);
  if (event.allow_outside_zone || covers(event.zone, lat, lng)) $("#position-error").hidden = true;
}

function showPresets() {
  $("#presets").replaceChildren(...offeredPresets().map((preset) => {
    const button = element("button", { type: "button", class: "preset", "data-preset": preset.id,
      "aria-pressed": String(draft.preset === preset) },
    presetIcon(preset), element("span", { text: preset.name[lang] }));
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
  draft.form = buildForm($("#fields"), preset, draft.tags, { lang, t, limits: event.limits });
  $("#details").hidden = false;
}

function draftBody() {
  const position = draft.marker.getLatLng();
  const body = {
    preset: draft.preset.id, lat: Number(position.lat.toFixed(7)), lon: Number(position.lng.toFixed(7)),
    accuracy: !draft.moved && fix ? Math.round(fix.accuracy * 10) / 10 : null,
    tags: draft.form ? draft.form.read() : {}, note: $("#note").value.trim(),
  };
  if (draft.check) {
    Object.assign(body, { reference: draft.check.row.id,
      verdict: editedVerdict(draft.check, body.tags, draft.preset) });
  }
  return body;
}

// A new point of the dataset's preset near a row this walker has not checked may be that row:
// asked once, when saving. True while the question waits for its answer.
function askNearby(body) {
  if (draft.existing || draft.check || draft.asked || body.preset !== reference.preset()) return false;
  const near = nearestUnchecked(reference.rows(), myVerdicts(shown), body.lat, body.lon);
  if (!near) return false;
  draft.asked = near.row;
  say("#nearby-question", t("ref_nearby", { title: near.row.title, m: Math.round(near.distance) }));
  $("#nearby").hidden = false;
  $("#sheet .actions").hidden = true;
  $("#nearby-yes").focus();
  return true;
}

// Yes: the point is a verdict on the row, at the row's position unless it has moved.
function answerNearby(yes) {
  if (!draft || !draft.asked) return;
  $("#nearby").hidden = true;
  $("#sheet .actions").hidden = false;
  if (yes) {
    const row = draft.asked;
    const { lat, lng } = draft.marker.getLatLng();
    draft.check = { row, verdict: verdictOf(row, draft.form.read(), lat, lng, draft.preset) };
    if (draft.check.verdict !== "moved") {
      draft.marker.setLatLng([row.lat, row.lon]);
      draft.moved = true;
    }
  }
  save();
}

// What the server would refuse, checked where the walker stands, before the outbox.
function problemsOf(body) {
  const outside = !event.allow_outside_zone && !covers(event.zone, body.lat, body.lon);
  return [...(outside ? [{ code: "outside_zone", field: "lat", params: {} }] : []),
    ...(draft.form ? draft.form.check() : []), ...checkNote(body.note, event.limits)];
}

function say(selector, text) {
  $(selector).textContent = text;
  $(selector).hidden = !text;
}

// Where a problem is shown: the position's at the top, a question's under it (by the form).
function slotOf(problem) {
  if (problem.field === "lat" || problem.field === "lon") return "#position-error";
  if (problem.field === "note") return "#note-error";
  return String(problem.field).startsWith("tags.") ? null : "#sheet-error";
}

function showProblems(problems) {
  for (const slot of ["#position-error", "#note-error", "#sheet-error"]) {
    const found = problems.find((problem) => slotOf(problem) === slot);
    say(slot, found ? errorText(t, found) : "");
  }
  if (draft.form) draft.form.show(problems);
  const first = document.querySelector("#sheet .error:not([hidden])");
  if (first) first.scrollIntoView({ block: "center" });
}

async function save() {
  if (!draft || draft.saving) return;
  if (!draft.preset) {
    say("#sheet-error", t("choose_preset"));
    return;
  }
  const body = draftBody();
  const problems = problemsOf(body);
  showProblems(problems);
  if (problems.length || askNearby(body)) return;
  draft.saving = true;
  $("#save").disabled = true;
  try {
    if (draft.existing) await outbox.saveEdit(draft.clientId, body, draft.photos);
    else {
      await outbox.saveNew({ client_id: draft.clientId, ...body, observed_at: draft.observedAt },
        draft.photos);
    }
  } catch {
    draft.saving = false;
    $("#save").disabled = false;
    say("#sheet-error", t("save_failed"));
    return;
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
      say("#sheet-error", t("photo_unreadable"));
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

// ---- Start -----------------------------------------------------------------------------

let feedback = null;

// Shown after joining, and again after joining anew (a token refused): the map and its
// listeners are made once.
function showWalk() {
  $("#join").hidden = true;
  $("#walk").hidden = false;
  $("#pseudonym-shown").textContent = localStorage.getItem(`${tokenKey}:pseudonym`) || "";
  const team = myTeam();
  say("#team-shown", team ? team.name : "");
  if (map) {
    outbox.flush(true);
    loadServerPoints();
    loadReference();
    feedback.offer();
    return;
  }
  map = createMap($("#map"), state);
  if (team && team.sector) {
    L.geoJSON(team.sector, { style: { color: "#0d47a1", weight: 3, dashArray: "8 6", fillOpacity: 0.06,
      interactive: false } }).addTo(map);
  }
  referenceLayer = L.layerGroup().addTo(map);
  layer = L.layerGroup().addTo(map);
  const recentre = followPosition(map, (position) => { fix = position; }, (problem) => {
    toast(t(problem === "denied" ? "gps_denied" : "gps_unavailable"));
  });
  $("#recentre").addEventListener("click", recentre);
  $("#add").addEventListener("click", () => openSheet());
  $("#cancel").addEventListener("click", closeSheet);
  $("#save").addEventListener("click", save);
  $("#photo").addEventListener("change", (changed) => addPhoto(changed.target));
  $("#nearby-yes").addEventListener("click", () => answerNearby(true));
  $("#nearby-no").addEventListener("click", () => answerNearby(false));
  feedback = createFeedback({ slug, api, t, toast, onUnauthorised: rejoin,
    onOpen: () => { if (draft) closeSheet(); } });
  map.on("click", (clicked) => { if (draft) moveDraft(clicked.latlng); });
  map.on("click", () => myData.showMenu(false));
  outbox.onChange((records, detail = {}) => {
    if (detail.unauthorised) return rejoin();
    if (detail.sent) {
      serverPoints.remember(detail);
      loadServerPoints();
    }
    render(records);
  });
  outbox.all().then(render);
  outbox.flush(true);
  loadServerPoints();
  loadReference();
  feedback.offer();
  // Signed out (erased, or asked to join again), the phone asks the server nothing.
  window.addEventListener("online", () => { if (token) outbox.flush(true); });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || !token) return;
    outbox.flush(true);
    loadServerPoints();
    loadReference();
    feedback.offer();
  });
  setInterval(() => { if (token) outbox.flush(); }, 10000);
  // Organisers review while walkers walk: what changed is little, asked for now and then.
  setInterval(() => { if (token && document.visibilityState === "visible") loadServerPoints(); }, 60000);
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").then(async () => {
    const registration = await navigator.serviceWorker.ready;
    registration.active.postMessage({ keep: location.pathname });
  }).catch(() => { /* the app still works online */ });
}

if (token) showWalk();
else showJoin();
