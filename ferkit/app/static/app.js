// ferkit page: send a photo or camera frames to /api/predict and draw what comes back.
// Camera frames are sent one at a time: a new frame is captured only when the previous answer
// has arrived, so a slow server sees fewer frames instead of a growing queue.
"use strict";

const EMOJI = {
  angry: "\u{1F620}", disgust: "\u{1F922}", fear: "\u{1F628}", happy: "\u{1F604}",
  sad: "\u{1F622}", surprise: "\u{1F632}", neutral: "\u{1F610}",
};
const COLORS = {
  angry: "#e53935", disgust: "#43a047", fear: "#8e24aa", happy: "#f9a825",
  sad: "#1e88e5", surprise: "#ec407a", neutral: "#00897b",
};
const WINDOW_S = 20;          // timeline length
const CAPTURE_MAX_SIDE = 480; // frames are downscaled before upload: faster to send and to decode
const RETRY_MS = 1000;        // pause after a failed request before the next frame
const REQUEST_TIMEOUT_MS = 30000;    // a request with no answer by then is given up (and the loop goes on)
const PHOTO_MAX_SIDE = 2048;         // bigger photos are downscaled here before upload (phone photos
const PHOTO_MAX_BYTES = 4 * 1024 * 1024;  // would often exceed the server's upload limit)
const PHOTO_MIN_SIDE = 256;          // re-encoding to fit the upload limit stops shrinking here
const MULTIPART_ROOM = 16 * 1024;    // the form's own bytes around the file count toward the limit

const $ = (id) => document.getElementById(id);
const view = $("view");
const ctx = view.getContext("2d");
const video = $("video");
const capture = document.createElement("canvas");

const state = {
  classes: Object.keys(EMOJI),
  mode: "idle",          // idle | photo | camera
  photo: null,           // ImageBitmap of the chosen photo
  faces: [],             // last faces, in the coordinates of `frameSize`
  frameSize: [1, 1],     // width, height of the image the server analysed
  stream: null,
  starting: false,       // waiting for camera permission: a second click must not open a second stream
  seq: 0,                // bumped by every new photo and camera start/stop: older answers are ignored
  inFlight: false,
  frames: 0,             // camera frames analysed
  sentTimes: [],         // arrival times of recent answers, for the rate shown
  uploadLimit: Infinity, // the server's largest accepted request (from /api/health)
  history: [],           // {t, scores|null} of the main face, for the timeline
  t0: 0,
};

// The status is a live region: an unchanged text is not written again, so that a screen reader
// does not repeat "Camera on: 1 face." for every camera frame.
function setStatus(text, isError = false) {
  const el = $("status");
  if (el.textContent !== text) el.textContent = text;
  el.classList.toggle("error", isError);
}

function setMode(mode) {
  state.mode = mode;
  document.body.dataset.state = mode;
  // The face cards change with every camera frame: announced, they would be read out without end.
  $("faces").setAttribute("aria-live", mode === "camera" ? "off" : "polite");
}

function emojiFor(name) { return EMOJI[name] || "\u{1F642}"; }
function colorFor(name) { return COLORS[name] || "#2962ff"; }
function pct(p) { return `${(100 * p).toFixed(0)}%`; }

// ---------------------------------------------------------------- server

// The model file's figures in words: a shipped model's PublicTest accuracy with the test-time views this
// server classifies faces with (photos and camera frames alike), else with the centre view alone; a
// training run's validation accuracy.
const VIEW_NAMES = {none: "centre view", flip: "centre and mirror views", tencrop: "ten-crop"};
function accuracySummary(figures, views, backend) {
  const percent = (value) => `${(100 * value).toFixed(1)}%`;
  // The int8 graph's figure is measured on the centre view only; the float figures are not its own.
  if (backend === "int8") {
    const int8 = figures["int8.publictest_acc_none"];
    return typeof int8 === "number" ? `FER2013 PublicTest accuracy ${percent(int8)} (int8, centre view)` : "";
  }
  const served = figures[`publictest_acc_${views}`];
  if (typeof served === "number") {
    const how = VIEW_NAMES[views] || views;
    return `FER2013 PublicTest accuracy ${percent(served)} (${how}, as this server classifies faces)`;
  }
  if (typeof figures.publictest_acc_none === "number") {
    return `FER2013 PublicTest accuracy ${percent(figures.publictest_acc_none)} (centre view)`;
  }
  if (typeof figures.val_acc === "number") return `validation accuracy ${percent(figures.val_acc)}`;
  return "";
}

