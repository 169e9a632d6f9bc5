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

function caption(face) {
  const text = face.label === "too_small" ? face.label : `${face.label} ${face.score.toFixed(2)}`;
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

// Boxes and captions on a canvas laid over an image or a video (coordinates in source pixels).
function drawFaces(canvas, faces, width, height) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const line = Math.max(2, Math.round(Math.max(width, height) / 300));
  const fontSize = Math.max(12, Math.round(Math.max(width, height) / 40));
  ctx.font = `${fontSize}px sans-serif`;
  ctx.textBaseline = "top";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box;
    const colour = colourFor(face.label);
    ctx.strokeStyle = colour;
    ctx.lineWidth = line;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = caption(face);
    const tw = ctx.measureText(text).width + 6;
    const top = y1 - fontSize - 4 >= 0 ? y1 - fontSize - 4 : y2;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, top, tw, fontSize + 4);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + 3, top + 2);
  }
}

// ---- model ----
async function loadModel() {
  const box = $("model-info");
  try {
    const m = await api("/v1/model");
    const chips = m.classes.map((c) => `<span class="chip" style="background:${colourFor(c)}">${escapeHtml(c)}</span>`).join("");
    const metrics = Object.entries(m.metrics || {})
      .filter(([, v]) => typeof v === "number" || typeof v === "string")
      .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${typeof v === "number" ? +v.toFixed(4) : escapeHtml(v)}</td></tr>`)
      .join("");
    box.innerHTML = `<p>Classes: <span id="model-classes">${chips}</span></p>
      <p>Bundle <code>${escapeHtml(m.source)}</code> · backbone ${escapeHtml(m.backbone)} · input ${m.input_size}px · detector ${escapeHtml(m.detector)} (photos: ${escapeHtml(m.photo_detector)})
      · uploads up to ${m.max_upload_mb} MB</p>
      ${metrics ? `<table id="model-metrics"><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>${metrics}</tbody></table>` : "<p>No metrics recorded in this bundle.</p>"}`;
  } catch (e) {
    box.innerHTML = `<span class="error">${escapeHtml(e.message)}</span>`;
  }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// ---- upload ----
function fillTable(frames) {
  const rows = [];
  for (const frame of frames) {
    frame.faces.forEach((f, i) => {
      if (rows.length >= 500) return;
      rows.push(`<tr><td>${frame.frame}</td><td>${i + 1}</td><td><span class="chip" style="background:${colourFor(f.label)}">${escapeHtml(f.label)}</span></td>
        <td>${f.score.toFixed(3)}</td><td>${f.track_id ?? ""}</td><td>${f.box.map((v) => Math.round(v)).join(", ")}</td></tr>`);
    });
  }
  $("faces-table").querySelector("tbody").innerHTML = rows.join("") || `<tr><td colspan="6">no faces found</td></tr>`;
}

async function detectImage(file) {
  const form = new FormData();
  form.append("file", file);
  const out = await api("/v1/detect?annotate=true", { method: "POST", body: form });
  $("result-video").hidden = true;
  $("result-overlay").hidden = true;
  const img = $("result-image");
  img.src = `data:image/jpeg;base64,${out.annotated_jpeg}`;
  $("result-caption").textContent = "";
  img.hidden = false;
  fillTable([out]);
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
  video.src = URL.createObjectURL(file);
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
  fillTable(frames);
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
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => { stopLive(); $("live-status").textContent = "stopped"; });
$("token").addEventListener("change", () => { localStorage.setItem("maskwatch-token", $("token").value); loadModel(); });

loadModel();
