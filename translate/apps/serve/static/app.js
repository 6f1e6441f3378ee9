// The page of `translate serve`: images, live camera, training runs (the paint tab: paint.js).
// No libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], maxBytes: 0, results: [], runs: false };

async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

// ---- pages and the model picker ------------------------------------------------------

function showPage() {
  const page = (location.hash || "#try").slice(1);
  for (const section of document.querySelectorAll(".page")) {
    section.hidden = section.id !== `page-${page}`;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  $("model-controls").hidden = page === "runs";
  if (page !== "live") stopLive();
  if (page === "runs") loadRuns();
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function fillDirections() {
  const model = currentModel();
  $("direction").replaceChildren(...model.directions.map((d) => new Option(d, d)));
  $("direction-label").hidden = model.directions.length < 2;
  $("about").textContent = model.about ? `${model.label}: ${model.about}` : "";
  // A label model reads class-id PNGs (gray or palette), not photos.
  const labels = model.input_kind === "labels";
  $("drop-what").textContent = labels ? "Drop label maps here (PNG of class ids, gray or palette)" : "Drop images here";
  $("files").accept = labels ? "image/png" : "image/*,.tif,.tiff";
  // The camera gives photos, which a label model cannot take.
  document.querySelector('nav a[data-page="live"]').hidden = labels;
  if (labels && location.hash === "#live") location.hash = "#try";
  showExamples(model);
  showPaintTab(model);
}

function modelQuery() {
  return `model=${encodeURIComponent($("model").value)}&direction=${$("direction").value}`;
}

async function init() {
  const info = await (await api("api/models")).json();
  state.models = info.models;
  state.maxBytes = info.max_bytes;
  $("model").replaceChildren(...info.models.map((m) => new Option(m.label, m.name)));
  fillDirections();
  $("model").addEventListener("change", () => { fillDirections(); restartLive(); });
  $("direction").addEventListener("change", restartLive);
  $("limits").textContent =
    `up to ${(info.max_bytes / 1048576).toFixed(0)} MB and ` +
    `${(info.max_pixels / 1e6).toFixed(1)} megapixels per image`;
  $("nav-runs").hidden = !info.runs;
  window.addEventListener("hashchange", showPage);
  showPage();
}

// ---- images --------------------------------------------------------------------------

function exampleUrl(model, name) {
  return `api/example?model=${encodeURIComponent(model.name)}&name=${encodeURIComponent(name)}`;
}

// The sample inputs the server offers for a model (demo's satellite tiles), one click each.
function showExamples(model) {
  $("example-list").replaceChildren(...model.examples.map((name) => {
    const button = document.createElement("button");
    button.className = "example";
    button.title = name;
    button.append(Object.assign(document.createElement("img"), { src: exampleUrl(model, name), alt: name }));
    button.addEventListener("click", async () => {
      const blob = await (await api(exampleUrl(model, name))).blob();
      addFiles([new File([blob], name, { type: blob.type })]);
    });
    return button;
  }));
  $("examples").hidden = !model.examples.length;
}

function addFiles(files) {
  const jobs = [...files].map(makeCard);
  $("clear").disabled = false;
  runJobs(jobs);
}

function makeCard(file) {
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.state = "waiting";
  card.innerHTML = `<header><span class="name"></span><span class="status">waiting</span></header>
    <div class="compare"><img class="before" alt="input"><img class="after" alt="output" hidden>
    <span class="line" hidden></span><input type="range" min="0" max="100" value="50" hidden
    aria-label="before/after"><span class="tag before-tag" style="left:6px">before</span>
    <span class="no-preview muted" hidden>no preview: the browser cannot show this file</span>
    <span class="tag after-tag" style="right:6px" hidden>after</span></div>
    <p><a class="download" hidden>Download</a></p>`;
  card.querySelector(".name").textContent = card.title = file.name;
  const before = card.querySelector("img.before");
  // A file the browser cannot show (broken, or TIFF) gets no broken-image icon under "before".
  before.onerror = () => {
    before.hidden = card.querySelector(".before-tag").hidden = true;
    card.querySelector(".no-preview").hidden = false;
    card.querySelector(".compare").classList.add("no-before");
  };
  before.src = URL.createObjectURL(file);
  const slider = card.querySelector("input");
  slider.addEventListener("input", () => {
    card.querySelector(".compare").style.setProperty("--pos", `${slider.value}%`);
  });
  $("results").prepend(card);
  return { file, card, status: card.querySelector(".status") };
}

async function runJobs(jobs) {
  // Two requests at a time: the server queues a few and answers 503 when it is full.
  const next = () => jobs.shift();
  const worker = async () => {
    for (let job = next(); job; job = next()) await translateJob(job);
  };
  await Promise.all([worker(), worker()]);
}

async function translateJob(job) {
  const { file, card, status } = job;
  const query = `${modelQuery()}&tile=${$("tile").value}&name=${encodeURIComponent(file.name)}`;
  status.textContent = "translating";
  card.dataset.state = "running";
  for (let attempt = 0; ; attempt++) {
    try {
      // The server refuses form types (what a cross-site form could send): say it is bytes.
      const headers = { "Content-Type": "application/octet-stream" };
      const response = await api(`api/translate?${query}`, { method: "POST", body: file, headers });
      const blob = await response.blob();
      showOutput(job, blob);
      return;
    } catch (error) {
      if (error.status === 503 && attempt < 30) {
        status.textContent = "server busy, retrying";
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      card.dataset.state = "error";
      status.textContent = error.message;
      return;
    }
  }
}

function showOutput(job, blob) {
  const { file, card, status } = job;
  const after = card.querySelector("img.after");
  const name = `${file.name.replace(/\.[^.]+$/, "")}_${currentModel().label.replace(/\W+/g, "_")}.png`;
  after.onload = () => {
    status.textContent = `${after.naturalWidth} x ${after.naturalHeight}`;
    card.dataset.state = "done";
  };
  after.src = URL.createObjectURL(blob);
  for (const el of card.querySelectorAll("img.after, .line, input, .after-tag")) el.hidden = false;
  const link = card.querySelector("a.download");
  link.href = after.src;
  link.download = name;
  link.hidden = false;
  state.results.push({ name, blob });
  $("zip").disabled = false;
}

// A stored (uncompressed) zip: PNGs do not shrink further, and it needs no library.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zipBlob(files) {
  const encoder = new TextEncoder();
  const local = [], central = [];
  let offset = 0;
  const seen = new Map();
  for (const file of files) {
    const count = seen.get(file.name) || 0;
    seen.set(file.name, count + 1);
    const unique = count ? file.name.replace(/(\.[^.]+)?$/, `_${count}$1`) : file.name;
    const name = encoder.encode(unique);
    const data = new Uint8Array(await file.blob.arrayBuffer());
    const crc = crc32(data);
    const head = new DataView(new ArrayBuffer(30));
    const entry = new DataView(new ArrayBuffer(46));
    // local header: signature, version 2.0, UTF-8 names, stored, 1980-01-01, crc, sizes
    head.setUint32(0, 0x04034b50, true);
    head.setUint16(4, 20, true);
    head.setUint16(6, 0x0800, true);
    head.setUint16(12, 0x21, true);
    head.setUint32(14, crc, true);
    head.setUint32(18, data.length, true);
    head.setUint32(22, data.length, true);
    head.setUint16(26, name.length, true);
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);
    entry.setUint16(6, 20, true);
    entry.setUint16(8, 0x0800, true);
    entry.setUint16(14, 0x21, true);
    entry.setUint32(16, crc, true);
    entry.setUint32(20, data.length, true);
    entry.setUint32(24, data.length, true);
    entry.setUint16(28, name.length, true);
    entry.setUint32(42, offset, true);
    local.push(head, name, data);
    central.push(entry, name);
    offset += 30 + name.length + data.length;
  }
  const size = central.reduce((n, part) => n + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...local, ...central, end], { type: "application/zip" });
}

