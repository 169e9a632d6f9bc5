// The page's on-device section: loads ONNX Runtime Web (served by maskwatch, no CDN) and the server's two
// models, then runs the camera through MaskwatchOnDevice (ondevice.js) in this browser. Nothing is sent
// back: after GET /v1/ondevice and the two model files, the loop makes no request at all.
// Also registers the service worker that makes the page installable and usable offline.
"use strict";

(function () {
  const el = (id) => document.getElementById(id);
  const state = { config: null, detector: null, running: false, stream: null, times: [], frames: 0, queue: Promise.resolve() };

  function authHeaders() {
    const t = el("token").value || localStorage.getItem("maskwatch-token") || "";
    return t ? { Authorization: `Bearer ${t}` } : {};
  }

  async function fetchOk(url, as) {
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${url}: ${response.status} ${detail}`);
    }
    return as === "json" ? response.json() : response.arrayBuffer();
  }

  function setStatus(text, error = false) {
    const status = el("ondevice-status");
    status.className = error ? "error" : "";
    status.textContent = text;
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(s);
    });
  }

  async function loadConfig() {
    try {
      state.config = await fetchOk("/v1/ondevice", "json");
    } catch (e) {
      setStatus(`on-device mode unavailable: ${e.message}`, true);
      return;
    }
    const c = state.config;
    if (!c.available) {
      setStatus(`on-device mode unavailable: ${c.reason}`, true);
      return;
    }
    el("ondevice-info").textContent =
      `${c.detector.name} (${c.detector.size} px) + bundle ${c.classifier.name} on ${c.runtime.name} ${c.runtime.version}, WebAssembly`;
    el("ondevice-start").disabled = false;
  }

  // ONNX Runtime Web and both sessions, once. WebAssembly threads need a cross-origin-isolated page.
  async function loadDetector() {
    if (state.detector) return state.detector;
    const c = state.config;
    setStatus("loading the runtime and the models…");
    if (!window.ort) await loadScript(`${c.runtime.path}ort.wasm.min.js`);
    const ort = window.ort;
    ort.env.wasm.wasmPaths = c.runtime.path;
    // Threads need a cross-origin-isolated page (the server sends the headers); ONNX Runtime Web's default
    // count is then half the cores, at most 4 (1 on a 2-core laptop, 4 on an 8-core phone).
    if (!self.crossOriginIsolated) ort.env.wasm.numThreads = 1;
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const [detectorBytes, classifierBytes] = await Promise.all([
      fetchOk(c.detector.model, "bytes"), fetchOk(c.classifier.model, "bytes"),
    ]);
    const detectorSession = await ort.InferenceSession.create(detectorBytes, options);
    const classifierSession = await ort.InferenceSession.create(classifierBytes, options);
    state.detector = new window.MaskwatchOnDevice.OnDeviceDetector(c, ort, detectorSession, classifierSession);
    return state.detector;
  }

  // One detection at a time (a session runs one call at a time); the live loop and detectFrame share it.
  function serial(fn) {
    const next = state.queue.then(fn, fn);
    state.queue = next.catch(() => {});
    return next;
  }

  const grab = document.createElement("canvas");
  function currentFrame() {
    const video = el("ondevice-video");
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    grab.width = w;
    grab.height = h;
    const ctx = grab.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h);
  }

  function show(faces, width, height) {
    drawFaces(el("ondevice-overlay"), faces, width, height);  // app.js
    const count = el("ondevice-count");
    count.dataset.faces = String(faces.length);
    count.textContent = `${faces.length} face${faces.length === 1 ? "" : "s"}`;
    el("ondevice-labels").innerHTML = faces
      .map((f) => `<li class="chip ondevice-label" data-label="${escapeHtml(f.label)}" style="background:${colourFor(f.label)}">${escapeHtml(caption(f))}</li>`)
      .join("");
    const now = performance.now();
    state.times.push(now);
    while (state.times.length && now - state.times[0] > 2000) state.times.shift();
    if (state.times.length > 1) {
      const fps = (state.times.length - 1) / ((now - state.times[0]) / 1000);
      el("ondevice-fps").textContent = `${fps.toFixed(1)} fps`;
      el("ondevice-fps").dataset.fps = fps.toFixed(2);
    }
    state.frames += 1;
    el("ondevice-count").dataset.frames = String(state.frames);
  }

  async function loop() {
    while (state.running) {
      const shown = await serial(async () => {
        const image = currentFrame();
        if (!image) return false;
        show(await state.detector.detect(image), image.width, image.height);
        return true;
      });
      await new Promise((r) => setTimeout(r, shown ? 0 : 50));
    }
  }

  async function start() {
    el("ondevice-start").disabled = true;
    try {
      await loadDetector();
      setStatus("starting camera…");
      state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) {
      setStatus(`on-device: ${e.message}`, true);
      el("ondevice-start").disabled = false;
      return;
    }
    const video = el("ondevice-video");
    video.srcObject = state.stream;
    await video.play();
    state.running = true;
    state.times = [];
    el("ondevice-stop").disabled = false;
    setStatus("live, on this device");
    loop().catch((e) => { setStatus(`on-device: ${e.message}`, true); stop(); });
  }

  function stop() {
    state.running = false;
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    state.stream = null;
    // the view and its boxes go blank: no stale faces over a stopped camera
    serial(() => {
      el("ondevice-video").srcObject = null;
      const overlay = el("ondevice-overlay");
      overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
      el("ondevice-labels").innerHTML = "";
      el("ondevice-count").dataset.faces = "0";
      el("ondevice-count").textContent = "0 faces";
    });
    el("ondevice-start").disabled = !(state.config && state.config.available);
    el("ondevice-stop").disabled = true;
  }

  // For checks and measurements: the camera's current frame (as PNG) with the faces found in it on this device.
  window.maskwatchDetectFrame = () => serial(async () => {
    const image = currentFrame();
    if (!image) throw new Error("no camera frame yet");
    const t0 = performance.now();
    const timings = {};
    const faces = await state.detector.detect(image, timings);
    return { faces, ms: performance.now() - t0, timings, width: image.width, height: image.height, png: grab.toDataURL("image/png") };
  });

  el("ondevice-start").addEventListener("click", start);
  el("ondevice-stop").addEventListener("click", () => { stop(); setStatus("stopped"); });
  loadConfig();

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch((e) => console.warn(`service worker: ${e.message}`));
  }
})();
