// The paint tab of `translate serve`, for label models: pick a class, paint class ids on a
// canvas, and see the model's image redrawn as you draw. Loaded before app.js, whose $, api,
// modelQuery and crc32 it calls once the page runs; app.js calls showPaintTab.
"use strict";

const PAINT_SIDE = 256;  // a new map is PAINT_SIDE x PAINT_SIDE ids; an upload keeps its size
const PAINT_SEND_MS = 80;  // during a stroke, a map goes out at most this often
const paint = {
  model: null, width: PAINT_SIDE, height: PAINT_SIDE, ids: new Uint8Array(PAINT_SIDE * PAINT_SIDE),
  cls: 0, last: null, sent: 0, shown: 0, lastSend: 0, url: null,
};

// The tab shows only for a label model; each model change starts a blank map of class 0.
function showPaintTab(model) {
  const paintable = model.input_kind === "labels" && model.classes && model.classes.length <= 256;
  $("nav-paint").hidden = !paintable;
  paint.model = paintable ? model : null;
  if (!paintable) {
    if (location.hash === "#paint") location.hash = "#try";
    return;
  }
  paint.cls = 0;
  $("seed-controls").hidden = !model.noise_dim;
  $("palette").replaceChildren(...model.classes.map((c, i) => {
    const button = document.createElement("button");
    button.className = "swatch";
    button.dataset.cls = i;
    button.style.setProperty("--swatch", `rgb(${c.color.join(",")})`);
    button.textContent = c.name;
    button.addEventListener("click", () => pickClass(i));
    return button;
  }));
  pickClass(0);
  newMap(PAINT_SIDE, PAINT_SIDE, new Uint8Array(PAINT_SIDE * PAINT_SIDE));
}

function pickClass(i) {
  paint.cls = i;
  for (const b of $("palette").children) b.classList.toggle("active", Number(b.dataset.cls) === i);
}

function newMap(width, height, ids) {
  Object.assign(paint, { width, height, ids });
  const canvas = $("paint-canvas");
  canvas.width = width;
  canvas.height = height;
  renderMap();
  if (location.hash === "#paint") sendMap();
}

// The ids in the classes' colours; the canvas shows them and never holds them.
function renderMap() {
  const image = new ImageData(paint.width, paint.height);
  // One 32-bit write a pixel: RGBA bytes packed little-endian, as every browser's CPU is.
  const packed = paint.model.classes.map(({ color: [r, g, b] }) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0);
  const pixels = new Uint32Array(image.data.buffer);
  for (let i = 0; i < paint.ids.length; i++) pixels[i] = packed[paint.ids[i]];
  $("paint-canvas").getContext("2d").putImageData(image, 0, 0);
}

// A disk of the current class at map pixel (x, y): whole ids, never blended.
function stamp(x, y) {
  const r = Number($("brush").value) / 2;
  const top = Math.max(0, Math.floor(y - r)), bottom = Math.min(paint.height - 1, Math.ceil(y + r));
  const left = Math.max(0, Math.floor(x - r)), right = Math.min(paint.width - 1, Math.ceil(x + r));
  for (let j = top; j <= bottom; j++) {
    for (let i = left; i <= right; i++) {
      if ((i - x) ** 2 + (j - y) ** 2 <= r * r) paint.ids[j * paint.width + i] = paint.cls;
    }
  }
}

function mapPoint(event) {
  const box = $("paint-canvas").getBoundingClientRect();
  return [(event.clientX - box.left) * paint.width / box.width,
          (event.clientY - box.top) * paint.height / box.height];
}

// Disks along the segment from the last point, a quarter brush apart, so fast strokes stay whole.
function strokeTo(point) {
  const [x0, y0] = paint.last || point;
  const [x1, y1] = point;
  const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / Math.max(1, Number($("brush").value) / 4)));
  for (let s = 1; s <= steps; s++) stamp(x0 + ((x1 - x0) * s) / steps, y0 + ((y1 - y0) * s) / steps);
  paint.last = point;
  renderMap();
}