async function downloadZip() {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await zipBlob(state.results));
  link.download = "translations.zip";
  link.click();
}

function setupImages() {
  const drop = $("drop");
  $("files").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.files];
    if (files.length) addFiles(files);
  });
  $("view").addEventListener("change", () => {
    $("results").classList.toggle("side", $("view").value === "side");
  });
  $("zip").addEventListener("click", downloadZip);
  $("clear").addEventListener("click", () => {
    $("results").replaceChildren();
    state.results = [];
    $("zip").disabled = $("clear").disabled = true;
  });
}

// ---- live camera ---------------------------------------------------------------------

const live = { stream: null, socket: null, timer: null, sent: 0, received: 0, serverDropped: 0,
               clientDropped: 0, arrivals: [], latencies: [], busy: false };
const MAX_IN_FLIGHT = 2;

async function startLive() {
  $("live-error").hidden = true;
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    liveError(`camera: ${error.message} (the camera needs localhost or HTTPS)`);
    return;
  }
  $("camera").srcObject = live.stream;
  Object.assign(live, { sent: 0, received: 0, serverDropped: 0, clientDropped: 0,
                        arrivals: [], latencies: [] });
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const base = new URL("api/live", location.href);
  live.socket = new WebSocket(`${scheme}://${base.host}${base.pathname}?${modelQuery()}`);
  live.socket.binaryType = "arraybuffer";
  live.socket.onmessage = onLiveMessage;
  live.socket.onopen = () => { live.timer = setInterval(sendFrame, 1000 / 30); };
  live.socket.onclose = (event) => { if (live.stream && event.code !== 1000) liveError(`connection closed (${event.code})`); };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
}