async function loadModelInfo() {
  try {
    const r = await fetch("/api/model");
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const info = await r.json();
    if (Array.isArray(info.classes) && info.classes.length) state.classes = info.classes;
    const parts = [`model ${info.name}`, `${info.classes.length} classes`,
                   `${(info.parameters / 1e6).toFixed(2)} M parameters`];
    const accuracy = accuracySummary(info.accuracy || {}, info.views, info.backend);
    if (accuracy) parts.push(accuracy);
    $("model").textContent = parts.join(" \u00b7 ");
  } catch (err) {
    $("model").textContent = `model information unavailable (${err.message})`;
  }
  buildLegend();
}

async function loadUploadLimit() {
  try {
    const r = await fetch("/api/health");
    const info = r.ok ? await r.json() : null;
    if (info && Number(info.max_upload_bytes) > 0) state.uploadLimit = Number(info.max_upload_bytes);
  } catch (err) { /* unknown: photos over PHOTO_MAX_BYTES are still re-encoded, and a 413 is shown */ }
}

// POST an image; resolves to the parsed answer or throws an Error carrying the server's message.
async function predict(body, contentType) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const options = { method: "POST", body, signal: controller.signal };
  if (contentType) options.headers = { "Content-Type": contentType };
  try {
    let r;
    try {
      r = await fetch("/api/predict", options);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      // fetch says only "Failed to fetch" (or "NetworkError ..."): the server is gone or unreachable.
      throw new Error("cannot reach the ferkit server: is `ferkit serve` still running? Try again once it is");
    }
    let data = null;
    try { data = await r.json(); } catch (err) {
      if (err.name === "AbortError") throw err;  // the timeout, while the body was read
    }
    if (!r.ok) throw new Error((data && data.error) || httpProblem(r.status));
    if (!data || !Array.isArray(data.faces)) throw new Error("unexpected answer from the server (not ferkit's JSON)");
    return data;
  } catch (err) {
    if (err.name === "AbortError") throw new Error(`no answer from the server within ${REQUEST_TIMEOUT_MS / 1000} s`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// An answer that is not ferkit's JSON (a proxy's error page, say), in words.
function httpProblem(status) {
  const words = {413: "the picture is too large for this server", 502: "the server behind this address is not answering",
                 503: "the server is busy", 504: "the server took too long to answer"};
  return `${words[status] || "the server could not answer"} (HTTP ${status})`;
}

// The formats the server decodes (ferkit.data.images.READABLE_FORMATS).
const SERVER_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/avif", "image/gif", "image/bmp",
                              "image/tiff", "image/x-portable-pixmap", "image/x-portable-graymap",
                              "image/x-portable-bitmap", "image/x-portable-anymap"]);

