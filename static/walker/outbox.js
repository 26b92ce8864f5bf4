// The outbox: every point a walker saves is first written to IndexedDB, then sent to the
// server until the server has it. Nothing leaves the outbox before the server said yes, so a
// reload, a closed tab, a sleeping phone or a failing server loses nothing; the API is
// idempotent on client_id, so sending twice never stores twice.

const DB_NAME = "cartoparty";
const STORE = "outbox";
const MAX_DELAY_MS = 5 * 60 * 1000;
// New points go by the batch route, this many per request (the server's limit).
const BATCH_SIZE = 50;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDatabase() {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => {
    const store = req.result.createObjectStore(STORE, { keyPath: "client_id" });
    store.createIndex("slug", "slug");
  };
  return request(req);
}

// Run fn(store) in a transaction; resolve with fn's result once the transaction is durable.
async function transaction(mode, fn) {
  const db = await openDatabase();
  try {
    const tx = db.transaction(STORE, mode, { durability: "strict" });
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
    const result = await fn(tx.objectStore(STORE));
    await done;
    return result;
  } finally {
    db.close();
  }
}

// The API's error ({code, field, message, params}), kept whole so that the walker reads it
// in their language; a made-up one when the answer carried none.
function refusal(answer, status) {
  const error = answer && answer.error;
  if (error && typeof error === "object" && typeof error.code === "string") return error;
  return { code: `http_${status}`, field: null, params: {},
    message: typeof error === "string" ? error : `HTTP ${status}` };
}

function backoff(attempts) {
  const delay = Math.min(MAX_DELAY_MS, 2000 * 2 ** attempts);
  return delay * (0.5 + Math.random() / 2);
}