function liveError(message) {
  $("live-error").textContent = message;
  $("live-error").hidden = false;
}

function stopLive() {
  clearInterval(live.timer);
  live.timer = null;
  if (live.socket) live.socket.close(1000);
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();
  live.socket = live.stream = null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

function restartLive() {
  if (live.stream) { stopLive(); startLive(); }
}

const capture = document.createElement("canvas");

function sendFrame() {
  const video = $("camera");
  if (!video.videoWidth || live.busy || live.socket.readyState !== WebSocket.OPEN) return;
  // Frames the server dropped never come back, so count them out of the ones in flight.
  if (live.sent - live.received - live.serverDropped >= MAX_IN_FLIGHT) {
    live.clientDropped++;
    return;
  }
  const width = Number($("live-width").value);
  capture.width = width;
  capture.height = Math.max(4, Math.round((video.videoHeight / video.videoWidth) * width / 4) * 4);
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  live.busy = true;
  capture.toBlob(async (blob) => {
    const jpeg = await blob.arrayBuffer();
    const frame = new Uint8Array(8 + jpeg.byteLength);
    new DataView(frame.buffer).setFloat64(0, performance.now(), true);
    frame.set(new Uint8Array(jpeg), 8);
    live.busy = false;
    if (live.socket && live.socket.readyState === WebSocket.OPEN) {
      live.socket.send(frame);
      live.sent++;
    }
  }, "image/jpeg", 0.85);
}

async function onLiveMessage(event) {
  if (typeof event.data === "string") {
    const message = JSON.parse(event.data);
    if (message.error) liveError(message.error);
    else {
      live.serverDropped = message.dropped;
      if (message.model_ms !== undefined) $("model-ms").textContent = message.model_ms.toFixed(0);
    }
    $("dropped").textContent = live.serverDropped + live.clientDropped;
    return;
  }
  const now = performance.now();
  live.received++;
  live.latencies.push(now - new DataView(event.data).getFloat64(0, true));
  live.arrivals.push(now);
  live.arrivals = live.arrivals.filter((t) => now - t < 2000);
  live.latencies = live.latencies.slice(-10);
  const seconds = Math.max(0.5, Math.min(2, (now - live.arrivals[0]) / 1000));
  $("fps").textContent = (live.arrivals.length / seconds).toFixed(1);
  const mean = live.latencies.reduce((a, b) => a + b, 0) / live.latencies.length;
  $("latency").textContent = mean.toFixed(0);
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(event.data, 8)], { type: "image/jpeg" }));
  const out = $("live-out");
  out.width = bitmap.width;
  out.height = bitmap.height;
  out.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  out.dataset.frames = Number(out.dataset.frames) + 1;
}

