// The feedback form at the end of the event: the server says when to ask (the event is over,
// or its restitution is out) and whether this walker already answered.
import { errorText } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);

// api(method, path, body) as the app's; onOpen closes what else is open; onUnauthorised asks
// the walker to join again; toast says a short message.
export function createFeedback({ slug, api, t, onOpen, onUnauthorised, toast }) {
  const url = `/api/events/${encodeURIComponent(slug)}/feedback`;

  async function offer() {
    let answer;
    try {
      const response = await api("GET", url);
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

  function open() {
    onOpen();
    $("#feedback-banner").hidden = true;
    $("#feedback-error").textContent = "";
    $("#feedback-sheet").hidden = false;
    $("#add").hidden = true;
  }

  function close(answered) {
    $("#feedback-sheet").hidden = true;
    $("#add").hidden = false;
    if (!answered) offer();
  }

  async function send() {
    const error = $("#feedback-error");
    error.textContent = "";
    const comeAgain = document.querySelector('input[name="come_again"]:checked');
    if (!comeAgain) {
      error.textContent = t("fb_choose_come_again");
      return;
    }
    let response;
    try {
      response = await api("POST", url, { learnt: $("#fb-learnt").value,
        improve: $("#fb-improve").value, come_again: comeAgain.value, sign: $("#fb-sign").checked });
    } catch {
      error.textContent = t("fb_offline");
      return;
    }
    if (response.status === 401) return onUnauthorised();
    // 409: this walker had already answered (from another tab, say): nothing is lost.
    if (response.status === 201 || response.status === 409) {
      close(true);
      toast(t("fb_thanks"));
      return;
    }
    const answer = await response.json().catch(() => ({}));
    error.textContent = errorText(t, answer.error, t("fb_failed"));
  }

  $("#feedback-open").addEventListener("click", open);
  $("#feedback-cancel").addEventListener("click", () => close(false));
  $("#feedback-send").addEventListener("click", send);
  return { offer };
}
