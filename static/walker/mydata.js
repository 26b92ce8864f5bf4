// The walk screen's menu (☰) and its "My data" screen: what the event keeps about this walker, a
// download of all of it (a zip from the server) and erasing it. Both need the network; erasing
// also signs this phone out of the event and forgets what it kept of the walker (onErased).
import { errorText } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);

// api(method, path, body) as the app's; outbox the app's Outbox; pseudonym() the walker's;
// onOpen() closes what else is open; onErased() forgets the walker on this phone;
// onUnauthorised() asks them to join again.
export function createMyData({ slug, api, t, outbox, pseudonym, onOpen, onErased, onUnauthorised }) {
  const base = `/api/events/${encodeURIComponent(slug)}/me`;
  let fileUrl = null;

  function say(selector, text) {
    $(selector).textContent = text;
    $(selector).hidden = !text;
  }

  function showNetwork() {
    $("#mydata-offline").hidden = navigator.onLine;
  }

  function showMenu(shown) {
    $("#menu").hidden = !shown;
    $("#menu-open").setAttribute("aria-expanded", String(shown));
  }

  function open() {
    showMenu(false);
    onOpen();
    $("#mydata-pseudonym").textContent = pseudonym();
    say("#mydata-status", "");
    say("#mydata-error", "");
    closeConfirm();
    showNetwork();
    $("#mydata").hidden = false;
    $("#mydata-title").focus();
    outbox.flush(true);  // what can still be sent is sent before the walker decides
  }

  function close() {
    $("#mydata").hidden = true;
    if (fileUrl) URL.revokeObjectURL(fileUrl);
    fileUrl = null;
  }

  // A failed request: the walker's access refused, the network missing, or the server's reason.
  async function failed(response) {
    if (response === null) return say("#mydata-error", t("mydata_offline"));
    if (response.status === 401) {
      close();
      return onUnauthorised();
    }
    const answer = await response.json().catch(() => ({}));
    say("#mydata-error", errorText(t, answer.error, t("mydata_failed")));
  }

  async function send(method) {
    say("#mydata-error", "");
    try {
      return await api(method, method === "GET" ? `${base}/data` : base);
    } catch {
      return null;  // no network, or the server did not answer
    }
  }

  // The zip is fetched with the token (a plain link could not send it), then saved by a link
  // to its blob; the link stays on the screen for a second try.
  async function download() {
    say("#mydata-status", t("mydata_downloading"));
    const response = await send("GET");
    const blob = response && response.ok ? await response.blob().catch(() => null) : null;
    if (!blob) {
      say("#mydata-status", "");
      return failed(response && response.ok ? null : response);
    }
    if (fileUrl) URL.revokeObjectURL(fileUrl);
    fileUrl = URL.createObjectURL(blob);
    const link = $("#mydata-file");
    link.href = fileUrl;
    link.download = fileName(response.headers.get("Content-Disposition"), slug);
    link.hidden = false;
    link.click();
    say("#mydata-status", t("mydata_downloaded"));
  }

  async function askToErase() {
    say("#mydata-error", "");
    const unsent = (await outbox.all()).length;
    say("#mydata-unsent", unsent ? t("mydata_unsent", { n: unsent }) : "");
    $("#mydata-confirm").hidden = false;
    $("#mydata-erase").hidden = true;
    $("#mydata-confirm-title").focus();
  }

  function closeConfirm() {
    $("#mydata-confirm").hidden = true;
    $("#mydata-erase").hidden = false;
  }

  // Under the outbox's own lock (outbox.js): no point is on its way while the walker is erased
  // and the phone's outbox emptied, so none comes back as "waiting" afterwards.
  async function erase() {
    $("#mydata-erase-yes").disabled = true;
    const run = async () => {
      const response = await send("DELETE");
      if (!response || !response.ok) return response;
      for (const record of await outbox.all()) await outbox.discard(record.client_id);
      return response;
    };
    const response = navigator.locks
      ? await navigator.locks.request(`cartoparty-outbox-${slug}`, run) : await run();
    $("#mydata-erase-yes").disabled = false;
    if (!response || !response.ok) return failed(response);
    close();
    onErased();
  }

  $("#menu-open").addEventListener("click", () => showMenu($("#menu").hidden));
  $("#mydata-open").addEventListener("click", open);
  $("#mydata-back").addEventListener("click", close);
  $("#mydata-download").addEventListener("click", download);
  $("#mydata-erase").addEventListener("click", askToErase);
  $("#mydata-cancel").addEventListener("click", closeConfirm);
  $("#mydata-erase-yes").addEventListener("click", erase);
  window.addEventListener("online", showNetwork);
  window.addEventListener("offline", showNetwork);
  return { showMenu };
}

// The file name the server gave (Content-Disposition), else one made from the event's slug.
function fileName(disposition, slug) {
  const match = /filename="?([^";]+)"?/.exec(disposition || "");
  return match ? match[1] : `${slug}-my-data.zip`;
}