// ---- training runs -------------------------------------------------------------------

const run = { name: null, since: 0, records: [], panels: {}, timer: null, samples: "", unpaired: false };
// Unpaired trainers have no targets to score outputs against, so no scores will ever come.
const NO_SCORES = "no validation scores: an unpaired run has no targets to score against";
const POLL_MS = 2000;
const COLORS = ["#2f6fdb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

async function loadRuns() {
  const { runs } = await (await api("api/runs")).json();
  const list = $("run-list");
  list.replaceChildren(...runs.map((r) => {
    const item = document.createElement("li");
    item.dataset.run = r.name;
    item.textContent = r.name;
    const detail = document.createElement("span");
    detail.className = "muted";
    detail.textContent = r.error || `step ${r.step}, epoch ${r.epoch}`;
    item.append(detail);
    item.classList.toggle("active", r.name === run.name);
    item.addEventListener("click", () => openRun(r.name));
    return item;
  }));
  if (!run.name && runs.length) openRun(runs[0].name);
  if (!run.timer) run.timer = setInterval(pollRun, POLL_MS);
}

async function openRun(name) {
  Object.assign(run, { name, since: 0, records: [], panels: {}, samples: "", unpaired: false });
  for (const item of $("run-list").children) item.classList.toggle("active", item.dataset.run === name);
  $("run").hidden = false;
  $("run-name").textContent = name;
  await pollRun();
}

async function pollRun() {
  if (location.hash !== "#runs") { clearInterval(run.timer); run.timer = null; return; }
  if (!run.name) return;
  const name = run.name;
  const base = `api/runs/${encodeURIComponent(name)}`;
  const [metrics, detail] = await Promise.all([
    (await api(`${base}/metrics?since=${run.since}`)).json(),
    (await api(base)).json(),
  ]);
  if (name !== run.name) return;  // another run was opened meanwhile
  run.records.push(...metrics.records);
  run.since = metrics.next;
  Object.assign(run.panels, metrics.panels);
  // A damaged file is named where its content would be.
  $("config").textContent = [metrics.error, detail.error, detail.config].filter(Boolean).join("\n\n");
  run.unpaired = detail.unpaired;
  const last = run.records[run.records.length - 1] || { step: 0, epoch: 0 };
  $("run-step").textContent = `step ${last.step}, epoch ${last.epoch}, ${run.records.length} records`;
  drawChart($("chart-losses"), series("losses"), "no losses yet");
  drawValidation();
  drawChart($("chart-monitoring"), series("monitoring"), "no monitoring yet");
  showScores();
  showWarnings();
  const samples = detail.samples.join();
  if (samples !== run.samples) {
    run.samples = samples;
    $("samples").replaceChildren(...detail.samples.map((sample) => {
      const img = document.createElement("img");
      img.src = `${base}/samples/${encodeURIComponent(sample)}`;
      img.alt = img.title = sample;
      return img;
    }));
  }
}

function series(panel) {
  const keys = Object.keys(run.panels).filter((k) => run.panels[k] === panel).sort();
  return keys.map((key) => ({
    key,
    points: run.records.filter((r) => typeof r[key] === "number").map((r) => [r.step, r[key]]),
  })).filter((s) => s.points.length);
}

// Validation metrics differ in scale (PSNR near 20 dB, L1 near 0.2): on one axis each would
// look flat, so each gets a small chart of its own, as in losses.png.
function drawValidation() {
  const lines = series("validation");
  const box = $("charts-validation");
  box.dataset.charts = lines.length;
  if (!lines.length) {
    const text = run.unpaired ? NO_SCORES : "no validation yet";
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: text }));
    return;
  }
  const drawn = new Map([...box.querySelectorAll("canvas")].map((c) => [c.dataset.key, c]));
  box.replaceChildren(...lines.map((s) => {
    const canvas = drawn.get(s.key) || Object.assign(document.createElement("canvas"), { width: 276, height: 150 });
    canvas.dataset.key = s.key;
    drawChart(canvas, [s], "");
    return canvas;
  }));
}