// The photo to upload: the file itself, or a JPEG of it downscaled to PHOTO_MAX_SIDE when it is
// larger than that, or bigger than PHOTO_MAX_BYTES or than the server accepts (then smaller
// still, down to PHOTO_MIN_SIDE, until it fits), or in a format the server does not read (Safari
// decodes an iPhone's HEIC photos; the server does not).  A file the browser cannot decode goes as
// it is, so that the server names the problem.
async function uploadable(file) {
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) return { body: file, bitmap: null };
  const budget = Math.min(PHOTO_MAX_BYTES, state.uploadLimit - MULTIPART_ROOM);
  const longSide = Math.max(bitmap.width, bitmap.height);
  const minScale = Math.min(1, PHOTO_MIN_SIDE / longSide);
  let scale = Math.min(1, PHOTO_MAX_SIDE / longSide);
  if (scale === 1 && file.size <= budget && SERVER_TYPES.has(file.type)) return { body: file, bitmap };
  for (;;) {
    const blob = await jpegOf(bitmap, scale);
    if (!blob) return { body: file, bitmap };
    if (blob.size <= budget || scale <= minScale) return { body: blob, bitmap };
    scale = Math.max(scale * 0.7, minScale);
  }
}

async function jpegOf(bitmap, scale) {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";  // transparent pixels on white, as the server reads a transparent file (JPEG has no alpha)
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

// ---------------------------------------------------------------- drawing

// The canvas gets the resolution it is shown at (small photos are enlarged, so boxes and labels
// stay sharp), but never more than 1280 pixels on its long side.
function fitCanvas(width, height) {
  // The room the picture has (the canvas itself is as wide as its last picture, which says nothing).
  const room = (view.parentElement && view.parentElement.clientWidth) || width;
  const shown = room * (window.devicePixelRatio || 1);
  const scale = Math.min(1280 / Math.max(width, height), Math.max(1, shown / width));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  if (view.width !== w || view.height !== h) { view.width = w; view.height = h; }
}

// The picture (none: a file this browser cannot show, which the server could still read) on white,
// as the server sees transparent pixels, and the boxes of the last answer.
function drawScene(source) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, view.width, view.height);
  if (source) ctx.drawImage(source, 0, 0, view.width, view.height);
  const sx = view.width / state.frameSize[0];
  const sy = view.height / state.frameSize[1];
  // Sizes in canvas pixels, but at least 2 px lines and 13 px labels as shown: on a phone a 1280 px canvas
  // is shown at a third of its size, which made the labels 7 px tall.
  const onScreen = view.getBoundingClientRect().width / view.width || 1;
  const line = Math.max(2 / onScreen, Math.round(view.width / 260));
  const fontSize = Math.round(Math.max(13 / onScreen, view.width / 48));
  ctx.font = `600 ${fontSize}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  state.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    const color = colorFor(face.emotion);
    // A white halo under the coloured line keeps the box visible on any background.
    ctx.lineWidth = line + 2;
    ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    ctx.lineWidth = line;
    ctx.strokeStyle = color;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    const label = `${i + 1} ${emojiFor(face.emotion)} ${face.emotion} ${pct(face.confidence)}`;
    const tw = ctx.measureText(label).width + 10;
    const ty = Math.max(fontSize + 6, y * sy);
    const lx = Math.max(0, Math.min(x * sx - line / 2, view.width - tw));  // a face at the right edge keeps its label
    ctx.fillStyle = color;
    ctx.fillRect(lx, ty - fontSize - 6, tw, fontSize + 6);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, lx + 4 + line / 2, ty - 2);
  });
}

// A new photo, the camera or an error: the photo on screen no longer goes with what is shown.
function dropPhoto() {
  if (state.photo && state.photo.close) state.photo.close();  // a decoded photo can take 100+ MB
  state.photo = null;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, view.width, view.height);
}

// After an error the last answer no longer holds: no boxes, no cards (not "No face found.").
function clearFaces() {
  state.faces = [];
  $("faces").replaceChildren();
  $("faces").dataset.count = "0";
}

function renderFaces(faces) {
  const box = $("faces");
  box.replaceChildren();
  box.dataset.count = String(faces.length);
  if (!faces.length) {
    const p = document.createElement("p");
    p.className = "none";
    p.textContent = "No face found.";
    box.append(p);
    return;
  }
  faces.forEach((face, i) => {
    const card = document.createElement("div");
    card.className = "face";
    card.dataset.emotion = face.emotion;
    const title = document.createElement("h3");
    const emoji = document.createElement("span");
    emoji.className = "emoji";
    emoji.textContent = emojiFor(face.emotion);
    const name = document.createElement("span");
    name.className = "emotion";
    name.textContent = `Face ${i + 1}: ${face.emotion}`;
    const conf = document.createElement("span");
    conf.className = "conf";
    conf.textContent = pct(face.confidence);
    title.append(emoji, name, conf);

    const bars = document.createElement("div");
    bars.className = "bars";
    for (const cls of state.classes) {
      const p = Number(face.scores[cls] || 0);
      const label = document.createElement("span");
      label.textContent = cls;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.class = cls;
      const fill = document.createElement("span");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = colorFor(cls);
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = pct(p);
      if (cls === face.emotion) { label.classList.add("top"); value.classList.add("top"); }
      bars.append(label, bar, value);
    }
    card.append(title, bars);
    box.append(card);
  });
}

// The main face is the largest one: the person in front of the camera.
function mainFace(faces) {
  let best = null;
  for (const f of faces) if (!best || f.box[2] * f.box[3] > best.box[2] * best.box[3]) best = f;
  return best;
}

function buildLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const cls of state.classes) {
    const li = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.style.background = colorFor(cls);
    li.append(swatch, `${emojiFor(cls)} ${cls}`);
    legend.append(li);
  }
}

function drawTimeline(now) {
  const canvas = $("timeline");
  const width = canvas.clientWidth || canvas.width;
  if (canvas.width !== width) canvas.width = width;
  const g = canvas.getContext("2d");
  const h = canvas.height;
  const pad = 4;
  g.clearRect(0, 0, canvas.width, h);
  g.strokeStyle = "#e3e7ec";
  g.lineWidth = 1;
  for (let s = 0; s <= WINDOW_S; s += 5) {  // a grid line every 5 seconds
    const x = canvas.width - (s / WINDOW_S) * canvas.width;
    g.beginPath(); g.moveTo(x, 0); g.lineTo(x, h); g.stroke();
  }
  g.fillStyle = "#8a94a3";
  g.font = "11px system-ui, sans-serif";
  g.textBaseline = "top";
  for (let s = 5; s < WINDOW_S; s += 5) {
    g.fillText(`−${s} s`, canvas.width - (s / WINDOW_S) * canvas.width + 3, 2);
  }
  g.fillText("100%", 3, 2);
  g.textBaseline = "bottom";
  g.fillText("0%", 3, h - 1);
  const xOf = (t) => canvas.width - ((now - t) / (WINDOW_S * 1000)) * canvas.width;
  const yOf = (p) => h - pad - p * (h - 2 * pad);
  g.lineWidth = 2;
  for (const cls of state.classes) {
    g.strokeStyle = colorFor(cls);
    g.beginPath();
    let drawing = false;
    for (const point of state.history) {
      if (!point.scores) { drawing = false; continue; }  // no face: a gap in the line
      const x = xOf(point.t), y = yOf(point.scores[cls] || 0);
      if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
      drawing = true;
    }
    g.stroke();
  }
}

// ---------------------------------------------------------------- photo

async function onPhoto(event) {
  const file = event.target.files && event.target.files[0];
  try {
    if (file) await analysePhoto(file);
  } finally {
    event.target.value = "";  // choosing the same file again fires a new change event
  }
}

// A picture dropped on the page or pasted (a screenshot, an image copied in another tab) is analysed as a
// chosen one; anything else dropped or pasted is said, not silently ignored.
function imageFrom(items, how) {
  const files = Array.from(items || []);
  // A file with no type (no extension, e.g. IMG_0001) may be a picture too: the browser or the server decides.
  const image = files.find((f) => f.type.startsWith("image/")) || files.find((f) => !f.type);
  if (!image && files.length) setStatus(`${how} ${files[0].name || "item"}: not an image`, true);
  return image;
}

function onDrop(event) {
  event.preventDefault();
  document.body.classList.remove("dragging");
  const file = imageFrom(event.dataTransfer && event.dataTransfer.files, "dropped");
  if (file) analysePhoto(file);
}

function onPaste(event) {
  const file = imageFrom(event.clipboardData && event.clipboardData.files, "pasted");
  if (file) { event.preventDefault(); analysePhoto(file); }
}

async function analysePhoto(file) {
  stopCamera();
  setMode("photo");
  $("timeline-box").hidden = true;  // the camera's timeline says nothing of a photo
  dropPhoto();
  clearFaces();
  const seq = ++state.seq;
  document.body.dataset.state = "loading";
  setStatus(`Analysing ${file.name}\u2026`);
  let decoded = null;
  try {
    const { body, bitmap } = await uploadable(file);
    decoded = bitmap;
    const form = new FormData();
    form.append("file", body, file.name);
    const answer = await predict(form);
    if (seq !== state.seq) { if (bitmap) bitmap.close(); return; }  // another photo or the camera took over
    state.photo = bitmap;
    state.faces = answer.faces;
    state.frameSize = [answer.width, answer.height];
    fitCanvas(answer.width, answer.height);
    drawScene(bitmap);
    renderFaces(answer.faces);
    const n = answer.faces.length;
    const preview = bitmap ? "" : " (this browser cannot show the picture: boxes only)";
    setStatus(`${file.name}: ${n} face${n === 1 ? "" : "s"} in ${answer.ms.toFixed(0)} ms (${answer.model})${preview}.`);
    document.body.dataset.state = "photo-done";
  } catch (err) {
    if (decoded && decoded !== state.photo) decoded.close();
    if (seq !== state.seq) return;
    dropPhoto();
    clearFaces();
    const advice = /over the limit|too large/.test(err.message)
      ? " (this browser cannot shrink this format: convert it to JPEG or PNG, or start the server with a larger --max-upload-mb)"
      : "";
    setStatus(`${file.name}: ${err.message}${advice}`, true);
    document.body.dataset.state = "photo-error";
  }
}

// ---------------------------------------------------------------- camera

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser gives no camera access here (it needs https or localhost).", true);
    return;
  }
  if (state.starting) return;  // the permission prompt of the first click is still open
  state.starting = true;
  // aria-disabled, not disabled: a disabled button loses the keyboard focus (state.starting guards clicks).
  $("camera").setAttribute("aria-disabled", "true");
  setStatus("Starting the camera\u2026");
  const seqAtStart = state.seq;  // a photo chosen while the permission prompt is open wins
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
    video.srcObject = stream;
    await video.play();
  } catch (err) {
    if (stream) for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    setStatus(`Camera unavailable: ${cameraProblem(err)}`, true);
    return;
  } finally {
    state.starting = false;
    $("camera").removeAttribute("aria-disabled");
  }
  if (state.seq !== seqAtStart) {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    return;
  }
  state.stream = stream;
  state.seq += 1;
  for (const track of stream.getVideoTracks()) {
    // Unplugged, or taken away by the system: stop instead of sending the last frame forever.
    track.addEventListener("ended", () => {
      if (state.stream === stream) { stopCamera(); setStatus("The camera stopped (unplugged or in use elsewhere?).", true); }
    });
  }
  setMode("camera");
  dropPhoto();
  $("rate").textContent = "";
  state.frames = 0;
  state.faces = [];
  state.history = [];
  state.sentTimes = [];
  state.t0 = performance.now();
  document.body.dataset.frames = "0";
  $("camera").textContent = "Stop camera";
  $("camera").classList.add("on");
  $("timeline-box").hidden = false;
  setStatus("Camera on.");
  requestAnimationFrame(cameraLoop);
}

// getUserMedia's errors in words, with what to do (the browser's own message says neither).
function cameraProblem(err) {
  const hints = {
    NotFoundError: "no camera found; choose a photo instead",
    OverconstrainedError: "no camera found; choose a photo instead",
    NotAllowedError: "the camera is blocked for this page; allow it in the browser's site settings and try again",
    SecurityError: "the camera is blocked for this page; allow it in the browser's site settings and try again",
    NotReadableError: "the camera is in use by another program, or failed; close that program and try again",
    AbortError: "the camera could not start; try again",
  };
  return hints[err.name] || err.message || err.name;
}

function stopCamera() {
  if (!state.stream) return;
  for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  state.seq += 1;  // an answer still on its way belongs to the stopped session
  state.inFlight = false;  // and must not hold back the next session's first frame
  video.srcObject = null;
  $("camera").textContent = "Start camera";
  $("camera").classList.remove("on");
  if (state.mode === "camera") {
    // The last frame's boxes, cards and rate describe a camera that is off now.
    setMode("idle");
    clearFaces();
    dropPhoto();
    $("rate").textContent = "";
    setStatus("Camera off.");
  }
}

function cameraLoop(now) {
  if (state.mode !== "camera" || !state.stream) return;
  if (video.videoWidth) {
    fitCanvas(video.videoWidth, video.videoHeight);
    drawScene(video);
    if (!state.inFlight) sendFrame();  // otherwise this frame is dropped
  }
  state.history = state.history.filter((p) => now - p.t <= WINDOW_S * 1000);
  drawTimeline(now);
  requestAnimationFrame(cameraLoop);
}

function sendFrame() {
  state.inFlight = true;
  const scale = Math.min(1, CAPTURE_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  capture.width = Math.round(video.videoWidth * scale);
  capture.height = Math.round(video.videoHeight * scale);
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  const size = [capture.width, capture.height];
  const seq = state.seq;
  capture.toBlob(async (blob) => {
    let pause = 0;
    try {
      if (!blob) throw new Error("could not encode the frame");
      const answer = await predict(blob, "image/jpeg");
      if (state.mode !== "camera" || seq !== state.seq) return;
      const t = performance.now();
      state.faces = answer.faces;
      state.frameSize = size;
      const main = mainFace(answer.faces);
      state.history.push({ t, scores: main ? main.scores : null });
      state.frames += 1;
      document.body.dataset.frames = String(state.frames);
      state.sentTimes = state.sentTimes.filter((s) => t - s < 5000).concat(t);
      renderFaces(answer.faces);
      const rate = state.sentTimes.length / Math.min(5, Math.max(0.5, (t - state.t0) / 1000));
      $("rate").textContent = `(${rate.toFixed(1)} frames/s analysed, ${answer.ms.toFixed(0)} ms each on the server)`;
      setStatus(`Camera on: ${answer.faces.length} face${answer.faces.length === 1 ? "" : "s"}.`);
    } catch (err) {
      if (state.mode !== "camera" || seq !== state.seq) return;
      // The last answer no longer describes what the camera shows: clear it rather than keep it on screen.
      clearFaces();
      $("rate").textContent = "";  // no frame is being analysed now
      state.history.push({ t: performance.now(), scores: null });
      setStatus(`Frame not analysed: ${err.message}`, true);
      pause = RETRY_MS;
    } finally {
      // Only this session's request frees the next frame (a stopped session's late answer must not).
      setTimeout(() => { if (seq === state.seq) state.inFlight = false; }, pause);
    }
  }, "image/jpeg", 0.85);
}

// ---------------------------------------------------------------- wiring

$("photo").addEventListener("change", onPhoto);
document.addEventListener("dragover", (event) => { event.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) document.body.classList.remove("dragging");  // left the window
});
document.addEventListener("drop", onDrop);
document.addEventListener("paste", onPaste);
$("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
window.addEventListener("resize", () => {
  if (state.mode === "photo" && document.body.dataset.state === "photo-done") drawScene(state.photo);
});
loadModelInfo();
loadUploadLimit();
