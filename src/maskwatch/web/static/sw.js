// maskwatch's service worker: keeps the page, ONNX Runtime Web, the on-device models and their settings,
// so the page opens and the on-device mode runs without a network once it has been loaded.
// Server-side detection (/v1/detect, /v1/live, jobs) is never cached: it needs the server.
"use strict";

const CACHE = "maskwatch-v1";
const SHELL = [
  "/",
  "/static/style.css",
  "/static/app.js",
  "/static/ondevice.js",
  "/static/ondevice-page.js",
  "/manifest.webmanifest",
  "/static/icon.svg",
  "/static/vendor/ort.wasm.min.js",
  "/static/vendor/ort-wasm-simd-threaded.mjs",
  "/static/vendor/ort-wasm-simd-threaded.wasm",
  "/v1/ondevice",
  "/v1/ondevice/detector.onnx",
  "/v1/ondevice/classifier.onnx",
];
const KEPT = ["/v1/ondevice", "/v1/model"];  // GETs of the API that the page needs offline

self.addEventListener("install", (event) => {
  // Each file on its own: one missing file (a build without the runtime, a server that wants a token for the
  // models: they are then kept when the page first fetches them) must not stop the rest being kept.
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(SHELL.map((url) => cache.add(url).catch(() => null)))));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function kept(url) {
  if (url.origin !== self.location.origin) return false;
  if (url.pathname.startsWith("/v1/")) return KEPT.some((p) => url.pathname === p || url.pathname.startsWith(p + "/"));
  return true;
}

// The network first (a newer page or model replaces the kept one), the cache when the network fails.
// The runtime files are versioned by the package, so they come from the cache first.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (!kept(url)) return;
  const key = url.origin + url.pathname;  // ?token=… and the like do not make another copy
  if (url.pathname.startsWith("/static/vendor/")) {
    event.respondWith(caches.match(key).then((hit) => hit || fetchAndKeep(request, key)));
    return;
  }
  event.respondWith(fetchAndKeep(request, key).catch(() => caches.match(key).then((hit) => hit || Response.error())));
});

async function fetchAndKeep(request, key) {
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    caches.open(CACHE).then((cache) => cache.put(key, copy));
  }
  return response;
}