// Curves on one canvas; data-points (the longest curve) and data-range (the y axis's ends)
// say what was drawn.
function drawChart(canvas, lines, empty) {
  const ctx = canvas.getContext("2d");
  canvas.dataset.points = lines.reduce((n, s) => Math.max(n, s.points.length), 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px sans-serif";
  if (!lines.length) {
    ctx.fillStyle = "#6b7580";
    ctx.fillText(empty, 20, 24);
    return;
  }
  const all = lines.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  // Weighted terms (pix2pix's 100 x L1) dwarf the GAN losses on a linear axis, as in losses.png.
  const log = y0 > 0 && y1 > 10 * y0;
  const f = log ? Math.log10 : (v) => v;
  [y0, y1] = [f(y0), f(y1)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  canvas.dataset.range = [y0, y1].map((v) => (log ? 10 ** v : v)).join();
  const legendRows = Math.ceil(lines.length / 4);
  const left = 48, right = 8, top = 10 + 14 * legendRows, bottom = 22;
  const w = canvas.width - left - right, h = canvas.height - top - bottom;
  const px = (x) => left + ((x - x0) / (x1 - x0)) * w;
  const py = (y) => top + h - ((f(y) - y0) / (y1 - y0)) * h;
  ctx.strokeStyle = "#d9dee3";
  ctx.fillStyle = "#6b7580";
  ctx.strokeRect(left, top, w, h);
  for (let i = 0; i <= 4; i++) {
    const value = y0 + ((y1 - y0) * i) / 4;
    const y = top + h - (h * i) / 4;
    const label = log ? 10 ** value : value;
    ctx.fillText(Math.abs(label) >= 100 ? label.toFixed(0) : label.toPrecision(3), 4, y + 4);
  }
  ctx.fillText(`step ${x0}`, left, canvas.height - 6);
  ctx.fillText(`${x1}`, left + w - 30, canvas.height - 6);
  lines.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.beginPath();
    s.points.forEach(([x, y], j) => (j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
    ctx.stroke();
    if (s.points.length < 30) for (const [x, y] of s.points) ctx.fillRect(px(x) - 2, py(y) - 2, 4, 4);
    ctx.fillText(s.key, left + (i % 4) * 120, 12 + Math.floor(i / 4) * 14);
  });
}

function showScores() {
  const lines = series("validation");
  const table = $("val-table");
  if (!lines.length) {
    const row = document.createElement("tr");
    const text = run.unpaired ? NO_SCORES : "no validation yet";
    row.append(Object.assign(document.createElement("td"), { textContent: text }));
    table.replaceChildren(row);
    return;
  }
  const rows = [["", ...lines.map((s) => s.key)]];
  rows.push(["latest", ...lines.map((s) => s.points[s.points.length - 1][1].toPrecision(4))]);
  rows.push(["at step", ...lines.map((s) => s.points[s.points.length - 1][0])]);
  table.replaceChildren(...rows.map((cells, i) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement(i === 0 ? "th" : "td");
      td.textContent = cell;
      tr.append(td);
    }
    return tr;
  }));
}

function showWarnings() {
  const warned = run.records.flatMap((r) => (r.warnings || []).map((w) => `step ${r.step}, epoch ${r.epoch}: ${w}`));
  const shown = warned.reverse().slice(0, 50);
  $("warnings").replaceChildren(...(shown.length ? shown : ["none"]).map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    item.className = shown.length ? "" : "muted";
    return item;
  }));
}

// --------------------------------------------------------------------------------------

setupImages();
setupPaint();
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
init().catch((error) => {
  document.querySelector("main").prepend(Object.assign(document.createElement("p"),
    { className: "error", textContent: `cannot reach the server: ${error.message}` }));
});
