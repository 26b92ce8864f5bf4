// The point form, built from a preset's fields (presets are data: cartoparty/presets/*.json).
// Everything a walker typed stays text: values go into inputs, never into HTML.
import { errorText } from "./i18n.js";

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    // Through the CSSOM: a style attribute is refused by the Content-Security-Policy.
    else if (name === "style") node.style.cssText = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

const DAYS = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];

// A small helper that writes opening_hours rules such as "Mo-Fr 08:30-18:00".
function openingHoursHelper(input, t) {
  const from = element("select", { "aria-label": t("oh_from_day") },
    ...DAYS.map((day) => element("option", { value: day, text: t(`day_${day}`) })));
  const to = element("select", { "aria-label": t("oh_to_day") },
    ...DAYS.map((day) => element("option", { value: day, text: t(`day_${day}`) })));
  to.value = "Fr";
  const opens = element("input", { type: "time", value: "09:00", "aria-label": t("oh_opens") });
  const closes = element("input", { type: "time", value: "18:00", "aria-label": t("oh_closes") });
  const add = element("button", { type: "button", class: "chip", text: t("oh_add") });
  add.addEventListener("click", () => {
    const days = from.value === to.value ? from.value : `${from.value}-${to.value}`;
    const rule = `${days} ${opens.value}-${closes.value}`;
    input.value = input.value.trim() ? `${input.value.trim()}; ${rule}` : rule;
  });
  const always = element("button", { type: "button", class: "chip", text: t("oh_always") });
  always.addEventListener("click", () => { input.value = "24/7"; });
  return element("div", { class: "oh-helper" },
    element("div", { class: "row" }, from, element("span", { text: "→" }), to),
    element("div", { class: "row" }, opens, element("span", { text: "–" }), closes, add),
    element("div", { class: "row" }, always));
}

function yesNo(field, value, t) {
  const name = `f-${field.key}`;
  const choice = (answer, label) => element("label", { class: "toggle" },
    element("input", { type: "radio", name, value: answer, checked: value === answer }),
    element("span", { text: label }));
  return element("div", { class: "toggles", role: "radiogroup", "data-key": field.key,
    "aria-describedby": `e-${field.key}` },
    choice("yes", t("yes")), choice("no", t("no")), choice("", t("dont_know")));
}

function control(field, value, { lang, t, limits }) {
  const id = `f-${field.key}`;
  if (field.type === "yes-no") return yesNo(field, value, t);
  if (field.type === "select") {
    return element("select", { id, "data-key": field.key, "aria-describedby": `e-${field.key}` },
      element("option", { value: "", text: t("dont_know") }),
      ...field.options.map((option) => element("option",
        { value: option.value, selected: option.value === value, text: option.label[lang] })));
  }
  const input = element("input", {
    id, "data-key": field.key, type: field.type === "number" ? "number" : "text",
    inputmode: field.type === "number" ? "decimal" : null, step: field.type === "number" ? "any" : null,
    min: field.min, max: field.max, maxlength: limits.value_length, placeholder: field.placeholder,
    autocomplete: "off", "aria-describedby": `e-${field.key}`,
  });
  input.value = value || "";
  if (field.type === "opening_hours") {
    return element("div", {}, input, openingHoursHelper(input, t));
  }
  if (field.unit) return element("div", { class: "with-unit" }, input, element("span", { text: field.unit }));
  return input;
}

function answerOf(container, field) {
  const node = container.querySelector(`[data-key="${CSS.escape(field.key)}"]`);
  if (field.type !== "yes-no") return node.value.trim();
  const checked = node.querySelector("input:checked");
  return checked ? checked.value : "";
}

// Fill `container` with the preset's questions. Returns the form: `read()` gives the answers as
// tags, `check()` what the server would refuse in them, `show(problems)` puts each problem
// under its question.
export function buildForm(container, preset, tags, { lang, t, limits }) {
  container.replaceChildren(...preset.fields.map((field) => element("div", { class: "field" },
    element("label", { for: `f-${field.key}`, text: field.label[lang] }),
    control(field, tags[field.key], { lang, t, limits }),
    element("p", { id: `e-${field.key}`, class: "error", "data-error-for": field.key, hidden: true }))));
  const read = () => Object.fromEntries(preset.fields
    .map((field) => [field.key, answerOf(container, field)]).filter(([, value]) => value));
  return {
    read,
    check: () => [...unreadableNumbers(container, preset, lang), ...checkTags(preset, read(), limits, lang)],
    show: (problems) => showProblems(container, preset, problems, t),
  };
}

