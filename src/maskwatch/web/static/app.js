// maskwatch web page: plain JS, no build step. Talks to the REST API and the /v1/live WebSocket.
"use strict";

const $ = (id) => document.getElementById(id);
const KNOWN = { with_mask: "rgb(75,180,60)", without_mask: "rgb(230,40,40)", incorrect_mask: "rgb(255,150,0)", too_small: "rgb(160,160,160)" };
const PALETTE = ["rgb(0,130,200)", "rgb(145,30,180)", "rgb(240,200,60)", "rgb(0,128,128)", "rgb(230,25,75)", "rgb(0,190,255)"];

function colourFor(label) {
  if (KNOWN[label]) return KNOWN[label];
  let sum = 0;
  for (const b of new TextEncoder().encode(label)) sum += b;
  return PALETTE[sum % PALETTE.length];
}

// The number on a box: how sure we are that this is a face AND of its class (a false face reads low, not 1.00).
function confidence(face) { return (face.detection_score ?? 1) * face.score; }

function caption(face) {
  const text = face.label === "too_small" ? face.label : `${face.label} ${confidence(face).toFixed(2)}`;
  return face.track_id != null ? `#${face.track_id} ${text}` : text;
}

function token() { return $("token").value || localStorage.getItem("maskwatch-token") || ""; }

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    if (response.status === 401) $("token-box").hidden = false;
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

// Boxes and captions on a canvas laid over an image or a video. Boxes come in source pixels; the canvas has at least
// the source's resolution and more when the picture is shown larger (a small photo), so captions keep one readable
// size on screen. Each caption sits above its box, else below, else inside, moved clear of the ones already placed
// and kept inside the picture; the rectangles drawn are left in canvas.dataset.labels.
function drawFaces(canvas, faces, width, height) {
  const shown = canvas.clientWidth || width;
  const scale = Math.max(1, (shown * (window.devicePixelRatio || 1)) / width);
  const W = Math.round(width * scale), H = Math.round(height * scale);
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, W, H);
  const css = W / shown;  // canvas pixels per CSS pixel
  const fontSize = Math.round(13 * css);
  const pad = Math.round(2 * css);
  const th = fontSize + 2 * pad;
  ctx.font = `${fontSize}px sans-serif`;
  ctx.textBaseline = "top";
  ctx.lineWidth = Math.max(1, Math.round(2 * css));
  const boxes = faces.map((face) => face.box.map((v) => v * scale));
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = boxes[i];
    ctx.strokeStyle = colourFor(face.label);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  });
  const placed = [];
  const free = (r) => r.y >= 0 && r.y + r.h <= H && placed.every((o) => r.x >= o.x + o.w || o.x >= r.x + r.w || r.y >= o.y + o.h || o.y >= r.y + r.h);
  const order = faces.map((_, i) => i).sort((a, b) => boxes[a][1] - boxes[b][1]);
  for (const i of order) {
    const face = faces[i];
    const [x1, y1, x2, y2] = boxes[i];
    let text = caption(face);
    while (text.length > 1 && ctx.measureText(text).width + 2 * pad > W) text = text.slice(0, -1);  // wider than the picture
    const tw = Math.min(W, ctx.measureText(text).width + 2 * pad);
    const x = Math.min(Math.max(0, x1), W - tw);
    let rect = null;
    for (const y of [y1 - th, y2, y1]) {
      if (free({ x, y, w: tw, h: th })) { rect = { x, y, w: tw, h: th }; break; }
    }
    if (!rect) {  // every usual place is taken: the free row nearest above the box, else nearest anywhere
      const rows = [];
      for (let y = 0; y + th <= H; y += 1) rows.push(y);
      rows.sort((a, b) => Math.abs(a - (y1 - th)) - Math.abs(b - (y1 - th)));
      const y = rows.find((r) => free({ x, y: r, w: tw, h: th }));
      rect = { x, y: y ?? Math.max(0, Math.min(H - th, y1 - th)), w: tw, h: th };
    }
    placed.push(rect);
    ctx.fillStyle = colourFor(face.label);
    ctx.fillRect(rect.x, rect.y, rect.w, rect.h);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, rect.x + pad, rect.y + pad);
  }
  canvas.dataset.labels = JSON.stringify(placed.map((r) => [r.x, r.y, r.w, r.h]));
}

function clearCanvas(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.labels = "[]";
}

