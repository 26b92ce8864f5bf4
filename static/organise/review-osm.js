// The OpenStreetMap side of the review page: the event's OSM snapshot and checks (tab "OSM"),
// the "Données OSM" layer with a line from each submission to its match, and in a point's
// details its match, tag diff and the means to correct it. OSM tags, like everything walkers
// typed, are put in the page as text (textContent), never as HTML.
/* global L */
import { element } from "../walker/form.js";
import { errorText } from "../walker/i18n.js";

// Outcome colours for the lines, the legend and a point's details; none is a review status's
// colour (review.js COLOURS: pending orange, approved green, rejected grey), so that a line
// is never read as a status. All readable as text on white.
export const OUTCOME_COLOURS = {
  new: "#1565c0", existing: "#00838f", update: "#ad1457", ambiguous: "#6a1b9a", duplicate: "#795548",
  unmatched: "#37474f",
};
// Candidate features stand out from both the statuses and the outcomes.
const CANDIDATE_COLOUR = "#000000";
const OUTCOMES = ["new", "existing", "update", "ambiguous", "duplicate", "unmatched"];
const LAYER_FROM_ZOOM = 16;
const POLL_MS = 2000;
const busy = (check) => check && (check.status === "queued" || check.status === "running");

export function createOsm({ map, base, call, t, when, bbox, onChange, onDetail,
                            site = "https://www.openstreetmap.org" }) {
  const $ = (selector) => document.querySelector(selector);
  const at = (iso) => when.dateTime(iso);
  const coloured = (outcome) => `color: ${OUTCOME_COLOURS[outcome]}`;
  const layer = L.layerGroup().addTo(map);
  const choices = L.layerGroup().addTo(map);
  let shown = false;
  let asked = 0;          // answers to requests older than the last one are dropped
  let pollTimer = null;
  let watching = null;    // the id of the check being followed until it ends

  // ---- The map layer -------------------------------------------------------------------

  const toggle = element("input", { type: "checkbox", id: "osm-layer" });
  const hint = element("span", { class: "hint", id: "osm-layer-hint", "aria-live": "polite" });
  const Control = L.Control.extend({
    onAdd() {
      const box = element("div", { class: "osm-toggle leaflet-bar" },
        element("label", { for: "osm-layer" }, toggle, ` ${t("osm_data")}`), hint);
      L.DomEvent.disableClickPropagation(box);
      return box;
    },
  });
  new Control({ position: "topright" }).addTo(map);
  toggle.addEventListener("change", () => { shown = toggle.checked; loadLayer(); });

  function tagTable(tags) {
    return element("table", { class: "tags" }, ...Object.entries(tags).map(([key, value]) =>
      element("tr", {}, element("th", { text: key }), element("td", { text: value }))));
  }

  function osmLink(type, id) {
    return element("a", {
      href: `${site}/${encodeURIComponent(type)}/${encodeURIComponent(id)}`,
      target: "_blank", rel: "noopener noreferrer", class: "osm-link",
      text: `${type}/${id} — ${new URL(site).host}`,
    });
  }

  function elementPopup(feature) {
    return element("div", { class: "osm-popup" },
      element("strong", { text: `${feature.osm_type}/${feature.osm_id}` }),
      element("span", { class: "hint", text: feature.version ? ` v${feature.version}` : "" }),
      tagTable(feature.tags), osmLink(feature.osm_type, feature.osm_id));
  }

  async function loadLayer() {
    const ticket = ++asked;
    if (!shown || map.getZoom() < LAYER_FROM_ZOOM) {
      layer.clearLayers();
      hint.textContent = shown ? t("osm_zoom_in") : "";
      return;
    }
    let data;
    try {
      data = await call("GET", `${base}/osm/features?bbox=${bbox()}`);
    } catch (error) {
      hint.textContent = error.message;
      return;
    }
    if (ticket !== asked) return;
    layer.clearLayers();
    for (const line of data.lines) {
      layer.addLayer(L.polyline([[line.lat, line.lon], [line.osm_lat, line.osm_lon]], {
        color: OUTCOME_COLOURS[line.outcome], weight: 3, opacity: 0.9, interactive: false,
        dashArray: line.overridden ? "6 4" : null, className: `osm-line ${line.outcome}`,
      }));
    }
    for (const feature of data.elements) {
      const marker = L.circleMarker([feature.lat, feature.lon], {
        radius: 5, weight: 1, color: "#424242", fillColor: "#9e9e9e", fillOpacity: 0.9,
        className: "osm-element",
      });
      marker.bindPopup(() => elementPopup(feature));
      layer.addLayer(marker);
    }
    // Under the submissions, which stay the first thing to click.
    layer.eachLayer((item) => item.bringToBack());
    hint.textContent = data.truncated ? t("osm_truncated") : "";
  }

  // ---- The "OSM" tab: snapshot, checks and outcome counts ---------------------------------

  function snapshotBlock(snapshot) {
    if (!snapshot) return element("p", { class: "hint", text: t("osm_none") });
    const row = (label, value, extra = {}) => element("tr", extra,
      element("th", { text: label }), element("td", { text: value }));
    return element("table", { class: "osm-snapshot" },
      row(t("osm_source"), snapshot.source || "—"),
      row(t("osm_fetched_at"), at(snapshot.fetched_at)),
      row(t("osm_elements"), when.number(snapshot.element_count)),
      snapshot.last_error ? row(t("osm_last_error"),
        `${errorText(t, snapshot.last_error_detail, snapshot.last_error)} (${at(snapshot.last_error_at)})`,
        { class: "error" }) : "");
  }

  const named = (key) => (t(`outcome_${key}`) === `outcome_${key}` ? key : t(`outcome_${key}`));

  // The worker writes its steps in English, the API's language; the page says them in its own.
  const STEPS = [[/^starting$/, "osm_step_starting"], [/^fetching OSM data$/, "osm_step_fetching"],
    [/^matching ([\d,]+) submissions?$/, "osm_step_matching"], [/^matched ([\d,]+) submissions?$/, "osm_step_matched"]];

  function stepText(step) {
    for (const [pattern, key] of STEPS) {
      const found = step.match(pattern);
      if (found) return t(key, { n: Number((found[1] || "0").replaceAll(",", "")) });
    }
    return step;
  }

  function checkBlock(check) {
    if (!check) return "";
    const counts = check.counts && typeof check.counts === "object"
      ? Object.entries(check.counts).map(([key, value]) => `${named(key)}: ${when.number(value)}`).join(" · ") : "";
    return element("div", { class: `osm-check ${check.status}`, id: "osm-check" },
      element("p", {}, element("strong", { text: `${t("osm_latest_check")} ` }),
        element("span", { class: "check-status", text: t(`check_${check.status}`) }),
        check.step ? element("span", { class: "hint", text: ` — ${stepText(check.step)}` }) : ""),
      element("p", { class: "hint", text: `${check.fetch ? t("osm_check") : t("osm_rematch")} · ${
        t("osm_requested_by")} ${check.requested_by || "—"} · ${at(check.queued_at)}${
        check.finished_at ? ` → ${at(check.finished_at)}` : ""}` }),
      check.error ? element("p", { class: "error", role: "alert",
        text: errorText(t, check.error_detail, check.error) }) : "",
      counts ? element("p", { class: "hint", text: counts }) : "");
  }

  function outcomesBlock(outcomes) {
    return element("table", { class: "osm-outcomes" }, element("caption", { text: t("osm_outcomes") }),
      ...OUTCOMES.map((name) => element("tr", { "data-outcome": name },
        element("th", {}, element("span", { class: `swatch ${name}`, style: coloured(name), text: "●" }),
          ` ${t(`outcome_${name}`)}`),
        element("td", { text: when.number(outcomes?.[name] ?? 0) }))));
  }

  async function startCheck(fetch, force = false) {
    try {
      await call("POST", `${base}/osm/check`, { fetch, force });
      await loadPanel();
    } catch (error) {
      await loadPanel(error.message, error.status === 429 && fetch);
    }
  }

  function actionButton(label, id, action, disabled) {
    const button = element("button", { type: "button", id, text: label, disabled });
    button.addEventListener("click", action);
    return button;
  }

  async function loadPanel(message = "", offerForce = false) {
    clearTimeout(pollTimer);
    const panel = $("#osm-panel");
    let data;
    try {
      data = await call("GET", `${base}/osm`);
    } catch (error) {
      panel.replaceChildren(element("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const latest = data.checks[0];
    panel.replaceChildren(
      element("h2", { text: "OpenStreetMap" }),
      snapshotBlock(data.snapshot),
      element("div", { class: "row" },
        actionButton(t("osm_check"), "osm-check-fetch", () => startCheck(true), busy(latest)),
        actionButton(t("osm_rematch"), "osm-check-match", () => startCheck(false), busy(latest))),
      message ? element("p", { class: "error", role: "alert", text: message }) : "",
      offerForce ? actionButton(t("osm_force"), "osm-check-force", () => startCheck(true, true), false) : "",
      checkBlock(latest),
      outcomesBlock(data.outcomes));
    if (busy(latest)) {
      watching = latest.id;
      pollTimer = setTimeout(() => loadPanel(), POLL_MS);
    } else if (watching !== null) {
      watching = null;
      onChange();  // the check has just ended: new OSM data, new matches
    }
  }

  // ---- A submission's match, and correcting it ------------------------------------------

  function diffTable(diff) {
    const rows = [
      ...Object.entries(diff.added).map(([key, value]) => [key, t("osm_absent"), value, "added"]),
      ...Object.entries(diff.changed).map(([key, [before, after]]) => [key, before, after, "changed"]),
    ];
    if (!rows.length) return "";
    return element("table", { class: "osm-diff" }, element("caption", { text: t("osm_diff") }),
      element("tr", {}, ...[t("osm_key"), t("osm_in_osm"), t("osm_surveyed")].map((text) => element("th", { text }))),
      ...rows.map(([key, before, after, kind]) => element("tr", { class: kind },
        element("th", { text: key }), element("td", { class: "before", text: before }),
        element("td", { class: "after", text: after }))));
  }

  async function correct(submission, method, body) {
    try {
      const detail = await call(method, `${base}/submissions/${submission.id}/match`, body);
      choices.clearLayers();
      onDetail(detail);
      onChange();
    } catch (error) {
      onDetail(submission, error.message);
    }
  }

  async function showCandidates(submission) {
    const holder = $("#osm-candidates");
    let data;
    try {
      data = await call("GET", `${base}/submissions/${submission.id}/candidates`);
    } catch (error) {
      holder.replaceChildren(element("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    choices.clearLayers();
    if (!data.candidates.length) {
      holder.replaceChildren(element("p", { class: "hint",
        text: t("osm_no_candidates", { r: Math.round(data.radius_m) }) }));
      return;
    }
    const pick = (candidate) => correct(submission, "POST", { osm_type: candidate.osm_type, osm_id: candidate.osm_id });
    holder.replaceChildren(element("ol", { class: "osm-candidates" }, ...data.candidates.map((candidate, index) => {
      const marker = L.circleMarker([candidate.lat, candidate.lon], {
        radius: 8, weight: 3, color: CANDIDATE_COLOUR, fillOpacity: 0, className: "osm-candidate" });
      marker.bindTooltip(String(index + 1), { permanent: true, direction: "top" });
      marker.on("click", () => pick(candidate));
      choices.addLayer(marker);
      const summary = candidate.tags.name ?? Object.entries(candidate.tags).slice(0, 3)
        .map(([key, value]) => `${key}=${value}`).join(", ");
      const button = element("button", { type: "button", class: "primary", text: t("osm_pick") });
      button.addEventListener("click", () => pick(candidate));
      return element("li", { class: candidate.matched ? "current" : "" },
        element("span", { text: `${candidate.osm_type}/${candidate.osm_id} · ${when.decimal(candidate.distance_m, 1)} m · ${summary}` }),
        candidate.same_kind ? "" : element("span", { class: "hint", text: ` (${t("osm_other_kind")})` }),
        " ", button);
    })));
  }

  // Why conflation decided so, in plain words, from what it kept (`explanation`, whose costs
  // osm/assignment.py defines); "" for a match set by hand or kept before explanations.
  function whyText(match) {
    const why = match.explanation;
    if (!why) return "";
    const metres = (value) => when.decimal(value, 1);
    const rival = () => (why.runner_up === "new" ? t("osm_why_rival_new") : t("osm_why_rival_at", {
      rival: `${why.runner_up.osm_type}/${why.runner_up.osm_id}`, d: metres(why.runner_up_distance_m) }));
    if (match.outcome === "duplicate") return t("osm_why_duplicate", { d: metres(why.distance_m) });
    if (match.outcome === "new") {
      return why.runner_up && why.runner_up !== "new" ? t("osm_why_new_far", { rival: rival() }) : t("osm_why_new");
    }
    const parts = [why.accuracy_m === null ? t("osm_why_at_unknown", { d: metres(why.distance_m) })
      : t("osm_why_at", { d: metres(why.distance_m), a: when.decimal(why.accuracy_m, 0) })];
    if (why.agree) parts.push(t("osm_why_agree", { n: why.agree }));
    if (why.contradict) parts.push(t("osm_why_contradict", { n: why.contradict }));
    if (why.shared) parts.push(t("osm_why_shared"));
    else if (match.outcome === "ambiguous" && why.runner_up) parts.push(t("osm_why_ambiguous", { rival: rival() }));
    else if (why.runner_up && why.runner_up !== "new") parts.push(t("osm_why_next", { rival: rival() }));
    return parts.join(t("osm_why_and"));
  }

  function matchSection(submission) {
    const match = submission.osm_match;
    const section = element("section", { class: "osm-match", id: "osm-match" },
      element("h3", { text: t("osm_match") }));
    if (submission.in_osm_id) {
      // Uploaded: the point is this element of OpenStreetMap now.
      section.append(element("p", { class: "in-osm", id: "in-osm" }, t("osm_uploaded_as"), " ",
        osmLink(submission.in_osm_type, submission.in_osm_id)));
    }
    if (!match) {
      section.append(element("p", { class: "hint", text: t("osm_not_checked") }));
    } else {
      const facts = [t(`outcome_${match.outcome}`)];
      if (match.distance_m !== null) facts.push(t("osm_distance", { d: when.decimal(match.distance_m, 1) }));
      if (match.overridden_by) facts.push(t("osm_overridden_by", { who: match.overridden_by }));
      section.append(element("p", { class: `outcome ${match.outcome}`, style: coloured(match.outcome),
        text: facts.join(" · ") }));
      const why = whyText(match);
      if (why) section.append(element("p", { class: "osm-why", text: why }));
      if (match.tag_diff) section.append(diffTable(match.tag_diff));
      if (match.duplicate_of) section.append(element("p", { class: "hint", text: `${t("osm_duplicate_of")} ${match.duplicate_of}` }));
      if (match.osm_type && match.osm_id) section.append(element("p", {}, osmLink(match.osm_type, match.osm_id)));
    }
    const button = (label, id, action) => actionButton(label, id, action, false);
    section.append(element("div", { class: "row" },
      button(t("osm_choose"), "osm-choose", () => showCandidates(submission)),
      button(t("osm_mark_new"), "osm-mark-new", () => correct(submission, "POST", { outcome: "new" })),
      match && match.overridden_by ? button(t("osm_undo"), "osm-undo", () => correct(submission, "DELETE")) : ""),
    element("div", { id: "osm-candidates" }));
    return section;
  }

  return {
    loadLayer,
    loadPanel,
    matchSection,
    clearChoices: () => choices.clearLayers(),
    stop: () => clearTimeout(pollTimer),
  };
}