// A number the browser could not read (say "12,5,"): its input's value is empty, so it would
// silently be dropped; the walker is told instead.
function unreadableNumbers(container, preset, lang) {
  return preset.fields.filter((field) => field.type === "number"
    && container.querySelector(`[data-key="${CSS.escape(field.key)}"]`).validity.badInput)
    .map((field) => problem("tag_not_number", field, lang));
}

function showProblems(container, preset, problems, t) {
  for (const field of preset.fields) {
    const found = problems.find((p) => p.field === `tags.${field.key}`);
    const slot = container.querySelector(`[data-error-for="${CSS.escape(field.key)}"]`);
    slot.textContent = found ? errorText(t, found) : "";
    slot.hidden = !found;
    const input = container.querySelector(`[data-key="${CSS.escape(field.key)}"]`);
    if (found) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// ---- The server's rules, before anything is saved ----------------------------------------
// The same rules as cartoparty/presets.py check_tags, with the limits it checks with (the
// event's `limits`) and the preset's fields; problems are {code, field, params} as the API
// names them, so that their texts are the catalog's `error.<code>`. Params name a question
// by its label, as the walker reads it.

const CONTROL = /[\u0000-\u001f\u007f]/;
// Lengths as Python counts them: in code points, not UTF-16 units.
const length = (text) => [...text].length;

function problem(code, field, lang, params = {}) {
  const key = typeof field === "string" ? field : field.key;
  const label = typeof field === "string" ? field : field.label[lang];
  return { code, field: `tags.${key}`, params: { key: label, ...params } };
}

// The server matches limits.number_pattern against the whole value (Python's fullmatch).
const whole = (pattern) => new RegExp(`^(?:${pattern})$`);

function valueProblem(field, value, limits) {
  if (field.type === "yes-no" && value !== "yes" && value !== "no") return ["tag_not_yes_no", {}];
  if (field.type === "select" && !field.options.some((option) => option.value === value)) {
    return ["tag_not_option", { options: field.options.map((option) => option.value).join(", ") }];
  }
  if (field.type !== "number") return null;
  if (!whole(limits.number_pattern).test(value)) return ["tag_not_number", {}];
  const number = Number(value);
  if (number < (field.min ?? -Infinity) || number > (field.max ?? Infinity)) {
    return ["tag_out_of_range", { min: field.min ?? "-∞", max: field.max ?? "∞" }];
  }
  return null;
}

function tagProblem(preset, field, key, value, limits) {
  if (length(key) > limits.key_length || !new RegExp(limits.key_pattern).test(key)) {
    return ["tag_key_invalid", { max: limits.key_length }];
  }
  if (!value.trim() || length(value) > limits.value_length) {
    return ["tag_value_invalid", { max: limits.value_length }];
  }
  if (CONTROL.test(value)) return ["tag_control_characters", {}];
  if (key in preset.tags && value.trim() !== preset.tags[key]) {
    return ["tag_fixed_by_preset", { value: preset.tags[key], preset: preset.id }];
  }
  return field ? valueProblem(field, value.trim(), limits) : null;
}

// What the server would refuse in a point's tags for `preset`.
export function checkTags(preset, tags, limits, lang) {
  const entries = Object.entries(tags);
  if (entries.length > limits.tags) {
    return [{ code: "too_many_tags", field: "tags", params: { max: limits.tags } }];
  }
  const fields = new Map(preset.fields.map((field) => [field.key, field]));
  const problems = [];
  for (const [key, value] of entries) {
    const found = tagProblem(preset, fields.get(key), key, value, limits);
    if (found) problems.push(problem(found[0], fields.get(key) || key, lang, found[1]));
  }
  for (const field of preset.fields) {
    if (field.required && !(field.key in tags)) problems.push(problem("tag_required", field, lang));
  }
  return problems;
}

// What the server would refuse in a point's note.
export function checkNote(note, limits) {
  return length(note) > limits.note_length
    ? [{ code: "note_too_long", field: "note", params: { max: limits.note_length } }] : [];
}

// A photo made smaller on the phone (weak networks) and re-drawn, which also drops its EXIF.
export async function shrinkPhoto(file, maxSide = 2048) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  return { blob, name: "photo.jpg" };
}

export { element };
