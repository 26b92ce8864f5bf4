// The review page: every submission of the event on a map (clusters from the server when
// there are many), a list kept in step with the map, a point's details and the decisions,
// updated live while walkers send points.
/* global L */
import { buildForm, element } from "../walker/form.js";
import { createOsm } from "./review-osm.js";

const root = document.getElementById("review");
const state = JSON.parse(root.dataset.state);
const { event, lang } = state;
const t = (key) => state.messages[key] ?? key;
const presets = Object.fromEntries(event.presets.map((preset) => [preset.id, preset]));
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const base = `/api/organise/${encodeURIComponent(event.slug)}`;
const $ = (selector) => document.querySelector(selector);
const COLOURS = { pending: "#b34700", approved: "#0b5d1e", rejected: "#6b6b6b" };

let page = 1;
let items = [];
let cursor = null;
let selected = null;      // the submission shown in the detail panel
let mergeFrom = null;     // when set, the next point chosen is merged into this one
const chosen = new Map(); // id -> version, for bulk approval

async function call(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(answer.error || `${response.status}`), { status: response.status });
  return answer;
}

function filters() {
  const params = new URLSearchParams();
  for (const [name, id] of [["preset", "#f-preset"], ["status", "#f-status"], ["team", "#f-team"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  for (const [name, id] of [["since", "#f-since"], ["until", "#f-until"]]) {
    if ($(id).value) params.set(name, new Date($(id).value).toISOString());
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
  map, base, call, t, lang, bbox, onChange: () => refresh(),
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
    marker.on("add", () => { marker.getElement().textContent = cluster.count; });
    marker.on("click", () => map.setView([cluster.lat, cluster.lon], map.getZoom() + 2));
    layer.addLayer(marker);
  }
  for (const point of data.points) {
    const marker = L.circleMarker([point.lat, point.lon], {
      radius: selected && selected.id === point.id ? 11 : 7, weight: 2, color: "#fff",
      fillColor: COLOURS[point.status], fillOpacity: 1,
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
  $("#list-count").textContent = `${data.total} ${t("points")}`;
  $("#page").textContent = `${data.page} / ${Math.max(1, Math.ceil(data.total / data.per_page))}`;
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
      element("span", { class: "hint", text: `${item.pseudonym} · ${new Date(item.received_at).toLocaleTimeString(lang)}` }));
    label.addEventListener("click", () => choose(item.id));
    return element("li", { class: selected && selected.id === item.id ? "current" : "" }, box, label);
  }));
}

async function loadDashboard() {
  const data = await call("GET", `${base}/dashboard?${filters()}`);
  const table = (title, counts, name = (key) => key) => element("table", {},
    element("caption", { text: title }),
    ...Object.entries(counts).map(([key, count]) => element("tr", {},
      element("th", { text: name(key) }), element("td", { text: String(count) }))));
  $("#dashboard-panel").replaceChildren(
    element("p", { class: "total", text: `${data.total} ${t("points")}` }),
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
  loadMap();
  for (const row of document.querySelectorAll("#list li")) {
    row.classList.toggle("current", row.querySelector(".item").dataset.id === String(id));
  }
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
    element("p", { class: "hint", text: `${t("by")} ${s.pseudonym}${s.team ? ` (${s.team})` : ""} · ${new Date(s.observed_at).toLocaleString(lang)} · ± ${s.accuracy ?? "?"} m` }),
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
    element("details", {}, element("summary", { text: `${t("history")} (${s.history.length})` }),
      element("ol", { class: "history" }, ...s.history.map((entry) => element("li", {
        text: `${new Date(entry.at).toLocaleString(lang)} — ${entry.actor} — ${entry.action}: ${historyChange(entry)}`,
      })))));
  panel.hidden = false;
}

// A match correction changes the OSM match, not the point: show what the match was and became.
function historyChange(entry) {
  const outcome = (match) => (match ? t(`outcome_${match.outcome}`) : "—");
  return "osm_match" in entry.after ? `${outcome(entry.before.osm_match)} → ${outcome(entry.after.osm_match)}`
    : `${entry.before.status} → ${entry.after.status}`;
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
  const read = buildForm(fields, preset, selected.tags, lang, t);
  const save = element("button", { type: "button", class: "primary", text: t("save") });
  save.addEventListener("click", () => {
    const others = Object.fromEntries(Object.entries(selected.tags)
      .filter(([key]) => !preset.fields.some((field) => field.key === key)));
    act("PATCH", `${base}/submissions/${selected.id}`, { tags: { ...others, ...read() } });
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
  $("#live").textContent = `${t("approved_n").replace("{n}", result.done.length)}` +
    (result.not_changed.length ? ` · ${t("not_changed_n").replace("{n}", result.not_changed.length)}` : "");
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
$("#bulk-approve").addEventListener("click", approveSelection);
$("#prev-page").addEventListener("click", () => { page = Math.max(1, page - 1); loadList(); });
$("#next-page").addEventListener("click", () => { page += 1; loadList(); });

async function poll() {
  try {
    const { cursor: now } = await call("GET", `${base}/changes`);
    const changed = cursor !== null && now !== cursor;
    cursor = now; // before refreshing: the map asks for clusters at least this recent
    if (changed) {
      $("#live").textContent = `${t("updated")} ${new Date().toLocaleTimeString(lang)}`;
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
