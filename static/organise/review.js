// The review page: every submission of the event on a map (clusters from the server when
// there are many), a list kept in step with the map, a point's details and the decisions,
// updated live while walkers send points.
/* global L */
import { buildForm, element } from "../walker/form.js";
import { errorText, translator } from "../walker/i18n.js";
import { formats } from "./format.js";
import { createOsm } from "./review-osm.js";

const root = document.getElementById("review");
const state = JSON.parse(root.dataset.state);
const { event, lang } = state;
const t = translator(state.messages, lang);
const when = formats(lang, state.timezone);
const presets = Object.fromEntries(event.presets.map((preset) => [preset.id, preset]));
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const base = `/api/organise/${encodeURIComponent(event.slug)}`;
const $ = (selector) => document.querySelector(selector);
const COLOURS = { pending: "#b34700", approved: "#0b5d1e", rejected: "#6b6b6b" };

let page = 1;
let items = [];
let cursor = null;
let selected = null;      // the submission shown in the detail panel
let mergeFrom = null;
let revealUntil = 0;      // until then, a list reloaded by the map's pan keeps the details in view
const REVEAL_MS = 3000;     // when set, the next point chosen is merged into this one
const chosen = new Map(); // id -> version, for bulk approval

async function call(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(errorText(t, answer.error, `${response.status}`)),
      { status: response.status, error: answer.error });
  }
  return answer;
}