export class Outbox {
  // api(method, path, body) returns a fetch Response; it is given the walker's token.
  constructor(slug, api) {
    this.slug = slug;
    this.api = api;
    this.listeners = new Set();
    this.sending = false;
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  async changed(detail) {
    const records = await this.all();
    for (const listener of this.listeners) listener(records, detail);
  }

  all() {
    return transaction("readonly", (store) => request(store.index("slug").getAll(this.slug)));
  }

  get(clientId) {
    return transaction("readonly", (store) => request(store.get(clientId)));
  }

  async put(record) {
    await transaction("readwrite", (store) => request(store.put(record)));
  }

  // A new point: kept as "create" until the server has it. Saved again (the same form saved
  // twice), it replaces itself: the record's key is the client_id the form was opened with.
  async saveNew(body, photos) {
    await this.put({
      client_id: body.client_id, slug: this.slug, op: "create", body, photos,
      state: "waiting", error: null, attempts: 0, next_at: 0, saved_at: Date.now(),
    });
    await this.changed();
    this.flush(true);
  }

  // A correction: folded into a waiting creation, else sent as an update.
  async saveEdit(clientId, body, newPhotos) {
    const waiting = await this.get(clientId);
    const op = waiting && waiting.op === "create" ? "create" : "update";
    const keptBody = op === "create" ? { ...body, client_id: clientId,
      observed_at: waiting.body.observed_at } : body;
    await this.put({
      client_id: clientId, slug: this.slug, op, body: keptBody,
      photos: [...(waiting ? waiting.photos : []), ...newPhotos],
      state: "waiting", error: null, attempts: 0, next_at: 0,
      saved_at: waiting ? waiting.saved_at : Date.now(),
    });
    await this.changed();
    this.flush(true);
  }

  // A deletion is always sent: a creation whose answer was lost may be on the server.
  async saveDelete(clientId) {
    await this.put({
      client_id: clientId, slug: this.slug, op: "delete", body: null, photos: [],
      state: "waiting", error: null, attempts: 0, next_at: 0, saved_at: Date.now(),
    });
    await this.changed();
    this.flush(true);
  }

  async discard(clientId) {
    await transaction("readwrite", (store) => request(store.delete(clientId)));
    await this.changed();
  }

  // Send what waits. `now` ignores the backoff (page opened, network back, new point).
  async flush(now = false) {
    if (this.sending) {
      this.again = this.again || now;
      return;
    }
    this.sending = true;
    try {
      const run = () => this.sendAll(now);
      if (navigator.locks) await navigator.locks.request(`cartoparty-outbox-${this.slug}`, run);
      else await run();
    } finally {
      this.sending = false;
    }
    if (this.again !== undefined) {
      const again = this.again;
      this.again = undefined;
      this.flush(again);
    }
  }

  // A phone back online with 200 points sends them in seconds: new points go 50 per request
  // when more than one waits; corrections and deletions go one by one.
  async sendAll(now) {
    const records = (await this.all())
      .filter((r) => r.state === "waiting" && (now || r.next_at <= Date.now()))
      .sort((a, b) => a.saved_at - b.saved_at);
    const creations = records.filter((r) => r.op === "create");
    const batched = creations.length > 1 ? creations : [];
    for (let start = 0; start < batched.length; start += BATCH_SIZE) {
      const outcome = await this.sendBatch(batched.slice(start, start + BATCH_SIZE));
      if (outcome === "stop") return;
    }
    for (const record of records.filter((r) => !batched.includes(r))) {
      const outcome = await this.sendOne(record);
      if (outcome === "stop") break;
    }
  }

  // New points in one request, answered point by point; returns "done" or "stop".
  async sendBatch(records) {
    const path = `/api/events/${encodeURIComponent(this.slug)}/submissions/batch`;
    let response;
    let answer = null;
    try {
      response = await this.api("POST", path, { submissions: records.map((r) => r.body) });
      if (response.ok) answer = await response.json();
    } catch (error) {
      response = null;  // no network, or the server did not answer (in full)
    }
    if (response && response.status === 401) {
      await this.changed({ unauthorised: true });
      return "stop";
    }
    if (answer && Array.isArray(answer.results)) {
      const results = new Map(answer.results.map((result) => [result.client_id, result]));
      for (const record of records) {
        if (await this.settle(record, results.get(record.client_id)) === "stop") return "stop";
      }
      return "done";
    }
    // A server without batches, or one refusing this request whole: one point at a time.
    if (response && response.status >= 400 && response.status < 500 && response.status !== 429) {
      for (const record of records) {
        if (await this.sendOne(record) === "stop") return "stop";
      }
      return "done";
    }
    await this.later(records);
    return "stop";  // the network or the server is down: try the rest later
  }

  // One point's result in a batch: sent (then its photos), refused, or to be corrected.
  async settle(record, result) {
    const status = result ? result.status : null;
    if (status === 409) return this.sendOne(record);  // sendBody makes the correction
    if (status === 200 || status === 201) {
      try {
        await this.sendPhotos(record);
      } catch (error) {
        await this.later([record]);
        return "stop";
      }
      await transaction("readwrite", (store) => request(store.delete(record.client_id)));
      await this.changed({ sent: record.client_id, op: "create", stored: result.submission });
      return "done";
    }
    if (status >= 400 && status < 500) {
      await this.put({ ...record, state: "refused", error: refusal(result, status) });
      await this.changed();
      return "refused";
    }
    await this.later([record]);  // no answer for it: sent again with the next batch
    return "done";
  }

  // Records the server could not take now, tried again together after one backoff.
  async later(records) {
    const delay = backoff(Math.max(...records.map((r) => r.attempts)));
    await transaction("readwrite", (store) => Promise.all(records.map((record) => request(
      store.put({ ...record, attempts: record.attempts + 1, next_at: Date.now() + delay })))));
    await this.changed();
  }

  // One record to the server; returns "done", "refused", "retry" or "stop".
  async sendOne(record) {
    let response;
    try {
      response = await this.sendBody(record);
      if (response.ok || (record.op === "delete" && response.status === 404)) {
        if (record.op !== "delete") await this.sendPhotos(record);
        await transaction("readwrite", (store) => request(store.delete(record.client_id)));
        await this.changed({ sent: record.client_id, op: record.op,
          stored: record.op !== "delete" && response.status !== 204 ? await response.json() : null });
        return "done";
      }
    } catch (error) {
      response = null;  // no network, or the server did not answer
    }
    if (response && response.status === 401) {
      await this.changed({ unauthorised: true });
      return "stop";
    }
    if (response && response.status >= 400 && response.status < 500 && response.status !== 429) {
      const answer = await response.json().catch(() => ({}));
      await this.put({ ...record, state: "refused", error: refusal(answer, response.status) });
      await this.changed();
      return "refused";
    }
    await this.later([record]);
    return "stop";  // the network or the server is down: try the rest later
  }

  async sendBody(record) {
    const path = `/api/events/${encodeURIComponent(this.slug)}/submissions`;
    const one = `${path}/${record.client_id}`;
    if (record.op === "delete") return this.api("DELETE", one);
    if (record.op === "update") return this.api("PUT", one, record.body);
    const response = await this.api("POST", path, record.body);
    // 409: the first send reached the server but its answer was lost, and the walker has
    // corrected the point since; the correction is ours to make.
    if (response.status === 409) {
      const { client_id: _, observed_at: __, ...correction } = record.body;
      return this.api("PUT", one, correction);
    }
    return response;
  }

  async sendPhotos(record) {
    const path = `/api/events/${encodeURIComponent(this.slug)}/submissions/${record.client_id}/photos`;
    const remaining = [...record.photos];
    while (remaining.length) {
      const form = new FormData();
      form.append("photo", remaining[0].blob, remaining[0].name || "photo.jpg");
      const response = await this.api("POST", path, form);
      if (!response.ok && [401, 429].includes(response.status) || response.status >= 500) {
        throw new Error(`photo upload answered ${response.status}`);
      }
      remaining.shift();  // sent, or refused for good (it is not an image we can keep)
      await this.put({ ...record, photos: remaining });
    }
  }
}
