// The point form, built from a preset's fields (presets are data: cartoparty/presets/*.json).
// Everything a walker typed stays text: values go into inputs, never into HTML.

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
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
  return element("div", { class: "toggles", role: "radiogroup", "data-key": field.key },
    choice("yes", t("yes")), choice("no", t("no")), choice("", t("dont_know")));
}

function control(field, value, lang, t) {
  const id = `f-${field.key}`;
  if (field.type === "yes-no") return yesNo(field, value, t);
  if (field.type === "select") {
    return element("select", { id, "data-key": field.key },
      element("option", { value: "", text: t("dont_know") }),
      ...field.options.map((option) => element("option",
        { value: option.value, selected: option.value === value, text: option.label[lang] })));
  }
  const input = element("input", {
    id, "data-key": field.key, type: field.type === "number" ? "number" : "text",
    inputmode: field.type === "number" ? "decimal" : null, step: field.type === "number" ? "any" : null,
    min: field.min, max: field.max, maxlength: 255, placeholder: field.placeholder,
    autocomplete: "off",
  });
  input.value = value || "";
  if (field.type === "opening_hours") {
    return element("div", {}, input, openingHoursHelper(input, t));
  }
  if (field.unit) return element("div", { class: "with-unit" }, input, element("span", { text: field.unit }));
  return input;
}

// Fill `container` with the preset's questions; returns a function reading the answers as tags.
export function buildForm(container, preset, tags, lang, t) {
  container.replaceChildren(...preset.fields.map((field) => element("div", { class: "field" },
    element("label", { for: `f-${field.key}`, text: field.label[lang] }),
    control(field, tags[field.key], lang, t))));
  return () => {
    const answers = {};
    for (const field of preset.fields) {
      let value;
      if (field.type === "yes-no") {
        const checked = container.querySelector(`[data-key="${CSS.escape(field.key)}"] input:checked`);
        value = checked ? checked.value : "";
      } else {
        value = container.querySelector(`[data-key="${CSS.escape(field.key)}"]`).value.trim();
      }
      if (value) answers[field.key] = value;
    }
    return answers;
  };
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