function filters() {
  const params = new URLSearchParams();
  for (const [name, id] of [["preset", "#f-preset"], ["status", "#f-status"], ["team", "#f-team"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  for (const [name, id] of [["since", "#f-since"], ["until", "#f-until"]]) {
    if ($(id).value) params.set(name, when.fromLocal($(id).value).toISOString());
  }
  if (filters.participant) params.set("participant", filters.participant);
  return params;
}

function bbox() {
  const b = map.getBounds();
  const clamp = (v, limit) => Math.max(-limit, Math.min(limit, v));
  return [clamp(b.getWest(), 180), clamp(b.getSouth(), 90), clamp(b.getEast(), 180), clamp(b.getNorth(), 90)]
    .map((v) => v.toFixed(6)).join(",");
}

// ---- Map ---------------------------------------------------------------------------------

const map = L.map("review-map", { boxZoom: false });
L.tileLayer(state.tiles.url, { attribution: state.tiles.attribution, maxZoom: 20 }).addTo(map);
const zone = L.geoJSON(event.zone, { style: { color: "#0b5d1e", weight: 2, fillOpacity: 0.03, interactive: false } }).addTo(map);
map.fitBounds(zone.getBounds());
const layer = L.layerGroup().addTo(map);
let moving = null;
const osm = createOsm({
  map, base, call, t, when, bbox, onChange: () => refresh(), site: state.osm_site,
  onDetail: (detail, message) => { selected = detail; showDetail(message); },
});

async function loadMap() {
  const params = filters();
  params.set("bbox", bbox());
  params.set("zoom", String(map.getZoom()));
  if (cursor !== null) params.set("cursor", cursor);
  const data = await call("GET", `${base}/map?${params}`);
  layer.clearLayers();
  for (const cluster of data.clusters) {
    const icon = L.divIcon({ className: "cluster", html: "", iconSize: [40, 40] });
    const marker = L.marker([cluster.lat, cluster.lon], { icon, title: `${cluster.count}` });
    marker.on("add", () => { marker.getElement().textContent = when.number(cluster.count); });
    marker.on("click", () => map.setView([cluster.lat, cluster.lon], map.getZoom() + 2));
    layer.addLayer(marker);
  }
  for (const point of data.points) {
    const current = selected && selected.id === point.id;
    const marker = L.circleMarker([point.lat, point.lon], {
      radius: current ? 11 : 7, weight: 2, color: "#fff", fillColor: COLOURS[point.status],
      fillOpacity: 1, className: `point ${point.status}${current ? " selected" : ""}`,
    });
    marker.on("click", () => choose(point.id));
    marker.bindTooltip(`${presets[point.preset] ? presets[point.preset].icon : ""} #${point.id}`);
    layer.addLayer(marker);
  }
}

map.on("moveend", () => { page = 1; refresh(); });

// ---- List and dashboard ------------------------------------------------------------------

async function loadList() {
  const params = filters();
  params.set("bbox", bbox());
  params.set("page", String(page));
  const data = await call("GET", `${base}/list?${params}`);
  items = data.items;
  $("#list-count").textContent = t("points_n", { n: data.total });
  $("#page").textContent = `${when.number(data.page)} / ${when.number(Math.max(1, Math.ceil(data.total / data.per_page)))}`;
  $("#list").replaceChildren(...items.map((item) => {
    const box = element("input", { type: "checkbox", "aria-label": `#${item.id}`, checked: chosen.has(item.id) });
    box.addEventListener("change", () => {
      if (box.checked) chosen.set(item.id, item.version);
      else chosen.delete(item.id);
      $("#bulk-approve").disabled = chosen.size === 0;
    });
    const preset = presets[item.preset];
    const label = element("button", { type: "button", class: "item", "data-id": item.id },
      element("span", { class: `dot ${item.status}`, text: "●" }),
      element("span", { text: ` ${preset ? preset.icon : ""} ${preset ? preset.name[lang] : item.preset} ` }),
      element("span", { class: "hint", text: `${item.pseudonym} · ${when.time(item.received_at)}` }));
    label.addEventListener("click", () => choose(item.id));
    return element("li", { class: selected && selected.id === item.id ? "current" : "" }, box, label);
  }));
  // The list above the details changed with the map's pan: keep the details where they were shown.
  if (Date.now() < revealUntil) $("#detail").scrollIntoView({ block: "start" });
}

async function loadDashboard() {
  const data = await call("GET", `${base}/dashboard?${filters()}`);
  const table = (title, counts, name = (key) => key) => element("table", {},
    element("caption", { text: title }),
    ...Object.entries(counts).map(([key, count]) => element("tr", {},
      element("th", { text: name(key) }), element("td", { text: when.number(count) }))));
  // The town's dataset checked so far: the same sentence as on the restitution page.
  const reference = data.reference
    ? [element("p", { class: "reference-summary", text: t("reference_summary", data.reference) })] : [];
  $("#dashboard-panel").replaceChildren(
    element("p", { class: "total", text: t("points_n", { n: data.total }) }), ...reference,
    table(t("status"), data.by_status, (key) => t(`status_${key}`)),
    table(t("preset"), data.by_preset, (key) => (presets[key] ? `${presets[key].icon} ${presets[key].name[lang]}` : key)),
    table(t("team"), data.by_team),
    table(t("walkers"), data.by_participant));
}

async function refresh() {
  try {
    await Promise.all([loadMap(), loadList(), osm.loadLayer(),
      $("#dashboard-panel").hidden ? null : loadDashboard()]);
  } catch (error) {
    $("#live").textContent = error.message;
  }
}

// ---- Details and decisions ---------------------------------------------------------------

async function choose(id) {
  if (mergeFrom && mergeFrom.id !== id) return merge(id);
  selected = await call("GET", `${base}/submissions/${id}`);
  showDetail();
  reveal(selected);
  loadMap();
  for (const row of document.querySelectorAll("#list li")) {
    row.classList.toggle("current", row.querySelector(".item").dataset.id === String(id));
  }
}

// The chosen point's details may open below a long list, and the point may lie at the map's
// edge: bring both into view (and keep the details there while the pan reloads the list).
function reveal(point) {
  revealUntil = Date.now() + REVEAL_MS;
  $("#detail").scrollIntoView({ block: "start" });
  map.panTo([point.lat, point.lon]);
}

function showDetail(message = "") {
  const s = selected;
  const preset = presets[s.preset];
  const tagRows = Object.entries(s.tags).map(([key, value]) => element("tr", {},
    element("th", { text: key }), element("td", { text: value })));
  const reason = element("input", { id: "reason", placeholder: t("reject_reason"), maxlength: 500 });
  const button = (label, action, extra = {}) => {
    const b = element("button", { type: "button", ...extra, text: label });
    b.addEventListener("click", action);
    return b;
  };
  const panel = $("#detail");
  panel.replaceChildren(
    element("h2", { text: `${preset ? `${preset.icon} ${preset.name[lang]}` : s.preset} #${s.id}` }),
    element("p", { class: `status ${s.status}`, text: t(`status_${s.status}`) + (s.review_reason ? ` — ${s.review_reason}` : "") }),
    message ? element("p", { class: "error", role: "alert", text: message }) : "",
    element("table", { class: "tags" }, ...tagRows),
    s.note ? element("p", { class: "note", text: s.note }) : "",
    ...s.photos.map((url) => element("img", { src: url, alt: t("photo"), class: "photo" })),
    element("p", { class: "hint", text: `${t("by")} ${s.pseudonym}${s.team ? ` (${s.team})` : ""} · ${when.dateTime(s.observed_at)} · ± ${s.accuracy === null ? "?" : when.number(s.accuracy)} m` }),
    element("div", { class: "row" },
      button(t("approve"), () => decide("approve"), { class: "primary", id: "approve" }),
      reason, button(t("reject"), () => decide("reject", reason.value), { class: "danger", id: "reject" })),
    element("div", { class: "row" },
      button(t("edit_tags"), editTags, { id: "edit" }), button(t("move"), movePoint, { id: "move" }),
      button(t("merge"), startMerge, { id: "merge" }),
      button(`${t("walker_points")} ${s.pseudonym}`, () => filterParticipant(s.participant_id, s.pseudonym)),
      button(t("close"), closeDetail)),
    element("div", { id: "editor" }),
    osm.matchSection(s),
    element("details", {}, element("summary", { text: `${t("history")} (${when.number(s.history.length)})` }),
      element("ol", { class: "history" }, ...s.history.map((entry) => element("li", {},
        element("span", { text: `${when.dateTime(entry.at)} — ${entry.actor} — ${named("action_", entry.action)}` }),
        element("ul", {}, ...historyChanges(entry).map((text) => element("li", { text }))))))));
  panel.hidden = false;
}

// A catalog's name for a value, or the value itself when the catalog has none.
function named(prefix, value) {
  const text = t(`${prefix}${value}`);
  return text === `${prefix}${value}` ? value : text;
}

// What an audit entry changed, one line per thing: the status, each tag, the position, the
// note, the duplicate; a match correction changes the OSM match only.
function historyChanges({ before, after }) {
  const line = (what, was, is) => t("history_change", { what, before: was, after: is });
  if ("osm_match" in after) {
    const outcome = (match) => (match ? t(`outcome_${match.outcome}`) : t("history_none"));
    return [line(t("history_osm"), outcome(before.osm_match), outcome(after.osm_match))];
  }
  const changes = [];
  if (before.status !== after.status || before.review_reason !== after.review_reason) {
    const status = (snapshot) => t(`status_${snapshot.status}`) + (snapshot.review_reason ? ` (${snapshot.review_reason})` : "");
    changes.push(line(t("status"), status(before), status(after)));
  }
  const tag = (value) => value ?? t("history_none");
  for (const key of [...new Set([...Object.keys(before.tags), ...Object.keys(after.tags)])].sort()) {
    if (before.tags[key] !== after.tags[key]) changes.push(line(key, tag(before.tags[key]), tag(after.tags[key])));
  }
  if (before.lat !== after.lat || before.lon !== after.lon) {
    const where = (snapshot) => `${when.decimal(snapshot.lat, 6)}, ${when.decimal(snapshot.lon, 6)}`;
    changes.push(`${line(t("history_position"), where(before), where(after))} (${
      t("history_moved", { d: Math.round(metresBetween(before, after)) })})`);
  }
  if (before.note !== after.note) {
    const note = (text) => (text ? t("history_quoted", { text }) : t("history_empty"));
    changes.push(line(t("history_note"), note(before.note), note(after.note)));
  }
  if (before.duplicate_of_id !== after.duplicate_of_id && after.duplicate_of_id) {
    changes.push(t("history_duplicate_of", { id: after.duplicate_of_id }));
  }
  return changes.length ? changes : [t("history_nothing")];
}

// Metres between two WGS84 positions ({lat, lon} in degrees), on a plane tangent to the
// Earth: close enough for a point moved across a street.
function metresBetween(a, b) {
  const metresPerDegree = 111_320;
  const north = (b.lat - a.lat) * metresPerDegree;
  const east = (b.lon - a.lon) * metresPerDegree * Math.cos((a.lat * Math.PI) / 180);
  return Math.hypot(north, east);
}

function filterParticipant(id, pseudonym) {
  filters.participant = id;
  const clear = $("#f-clear-participant");
  clear.textContent = id ? `✕ ${pseudonym}` : "";
  clear.hidden = !id;
  page = 1;
  refresh();
}
$("#f-clear-participant").addEventListener("click", () => filterParticipant(null, ""));

function closeDetail() {
  selected = null;
  mergeFrom = null;
  $("#detail").hidden = true;
  osm.clearChoices();
  if (moving) { map.removeLayer(moving); moving = null; }
  loadMap();
}

async function act(method, path, body) {
  try {
    selected = await call(method, path, { version: selected.version, ...body });
    showDetail();
    refresh();
  } catch (error) {
    const stale = error.status === 409;
    if (stale) selected = await call("GET", `${base}/submissions/${selected.id}`);
    showDetail(error.message);
  }
}

function decide(decision, reason) {
  return act("POST", `${base}/submissions/${selected.id}/${decision}`, reason ? { reason } : {});
}

function editTags() {
  const preset = presets[selected.preset];
  const holder = $("#editor");
  const fields = element("div", {});
  const form = buildForm(fields, preset, selected.tags, { lang, t, limits: event.limits });
  const save = element("button", { type: "button", class: "primary", text: t("save") });
  save.addEventListener("click", () => {
    const problems = form.check();
    form.show(problems);
    if (problems.length) return;
    const others = Object.fromEntries(Object.entries(selected.tags)
      .filter(([key]) => !preset.fields.some((field) => field.key === key)));
    act("PATCH", `${base}/submissions/${selected.id}`, { tags: { ...others, ...form.read() } });
  });
  holder.replaceChildren(fields, save);
}

function movePoint() {
  if (moving) map.removeLayer(moving);
  moving = L.marker([selected.lat, selected.lon], { draggable: true }).addTo(map);
  const save = element("button", { type: "button", class: "primary", text: t("save_position") });
  save.addEventListener("click", () => {
    const where = moving.getLatLng();
    map.removeLayer(moving);
    moving = null;
    act("PATCH", `${base}/submissions/${selected.id}`, { lat: where.lat, lon: where.lng });
  });
  $("#editor").replaceChildren(element("p", { class: "hint", text: t("drag_to_move") }), save);
}

function startMerge() {
  mergeFrom = selected;
  $("#editor").replaceChildren(element("p", { class: "hint", text: t("merge_hint") }));
}

async function merge(duplicateId) {
  const duplicate = await call("GET", `${base}/submissions/${duplicateId}`);
  selected = mergeFrom;
  mergeFrom = null;
  await act("POST", `${base}/submissions/${selected.id}/merge`,
    { duplicate: duplicate.id, duplicate_version: duplicate.version });
}

async function approveSelection() {
  const result = await call("POST", `${base}/review/bulk`, {
    action: "approve", items: [...chosen].map(([id, version]) => ({ id, version })) });
  chosen.clear();
  $("#bulk-approve").disabled = true;
  $("#live").textContent = t("approved_n", { n: result.done.length }) +
    (result.not_changed.length ? ` · ${t("not_changed_n", { n: result.not_changed.length })}` : "");
  refresh();
}

// ---- Keyboard, tabs, filters, live updates -----------------------------------------------

function step(delta) {
  const index = selected ? items.findIndex((item) => item.id === selected.id) : -1;
  const next = items[Math.max(0, Math.min(items.length - 1, index + delta))];
  if (next) choose(next.id);
}

document.addEventListener("keydown", (pressed) => {
  if (pressed.target.closest("input, textarea, select") || pressed.ctrlKey || pressed.metaKey) return;
  const actions = {
    j: () => step(1), k: () => step(-1), a: () => selected && decide("approve"),
    r: () => selected && document.getElementById("reason").focus(),
    e: () => selected && editTags(), m: () => selected && startMerge(),
    x: () => { if (selected) { const box = document.querySelector(`#list li.current input`); if (box) box.click(); } },
    A: () => chosen.size && approveSelection(), Escape: closeDetail,
  };
  if (actions[pressed.key]) {
    pressed.preventDefault();
    actions[pressed.key]();
  }
});

const TABS = [["#tab-list", "#list-panel"], ["#tab-dashboard", "#dashboard-panel"], ["#tab-osm", "#osm-panel"]];
for (const [tab] of TABS) {
  $(tab).addEventListener("click", () => {
    for (const [other, otherPanel] of TABS) {
      $(other).setAttribute("aria-selected", String(other === tab));
      $(otherPanel).hidden = other !== tab;
    }
    if (tab === "#tab-osm") osm.loadPanel();
    else osm.stop();
    refresh();
  });
}
$("#filters").addEventListener("change", () => { page = 1; refresh(); });
$("#filters").addEventListener("submit", (submitted) => submitted.preventDefault());
$("#bulk-approve").addEventListener("click", approveSelection);
$("#prev-page").addEventListener("click", () => { page = Math.max(1, page - 1); loadList(); });
$("#next-page").addEventListener("click", () => { page += 1; loadList(); });

async function poll() {
  try {
    const { cursor: now } = await call("GET", `${base}/changes`);
    const changed = cursor !== null && now !== cursor;
    cursor = now; // before refreshing: the map asks for clusters at least this recent
    if (changed) {
      $("#live").textContent = `${t("updated")} ${when.time(new Date())}`;
      await refresh();
      if (!$("#osm-panel").hidden) osm.loadPanel();
    }
  } catch {
    // a missed poll is retried at the next one
  }
}
setInterval(poll, 3000);
poll();
refresh();
