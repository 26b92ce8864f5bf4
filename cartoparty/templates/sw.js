// cartoparty's service worker: keeps the walker app (page, scripts, Leaflet) so that it opens
// and records with no network. Points themselves wait in IndexedDB (static/walker/outbox.js).
// Map tiles are not prefetched (OpenStreetMap's tile usage policy).
const VERSION = "{{ version }}";
const CACHE = `cartoparty-${VERSION}`;
const SHELL = {{ shell|safe }};
const PAGE_TIMEOUT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name.startsWith("cartoparty-") && name !== CACHE)
      .map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

// The page asks to keep its own address (an event's page, /e/<slug>).
self.addEventListener("message", (event) => {
  const path = event.data && event.data.keep;
  if (typeof path === "string" && path.startsWith("/e/")) {
    event.waitUntil(caches.open(CACHE).then((cache) => cache.add(path)).catch(() => {}));
  }
});

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), ms))]);
}

// Network first, so that walkers see the event as it is now; the kept copy when offline.
async function pageFromNetworkOrCache(request) {
  const url = new URL(request.url);
  const cache = await caches.open(CACHE);
  try {
    const response = await withTimeout(fetch(request), PAGE_TIMEOUT_MS);
    if (response.ok) await cache.put(url.pathname, response.clone());
    return response;
  } catch (error) {
    const kept = await cache.match(url.pathname);
    if (kept) return kept;
    throw error;
  }
}

async function fromCacheOrNetwork(request) {
  const kept = await caches.match(request, { ignoreSearch: true });
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok) {
    const cache = await caches.open(CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/e/")) event.respondWith(pageFromNetworkOrCache(request));
  else if (url.pathname.startsWith("/static/") || url.pathname.startsWith("/vendor/")) {
    event.respondWith(fromCacheOrNetwork(request));
  }
});
