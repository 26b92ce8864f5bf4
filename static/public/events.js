// The public map of events: one marker per listed event, its popup leading to the event's
// join page or its restitution. Names are set as text, never as HTML.
/* global L */
import { element } from "../walker/form.js";
import { translator } from "../walker/i18n.js";

const container = document.getElementById("events-map");
const state = JSON.parse(container.dataset.state);
const t = translator(state.messages, state.lang);

function popup(event) {
  const links = [];
  if (event.join_url) links.push(element("a", { href: event.join_url, text: t("ev_join") }));
  if (event.restitution_url) {
    links.push(element("a", { href: event.restitution_url, text: t("ev_restitution") }));
  }
  return element("div", { class: "event-popup" },
    element("h3", { text: event.name }),
    element("p", { text: `${t(`ev_${event.status}`)}${event.when ? ` · ${event.when}` : ""}` }),
    ...links.map((link) => element("p", {}, link)));
}

const map = L.map(container, { scrollWheelZoom: false });
L.tileLayer(state.tiles.url, { attribution: state.tiles.attribution, maxZoom: 19 }).addTo(map);
const markers = L.featureGroup(state.features.map((feature) => {
  const [lon, lat] = feature.geometry.coordinates;
  const icon = L.divIcon({ className: `event-marker ${feature.properties.status}`, iconSize: [18, 18] });
  return L.marker([lat, lon], { icon, title: feature.properties.name, alt: feature.properties.name })
    .bindPopup(() => popup(feature.properties));
})).addTo(map);
if (markers.getLayers().length) map.fitBounds(markers.getBounds(), { padding: [30, 30], maxZoom: 14 });
else map.setView([46.6, 2.4], 5);
