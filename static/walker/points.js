// The server's points as this walker sees them (their own, and others' approved ones), kept on
// the phone in localStorage so that the map shows them offline. After the first answer only
// what changed is asked for: the server's cursor is kept beside the points and sent as
// `since`; an answer lists the features that changed and the client_ids that left (`removed`).

export class ServerPoints {
  // api(method, path) returns a fetch Response; onUnauthorised() is called on a 401.
  constructor(slug, api, onUnauthorised) {
    this.url = `/api/events/${encodeURIComponent(slug)}/submissions.geojson`;
    this.api = api;
    this.onUnauthorised = onUnauthorised;
    this.pointsKey = `cartoparty:${slug}:points`;
    this.cursorKey = `cartoparty:${slug}:cursor`;
    this.points = new Map(JSON.parse(localStorage.getItem(this.pointsKey) || "[]")
      .map((point) => [point.client_id, point]));
    this.loading = null;
  }

  all() {
    return [...this.points.values()];
  }

  keep() {
    localStorage.setItem(this.pointsKey, JSON.stringify(this.all()));
  }

  // Another walker on this phone (joined again): which points are "mine" changes.
  forget() {
    this.points = new Map();
    localStorage.removeItem(this.pointsKey);
    localStorage.removeItem(this.cursorKey);
  }

  // Fold an answer into the kept points. An answer without `complete` comes from a server that
  // ignores `since`: it holds every point.
  apply(collection) {
    if (collection.complete !== false) this.points = new Map();
    for (const clientId of collection.removed || []) this.points.delete(clientId);
    for (const feature of collection.features) {
      const [lon, lat] = feature.geometry.coordinates;
      this.points.set(feature.properties.client_id, { ...feature.properties, lon, lat });
    }
    this.keep();
    if (collection.cursor) localStorage.setItem(this.cursorKey, collection.cursor);
    else localStorage.removeItem(this.cursorKey);
  }

  // Ask what changed; true when the kept points changed.
  async fetchChanges() {
    const cursor = localStorage.getItem(this.cursorKey);
    const response = await this.api("GET", cursor ? `${this.url}?since=${encodeURIComponent(cursor)}`
      : this.url);
    if (response.status === 401) {
      this.onUnauthorised();
      return false;
    }
    if (!response.ok) {
      if (!cursor || response.status >= 500) return false;
      localStorage.removeItem(this.cursorKey);  // a cursor the server no longer takes
      return this.fetchChanges();
    }
    this.apply(await response.json());
    return true;
  }

  // One request at a time; asked again meanwhile, one more follows. Resolves to whether the
  // kept points changed (false offline: the last copy stays).
  async load() {
    if (this.loading) {
      this.loading.again = true;
      return false;
    }
    this.loading = { again: false };
    let changed = false;
    try {
      changed = await this.fetchChanges();
    } catch {
      // offline, or the server did not answer
    }
    const again = this.loading.again;
    this.loading = null;
    return again ? (await this.load()) || changed : changed;
  }

  // The outbox's news of a point sent: the server answered with the point as stored, shown at
  // once rather than after the next changes.
  remember({ sent, op, stored }) {
    if (op === "delete") this.points.delete(sent);
    else if (stored) this.points.set(sent, { ...stored, mine: true });
    this.keep();
  }
}
