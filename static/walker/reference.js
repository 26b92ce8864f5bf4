// The event's reference dataset (a town's defibrillators, trees…) as the walker's map shows it:
// rows "to check", each with its title, position and the OSM tags its fields say. The last
// answer of GET /api/events/<slug>/reference.geojson is kept in localStorage, so that the
// markers are there offline. A walker's verdict on a row is a point like any other, naming
// the row (`reference`) and what they found (`verdict`); it goes through the outbox.

// A new point of the dataset's preset this close to a row may be that row (metres).
export const NEARBY_M = 30;
// Further than this from its row, the walker's point says the row has moved (metres).
export const MOVED_M = 10;
const EARTH_RADIUS_M = 6371008.8;

export class ReferenceRows {
  // api(method, path) returns a fetch Response; onUnauthorised() is called on a 401.
  constructor(slug, api, onUnauthorised) {
    this.url = `/api/events/${encodeURIComponent(slug)}/reference.geojson`;
    this.api = api;
    this.onUnauthorised = onUnauthorised;
    this.key = `cartoparty:${slug}:reference`;
    this.kept = localStorage.getItem(this.key);
    this.collection = this.kept ? JSON.parse(this.kept) : null;
    this.loading = null;
  }

  // The dataset's preset id, or null when the event has no dataset.
  preset() {
    return this.collection ? this.collection.preset : null;
  }

  // The rows as {id, source_id, title, tags, checked, lat, lon} (WGS84 degrees).
  rows() {
    if (!this.collection) return [];
    return this.collection.features.map((feature) => {
      const [lon, lat] = feature.geometry.coordinates;
      return { ...feature.properties, lat, lon };
    });
  }

  row(id) {
    return this.rows().find((row) => row.id === id) || null;
  }

  // The verdict `point` gives ({row, verdict}, the row as last seen, else made of the point
  // and `title`), or null for a plain point.
  checkOf(point, title) {
    if (!point.verdict) return null;
    const row = this.row(point.reference)
      || { id: point.reference, title, tags: null, lat: point.lat, lon: point.lon };
    return { row, verdict: point.verdict };
  }

  // The walker leaves the event: the dataset (for members only) leaves the phone too.
  forget() {
    this.kept = null;
    this.collection = null;
    localStorage.removeItem(this.key);
  }

  // Ask the server again; resolves to whether the rows changed (false offline: the last
  // answer stays). One request at a time.
  load() {
    if (!this.loading) this.loading = this.fetchRows().finally(() => { this.loading = null; });
    return this.loading;
  }

  async fetchRows() {
    let text;
    try {
      const response = await this.api("GET", this.url);
      if (response.status === 401) {
        this.onUnauthorised();
        return false;
      }
      if (!response.ok) return false;
      text = await response.text();
      JSON.parse(text);
    } catch {
      return false;  // offline, or an answer cut short
    }
    if (text === this.kept) return false;
    localStorage.setItem(this.key, text);
    this.kept = text;
    this.collection = JSON.parse(text);
    return true;
  }
}

// The distance in metres between two positions in WGS84 degrees (haversine).
export function distanceM(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2
    + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

// {row id: verdict} of the walker's own verdicts among `points` (the map's merged points): a
// verdict the organisers rejected no longer counts as a check.
export function myVerdicts(points) {
  return new Map(points.filter((point) => point.mine && point.reference != null && point.verdict
    && point.state !== "rejected").map((point) => [point.reference, point.verdict]));
}

// A row's tags without the preset's own: the form's answers compare with these (the server
// adds the preset's tags to every point).
export function ownTags(tags, preset) {
  return Object.fromEntries(Object.entries(tags || {}).filter(([key]) => !(preset && key in preset.tags)));
}

export function sameTags(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

// The closest row within NEARBY_M of `lat`, `lon` (WGS84 degrees) that the walker has not
// checked yet, with its distance in metres: {row, distance}, or null.
export function nearestUnchecked(rows, checked, lat, lon) {
  let best = null;
  for (const row of rows) {
    if (checked.has(row.id)) continue;
    const distance = distanceM(lat, lon, row.lat, row.lon);
    if (distance <= NEARBY_M && (!best || distance < best.distance)) best = { row, distance };
  }
  return best;
}

// A verdict "as described" whose answers the walker changed says that the row is different.
export function editedVerdict({ row, verdict }, tags, preset) {
  if (verdict !== "confirmed" || !row.tags) return verdict;
  return sameTags(tags, ownTags(row.tags, preset)) ? verdict : "different";
}

// What a point recorded at `lat`, `lon` with `tags` (without the preset's) says of `row`.
export function verdictOf(row, tags, lat, lon, preset) {
  if (distanceM(lat, lon, row.lat, row.lon) > MOVED_M) return "moved";
  return sameTags(tags, ownTags(row.tags, preset)) ? "confirmed" : "different";
}