// An 8-bit gray PNG of the ids: what /api/paint reads (the browser's own encoders write colour).
async function grayPng(ids, width, height) {
  const rows = new Uint8Array((width + 1) * height);  // each row: filter type 0, then its ids
  for (let y = 0; y < height; y++) rows.set(ids.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const zlib = new Uint8Array(await new Response(
    new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const chunk = (type, data) => {
    const body = new Uint8Array(4 + data.length);
    body.set(new TextEncoder().encode(type));
    body.set(data, 4);
    const out = new DataView(new ArrayBuffer(12 + data.length));
    out.setUint32(0, data.length);
    new Uint8Array(out.buffer).set(body, 4);
    out.setUint32(8 + data.length, crc32(body));
    return out;
  };
  const header = new DataView(new ArrayBuffer(13));
  header.setUint32(0, width);
  header.setUint32(4, height);
  header.setUint8(8, 8);  // bit depth 8, colour type 0 (gray), deflate, no filter, no interlace
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Blob([signature, chunk("IHDR", new Uint8Array(header.buffer)), chunk("IDAT", zlib),
                   chunk("IEND", new Uint8Array(0))], { type: "image/png" });
}

// JPEG: a redraw's reply encodes in a fraction of a PNG's time.
function paintQuery() {
  return modelQuery() + "&format=jpeg" + (paint.model.noise_dim ? `&seed=${Number($("seed").value) || 0}` : "");
}

// Replies may arrive out of order: one older than the image shown is dropped.
async function sendMap() {
  if (!paint.model) return;
  const seq = ++paint.sent;
  paint.lastSend = performance.now();
  const body = await grayPng(paint.ids, paint.width, paint.height);
  const start = performance.now();
  try {
    const headers = { "Content-Type": "image/png" };
    const response = await api(`api/paint?${paintQuery()}`, { method: "POST", body, headers });
    const blob = await response.blob();
    if (seq < paint.shown) return;
    paint.shown = seq;
    if (paint.url) URL.revokeObjectURL(paint.url);
    const out = $("paint-out");
    const url = paint.url = URL.createObjectURL(blob);
    out.src = url;
    $("paint-error").hidden = true;
    $("paint-ms").textContent = (performance.now() - start).toFixed(0);
    $("paint-model-ms").textContent = response.headers.get("X-Model-Ms");
    // Counted once decoded, so the count says what is on screen; a newer reply may
    // replace this one first, and then that one is counted.
    if (await out.decode().then(() => out.src === url, () => false)) {
      out.dataset.frames = Number(out.dataset.frames) + 1;
    }
  } catch (error) {
    if (error.status === 503) return;  // the server is busy; the stroke's end sends again
    $("paint-error").textContent = error.message;
    $("paint-error").hidden = false;
  }
}

async function uploadLabels(file) {
  try {
    const headers = { "Content-Type": "application/octet-stream" };
    const response = await api(`api/labels?${modelQuery()}`, { method: "POST", body: file, headers });
    const bitmap = await createImageBitmap(await response.blob());
    const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const ids = new Uint8Array(bitmap.width * bitmap.height);
    for (let i = 0; i < ids.length; i++) ids[i] = rgba[4 * i];  // gray: red is the id
    newMap(bitmap.width, bitmap.height, ids);
  } catch (error) {
    $("paint-error").textContent = error.message;
    $("paint-error").hidden = false;
  }
}

function setupPaint() {
  const canvas = $("paint-canvas");
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    paint.last = null;
    strokeTo(mapPoint(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!canvas.hasPointerCapture(event.pointerId)) return;
    strokeTo(mapPoint(event));
    if (performance.now() - paint.lastSend >= PAINT_SEND_MS) sendMap();
  });
  const end = () => { if (paint.last) { paint.last = null; sendMap(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("paint-fill").addEventListener("click", () => {
    newMap(paint.width, paint.height, new Uint8Array(paint.width * paint.height).fill(paint.cls));
  });
  $("seed").addEventListener("change", sendMap);
  $("new-noise").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 2 ** 31);
    sendMap();
  });
  $("label-file").addEventListener("change", (event) => {
    if (event.target.files.length) uploadLabels(event.target.files[0]);
    event.target.value = "";
  });
  window.addEventListener("hashchange", () => { if (location.hash === "#paint") sendMap(); });
}