// ---- model ----
async function loadModel() {
  const box = $("model-info");
  try {
    const m = await api("/v1/model");
    const chips = m.classes.map((c) => `<span class="chip" style="background:${colourFor(c)}">${escapeHtml(c)}</span>`).join("");
    const metrics = metricRows(m.metrics || {})
      .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`)
      .join("");
    box.innerHTML = `<p>Classes: <span id="model-classes">${chips}</span></p>
      <p>Bundle <code>${escapeHtml(m.source)}</code> · backbone ${escapeHtml(m.backbone)} · input ${m.input_size}px · detector ${escapeHtml(m.detector)} (photos: ${escapeHtml(m.photo_detector)})
      · uploads up to ${m.max_upload_mb} MB</p>
      ${metrics ? `<table id="model-metrics"><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>${metrics}</tbody></table>` : "<p>No metrics recorded in this bundle.</p>"}`;
  } catch (e) {
    box.innerHTML = `<span class="error">${escapeHtml(e.message)}</span>`;
  }
}

function figure(v) { return typeof v === "number" ? String(+v.toFixed(4)) : String(v); }

// The bundle's metrics as (name, value) rows: the test figures first (accuracy with its 95% interval, recall per
// class, calibration error), then every other figure, nested ones by their dotted name.
function metricRows(metrics) {
  const rows = [];
  const test = metrics.test;
  if (test && typeof test === "object") {
    if (typeof test.accuracy === "number") {
      const ci = Array.isArray(test.accuracy_ci95) ? ` (95% CI ${figure(test.accuracy_ci95[0])}–${figure(test.accuracy_ci95[1])})` : "";
      rows.push(["test accuracy", `${figure(test.accuracy)}${ci}${test.n != null ? `, ${test.n} images` : ""}`]);
    }
    for (const [cls, r] of Object.entries(test.recall || {})) rows.push([`test recall ${cls}`, r == null ? "n/a (no images)" : figure(r)]);
    if (test.ece != null) rows.push(["test calibration error (ECE)", figure(test.ece)]);
    if (test.note) rows.push(["test", test.note]);
  }
  const flatten = (prefix, value) => {
    if (value == null) return;
    if (Array.isArray(value)) rows.push([prefix, value.map(figure).join(", ")]);
    else if (typeof value === "object") for (const [k, v] of Object.entries(value)) flatten(`${prefix}.${k}`, v);
    else rows.push([prefix, figure(value)]);
  };
  for (const [key, value] of Object.entries(metrics)) {
    if (key === "test" && rows.length) continue;
    if (key === "counts" && value && typeof value === "object") {  // images per split, all classes together
      for (const [split, perClass] of Object.entries(value)) {
        const total = Object.values(perClass || {}).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
        rows.push([`${split} images`, `${total} (${Object.entries(perClass || {}).map(([c, n]) => `${c} ${n}`).join(", ")})`]);
      }
      continue;
    }
    flatten(key, value);
  }
  return rows;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// ---- upload ----
function chip(label) { return `<span class="chip" style="background:${colourFor(label)}">${escapeHtml(label)}</span>`; }

function setTable(headers, rows, empty) {
  const table = $("faces-table");
  table.querySelector("thead").innerHTML = `<tr>${headers.map((h) => `<th>${h}</th>`).join("")}</tr>`;
  table.querySelector("tbody").innerHTML = rows.join("") || `<tr><td colspan="${headers.length}">${empty}</td></tr>`;
}

// A photo: one row per face.
function fillFaces(faces) {
  const rows = faces.map((f, i) => `<tr><td>${i + 1}</td><td>${chip(f.label)}</td>
    <td class="confidence">${f.label === "too_small" ? "" : confidence(f).toFixed(3)}</td><td class="probability">${f.score.toFixed(3)}</td>
    <td class="detection">${f.detection_score.toFixed(3)}</td><td>${f.box.map((v) => Math.round(v)).join(", ")}</td></tr>`);
  setTable(["#", "class", "confidence", "class probability", "face score", "box (x1, y1, x2, y2)"], rows, "no faces found");
}

function seen(frame, seconds) { return seconds != null ? `${seconds.toFixed(2)} s (frame ${frame})` : `frame ${frame}`; }

// A video: one row per person (face track), not one per frame.
function fillPeople(people) {
  const rows = people.map((p) => `<tr><td>#${p.track_id}</td><td>${chip(p.label)}</td><td>${seen(p.first_frame, p.first_seen)}</td>
    <td>${seen(p.last_frame, p.last_seen)}</td><td>${p.frames}</td><td class="confidence">${p.confidence.toFixed(3)}</td></tr>`);
  setTable(["person", "class", "first seen", "last seen", "frames", "best confidence"], rows, "no person seen in enough frames to count");
}

let photoObserver = null;  // redraws the photo's boxes when the page is resized
const uploadUrls = [];  // object URLs of the shown upload, released by the next one

function uploadUrl(file) {
  const url = URL.createObjectURL(file);
  uploadUrls.push(url);
  return url;
}

// Before every upload, and so also after a failed one: no earlier answer stays on screen.
function clearResult() {
  if (photoObserver) photoObserver.disconnect();
  photoObserver = null;
  $("result").hidden = true;
  const video = $("result-video");
  video.onerror = null;  // an earlier video's handlers must not write over the next answer
  video.ontimeupdate = video.onseeked = video.onloadeddata = video.onplay = null;
  video.pause();
  video.removeAttribute("src");
  video.load();
  video.hidden = true;
  for (const id of ["result-image", "result-overlay", "photo-overlay"]) $(id).hidden = true;
  $("result-image").removeAttribute("src");
  for (const url of uploadUrls.splice(0)) URL.revokeObjectURL(url);
  $("photo").removeAttribute("src");
  $("photo-stage").hidden = true;
  clearCanvas($("photo-overlay"));
  clearCanvas($("result-overlay"));
  $("result-caption").textContent = "";
  $("summary").textContent = "";
  for (const part of ["thead", "tbody"]) $("faces-table").querySelector(part).innerHTML = "";
}

async function detectImage(file) {
  const form = new FormData();
  form.append("file", file);
  const out = await api("/v1/detect", { method: "POST", body: form });
  // The photo itself with the boxes drawn over it here, so captions are laid out for the size it is shown at.
  const photo = $("photo");
  photo.src = uploadUrl(file);
  await photo.decode().catch(() => {});
  $("photo-stage").hidden = false;
  $("photo-overlay").hidden = false;
  $("result").hidden = false;
  const overlay = $("photo-overlay");
  drawFaces(overlay, out.faces, out.width, out.height);
  photoObserver = new ResizeObserver(() => drawFaces(overlay, out.faces, out.width, out.height));
  photoObserver.observe(photo);
  fillFaces(out.faces);
  $("summary").textContent = `${out.faces.length} face(s) in ${out.width}×${out.height} px, ${out.ms} ms on the server`;
}

async function detectVideo(file) {
  const form = new FormData();
  form.append("file", file);
  const created = await api("/v1/detect/video", { method: "POST", body: form });
  let job;
  for (;;) {
    job = await api(created.url);
    const pct = job.frames_total ? ` (${Math.round(job.progress * 100)}%)` : "";  // no count announced: no percentage
    $("upload-status").textContent = `${job.status} · ${job.frames_done}${job.frames_total ? "/" + job.frames_total : ""} frames${pct}`;
    if (job.status === "done" || job.status === "failed") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (job.status === "failed") throw new Error(job.error || "video job failed");
  const img = $("result-image");
  img.hidden = !job.keyframe_jpeg;
  if (job.keyframe_jpeg) img.src = `data:image/jpeg;base64,${job.keyframe_jpeg}`;
  $("result-caption").textContent = "Annotated frame with the most faces; the video below plays with the boxes drawn over it.";
  const video = $("result-video");
  const overlay = $("result-overlay");
  video.onerror = () => {  // a codec this browser cannot play: the key frame and the table remain
    video.hidden = true;
    overlay.hidden = true;
    $("result-caption").textContent = "Annotated frame with the most faces (this browser cannot play the video itself).";
  };
  video.src = uploadUrl(file);
  video.hidden = false;
  overlay.hidden = false;
  const frames = job.frames;
  const fps = frames.length > 1 && frames[1].timestamp ? 1 / (frames[1].timestamp - frames[0].timestamp) : 25;
  const redraw = () => {
    const i = Math.min(frames.length - 1, Math.max(0, Math.floor(video.currentTime * fps + 1e-3)));
    const f = frames[i];
    if (f) drawFaces(overlay, f.faces, f.width, f.height);
  };
  video.ontimeupdate = redraw;
  video.onseeked = redraw;
  video.onloadeddata = redraw;
  const tick = () => { if (!video.paused) redraw(); if (!video.hidden) requestAnimationFrame(tick); };
  video.onplay = () => requestAnimationFrame(tick);
  fillPeople(job.people || []);
  const s = job.summary;
  const perClass = Object.entries(s.faces_per_class).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  const people = Object.entries(s.people_per_class).map(([k, v]) => `${k} ${v}`).join(", ") || "–";
  $("summary").textContent = `${s.frames} frame(s), ${s.faces} face(s): ${perClass}; people (tracked): ${people}; ${s.fps} fps`;
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const status = $("upload-status");
  const button = $("upload-submit");
  status.className = "";
  status.textContent = "working…";
  clearResult();
  button.disabled = true;  // one upload at a time: a running video job's progress must not overwrite a later answer
  try {
    if (file.type.startsWith("video/")) await detectVideo(file);
    else await detectImage(file);
    $("result").hidden = false;
    status.textContent = "done";
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  } finally {
    button.disabled = false;
  }
});

// ---- live webcam ----
let live = null;

async function startLive() {
  const status = $("live-status");
  status.className = "";
  status.textContent = "starting camera…";
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    status.className = "error";
    status.textContent = `camera: ${e.message}`;
    return;
  }
  const video = $("live-video");
  video.srcObject = stream;
  await video.play();
  const grab = document.createElement("canvas");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const t = token();
  const ws = new WebSocket(`${proto}://${location.host}/v1/live${t ? "?token=" + encodeURIComponent(t) : ""}`);
  ws.binaryType = "arraybuffer";
  live = { stream, ws, times: [], running: true };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;

  const sendFrame = () => {
    if (!live || !live.running || ws.readyState !== WebSocket.OPEN) return;
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) { setTimeout(sendFrame, 50); return; }
    grab.width = w;
    grab.height = h;
    grab.getContext("2d").drawImage(video, 0, 0, w, h);
    grab.toBlob(async (blob) => { if (blob && ws.readyState === WebSocket.OPEN) ws.send(await blob.arrayBuffer()); }, "image/jpeg", 0.8);
  };
  ws.onopen = () => { status.textContent = "live"; sendFrame(); };
  ws.onmessage = (event) => {
    if (!live || live.ws !== ws) return;  // an answer still in flight after Stop draws nothing
    const out = JSON.parse(event.data);
    if (out.error) {
      status.className = "error";
      status.textContent = out.error;
    } else {
      drawFaces($("live-overlay"), out.faces, out.width, out.height);
      const count = $("live-count");
      count.dataset.faces = String(out.faces.length);
      count.textContent = `${out.faces.length} face${out.faces.length === 1 ? "" : "s"}`;
      $("live-labels").innerHTML = out.faces
        .map((f) => `<li class="chip live-label" data-label="${escapeHtml(f.label)}" style="background:${colourFor(f.label)}">${escapeHtml(caption(f))}</li>`)
        .join("");
      const now = performance.now();
      live.times.push(now);
      while (live.times.length && now - live.times[0] > 2000) live.times.shift();
      if (live.times.length > 1) {
        const fps = (live.times.length - 1) / ((now - live.times[0]) / 1000);
        $("live-fps").textContent = `${fps.toFixed(1)} fps`;
        $("live-fps").dataset.fps = fps.toFixed(2);
      }
    }
    sendFrame();
  };
  ws.onclose = (event) => {
    if (live && live.running) {
      status.className = "error";
      status.textContent = `connection closed${event.reason ? ": " + event.reason : ""}`;
      stopLive();
    }
  };
}

function stopLive() {
  if (!live) return;
  live.running = false;
  live.ws.close();
  live.stream.getTracks().forEach((track) => track.stop());
  live = null;
  // No boxes left over a black frame: the view, its boxes, labels and figures go blank together.
  $("live-video").srcObject = null;
  clearCanvas($("live-overlay"));
  $("live-labels").innerHTML = "";
  $("live-count").dataset.faces = "0";
  $("live-count").textContent = "0 faces";
  $("live-fps").textContent = "– fps";
  delete $("live-fps").dataset.fps;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => { stopLive(); $("live-status").textContent = "stopped"; });
$("token").addEventListener("change", () => { localStorage.setItem("maskwatch-token", $("token").value); loadModel(); });

loadModel();
