// The watch dashboard: live views (MJPEG), current counts, compliance chart (SVG drawn here), events.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
let hours = 1;

async function getJson(url) {
  const response = await fetch(withToken(url));
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function percent(value) {
  return value === null || value === undefined ? "–" : (100 * value).toFixed(0) + " %";
}

function countsText(counts) {
  const parts = Object.entries(counts || {}).sort().map(([k, v]) => k + " " + v);
  return parts.length ? parts.join(", ") : "nobody";
}

function renderCameras(state) {
  const list = document.getElementById("camera-list");
  for (const source of state.sources) {
    let card = list.querySelector(`[data-source="${CSS.escape(source.name)}"]`);
    if (!card) {
      card = document.createElement("div");
      card.className = "camera";
      card.dataset.source = source.name;
      card.append(text("h3", source.name));
      const img = document.createElement("img");
      img.alt = "live view of " + source.name;
      img.src = withToken(`/v1/watch/sources/${encodeURIComponent(source.name)}/live.mjpg`);
      card.append(img, text("div", "", "counts"));
      list.append(card);
    }
    const counts = card.querySelector(".counts");
    counts.replaceChildren(
      text("div", source.status, "status status-" + source.status),
      text("div", `${source.frames} frames, ${source.fps.toFixed(1)} fps, ${source.dropped} dropped`),
      text("div", "in view: " + countsText(source.faces_now), "now"),
      text("div", "this interval: " + countsText(source.current && source.current.people), "interval"),
      text("div", "compliance (rule window): " + percent(source.compliance), "window"),
      text("div", `${source.events} event(s)`),
    );
    if (source.error && source.status !== "running") counts.append(text("div", source.error, "error"));
  }
  const a = state.alerts;
  const sent = Object.values(a.delivered).reduce((x, y) => x + y, 0);
  const failed = Object.values(a.failed).reduce((x, y) => x + y, 0);
  document.getElementById("alert-state").textContent = a.sinks.length
    ? `alerts to ${a.sinks.join(", ")}: ${sent} delivered, ${failed} failed attempt(s), ${a.dropped} dropped from the queue`
    : "no alert sinks configured (events are stored only)";
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function renderChart(rows) {
  const chart = document.getElementById("chart");
  const W = 800, H = 240, L = 44, R = 10, T = 10, B = 28;
  chart.replaceChildren();
  const now = Date.now() / 1000, start = now - hours * 3600;
  const x = (t) => L + (W - L - R) * (t - start) / (now - start);
  const y = (v) => T + (H - T - B) * (1 - v);
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#ddd"}));
    const label = svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11});
    label.textContent = (v * 100) + "%";
    chart.append(label);
  }
  for (const frac of [0, 0.5, 1]) {
    const t = start + frac * (now - start);
    const label = svg("text", {x: x(t), y: H - 8, "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle", "font-size": 11});
    label.textContent = new Date(t * 1000).toLocaleTimeString();
    chart.append(label);
  }
  const bySource = {};
  for (const row of rows) {
    if (row.compliance === null) continue;
    (bySource[row.source] = bySource[row.source] || []).push(row);
  }
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  Object.keys(bySource).sort().forEach((name, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = bySource[name].map((r) => `${x(r.time).toFixed(1)},${y(r.compliance).toFixed(1)}`);
    chart.append(svg("polyline", {points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2, "data-source": name}));
    for (const r of bySource[name]) {
      const dot = svg("circle", {cx: x(r.time), cy: y(r.compliance), r: 3, fill: colour, class: "point"});
      const tip = svg("title", {});
      tip.textContent = `${name}: ${percent(r.compliance)} of ${Object.values(r.people).reduce((a, b) => a + b, 0)} people`;
      dot.append(tip);
      chart.append(dot);
    }
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = colour;
    item.append(swatch, name);
    legend.append(item);
  });
}

function renderEvents(events) {
  const body = document.getElementById("event-rows");
  body.replaceChildren(...events.map((e) => {
    const row = document.createElement("tr");
    row.dataset.event = e.id;
    const when = new Date(e.time * 1000).toLocaleTimeString();
    const who = e.track === null ? "–" : "#" + e.track;
    const what = e.rule === "low_compliance" ? percent(e.details.compliance) + " masked" : (e["class"] || "");
    const delivered = e.delivered === null ? "no sinks" : e.delivered ? "yes" : "pending";
    for (const value of [when, e.source, e.rule, who, what, delivered]) row.append(text("td", value));
    const cell = document.createElement("td");
    if (e.snapshot_url) {
      const link = document.createElement("a");
      link.href = withToken(e.snapshot_url);
      const img = document.createElement("img");
      img.src = withToken(e.snapshot_url);
      img.alt = "snapshot of event " + e.id;
      link.append(img);
      cell.append(link);
    }
    row.append(cell);
    return row;
  }));
}

async function refreshState() {
  try { renderCameras(await getJson("/v1/watch/state")); } catch (err) { console.error(err); }
}
async function refreshHistory() {
  try { renderChart(await getJson(`/v1/watch/history?hours=${hours}`)); } catch (err) { console.error(err); }
}
async function refreshEvents() {
  try { renderEvents(await getJson("/v1/watch/events?limit=50")); } catch (err) { console.error(err); }
}

for (const button of document.querySelectorAll(".range button")) {
  button.addEventListener("click", () => {
    hours = Number(button.dataset.hours);
    document.querySelectorAll(".range button").forEach((b) => b.classList.toggle("active", b === button));
    setDownloadLinks();
    refreshHistory();
  });
}
function setDownloadLinks() {
  for (const format of ["csv", "json"]) {
    document.getElementById("history-" + format).href = withToken(`/v1/watch/history?hours=${hours}&format=${format}`);
    document.getElementById("events-" + format).href = withToken(`/v1/watch/events?format=${format}&limit=10000`);
  }
}
setDownloadLinks();
refreshState(); refreshHistory(); refreshEvents();
setInterval(refreshState, 1000);
setInterval(refreshHistory, 5000);
setInterval(refreshEvents, 2000);
