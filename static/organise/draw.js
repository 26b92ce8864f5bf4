// Drawing an event's zone or a team's sector on a map: tap the corners, then "Finish".
// The polygon goes into the form's hidden field as GeoJSON as soon as a corner is tapped, even
// with too few corners: the server then says what is wrong (organise.read_outline) instead of
// the form going without the outline the organiser meant to draw.
/* global L */

function setUp(container) {
  const tiles = JSON.parse(container.dataset.tiles);
  const zone = JSON.parse(container.dataset.zone || "null");
  const map = L.map(container);
  L.tileLayer(tiles.url, { attribution: tiles.attribution, maxZoom: 19 }).addTo(map);
  if (zone) {
    const outline = L.geoJSON(zone, { style: { color: "#0b5d1e", weight: 2, fillOpacity: 0.05 } }).addTo(map);
    map.fitBounds(outline.getBounds());
  } else {
    map.setView([46.6, 2.4], 5);  // France, until the organiser zooms to their town
  }
  return map;
}

// The corners as a GeoJSON Polygon ([lon, lat] in WGS84 degrees, the ring closed).
function polygon(corners) {
  const ring = corners.map((c) => [Number(c.lng.toFixed(7)), Number(c.lat.toFixed(7))]);
  return JSON.stringify({ type: "Polygon", coordinates: [[...ring, ring[0]]] });
}

function drawingTool(map, tools, input) {
  let corners = [];
  let drawing = false;
  const line = L.polyline([], { color: "#b34700", weight: 3 }).addTo(map);
  const shape = L.polygon([], { color: "#b34700", weight: 3, fillOpacity: 0.15 }).addTo(map);
  const show = () => {
    line.setLatLngs(drawing ? corners : []);
    shape.setLatLngs(drawing ? [] : corners);
    input.value = corners.length ? polygon(corners) : "";
  };
  map.on("click", (clicked) => {
    if (!drawing) return;
    corners.push(clicked.latlng);
    show();
  });
  tools.addEventListener("click", (clicked) => {
    const action = clicked.target.dataset.draw;
    if (!action) return;  // between the buttons: the outline already typed or sent stays
    if (action === "start") {
      corners = [];
      drawing = true;
      map.getContainer().classList.add("drawing");
    } else if (action === "undo") {
      corners.pop();
    } else if (action === "finish") {
      drawing = false;
      map.getContainer().classList.remove("drawing");
    }
    show();
  });
}

for (const tools of document.querySelectorAll(".draw-tools")) {
  const target = tools.dataset.for;
  const container = document.getElementById(`${target}-map`);
  const map = setUp(container);
  if (target === "sector") {
    for (const team of document.querySelectorAll("[data-sector]")) {
      const sector = JSON.parse(team.dataset.sector);
      if (sector) L.geoJSON(sector, { style: { color: "#0d47a1", dashArray: "6 4", weight: 2 } }).addTo(map);
    }
  }
  drawingTool(map, tools, document.getElementById(target));
}
