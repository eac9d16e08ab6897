// voicegender page: live state from /api/v1/events (the daemon), and the browser's microphone
// streamed to /api/v1/stream. No libraries, no build step; works offline.

const TOKEN_KEY = "voicegender-token";
const WINDOW_S = 600; // the timeline shows the last 10 minutes
const LEVEL_FLOOR_DB = -80;

const $ = (id) => document.getElementById(id);
const page = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  thresholds: { male_below: 0.35, female_above: 0.65 },
  holdSeconds: 3,
  daemon: false,
  finals: [], // {time (ms), label, p_female, speech_seconds}
  browserActive: false,
  holdTimer: null,
};

// -- the API ---------------------------------------------------------------------------------------

class NeedToken extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (page.token) headers.Authorization = `Bearer ${page.token}`;
  const response = await fetch(`/api/v1${path}`, { ...options, headers });
  if (response.status === 401) {
    askForToken();
    throw new NeedToken("token needed");
  }
  return response;
}

function withToken(path) {
  return page.token ? `${path}?access_token=${encodeURIComponent(page.token)}` : path;
}

function askForToken() {
  $("token-form").hidden = false;
  setConnection("token needed", "error");
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  page.token = $("token-input").value.trim();
  localStorage.setItem(TOKEN_KEY, page.token);
  $("token-form").hidden = true;
  start();
});

function setConnection(text, kind) {
  const el = $("connection");
  el.textContent = text;
  el.dataset.kind = kind;
}

// -- the display -------------------------------------------------------------------------------------

function pct(x) {
  return `${(100 * x).toFixed(1)}%`;
}

function drawBand() {
  const t = page.thresholds;
  $("band").style.left = pct(t.male_below);
  $("band").style.width = pct(t.female_above - t.male_below);
}

function setLeds(label) {
  for (const which of ["male", "female"]) {
    const led = $(`led-${which}`);
    led.classList.toggle("on", label === which);
    led.classList.toggle("blink-slow", label === "uncertain");
  }
}

function setStatusLed(state) {
  const led = $("led-status");
  led.classList.toggle("heartbeat", state === "listening");
  led.classList.toggle("on", state === "speech" || state === "starting");
  led.classList.toggle("blink-fast", state === "error");
}

function showDecision(d) {
  const label = $("label");
  label.textContent = d.label.replace("_", " ");
  label.dataset.label = d.label;
  label.dataset.final = String(d.final);
  const p = d.p_female;
  if (p === null || p === undefined) {
    $("pfill").style.width = "0";
    $("pmark").hidden = true;
    $("pvalue").textContent = "–";
  } else {
    $("pfill").style.width = pct(p);
    $("pmark").hidden = false;
    $("pmark").style.left = pct(p);
    $("pvalue").textContent = p.toFixed(2);
  }
  setLeds(d.label);
  clearTimeout(page.holdTimer);
  if (d.final && page.holdSeconds > 0) {
    // The Pi clears a final decision from its LEDs after [leds] decision_hold_seconds.
    page.holdTimer = setTimeout(() => setLeds("none"), page.holdSeconds * 1000);
  }
}

function showState(state, detail) {
  $("state").textContent = state;
  $("state").title = detail || "";
  $("speech").classList.toggle("on", state === "speech");
  setStatusLed(state);
}

function showLevel(db) {
  const value = db === null || db === undefined ? LEVEL_FLOOR_DB : Math.max(LEVEL_FLOOR_DB, Math.min(0, db));
  $("level").style.width = pct((value - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB);
  $("level-value").textContent = db === null || db === undefined ? "–" : `${db.toFixed(0)} dB`;
}

function listItem(d, when) {
  const li = document.createElement("li");
  li.dataset.label = d.label;
  const p = d.p_female === null ? "–" : d.p_female.toFixed(2);
  li.textContent = `${when} ${d.label} (p_female ${p}, ${d.speech_seconds.toFixed(1)} s of speech)`;
  return li;
}

function addFinal(d) {
  const time = Date.parse(d.time);
  page.finals.push({ ...d, t: time });
  const cutoff = Date.now() - WINDOW_S * 1000;
  page.finals = page.finals.filter((x) => x.t >= cutoff);
  const list = $("decisions");
  list.prepend(listItem(d, new Date(time).toLocaleTimeString()));
  while (list.children.length > 20) list.lastChild.remove();
  drawTimeline();
}

function drawTimeline() {
  const svg = $("timeline");
  const now = Date.now();
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  for (const d of page.finals) {
    const end = (d.t - now) / 1000 + WINDOW_S;
    const start = end - Math.max(d.end - d.start, 0.5);
    if (end < 0) continue;
    const rect = document.createElementNS(ns, "rect");
    const p = d.p_female === null ? 0.5 : d.p_female;
    rect.setAttribute("x", Math.max(0, start).toFixed(1));
    rect.setAttribute("width", Math.max(1.5, end - Math.max(0, start)).toFixed(1));
    rect.setAttribute("y", (60 - 56 * p).toFixed(1)); // female up, male down
    rect.setAttribute("height", "4");
    rect.setAttribute("class", `seg ${d.label}`);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${new Date(d.t).toLocaleTimeString()} ${d.label} ${p.toFixed(2)}`;
    rect.append(title);
    svg.append(rect);
  }
}

// -- the daemon's events ------------------------------------------------------------------------------

let events = null;

function follow() {
  if (events) events.close();
  events = new EventSource(withToken("/api/v1/events"));
  events.addEventListener("open", () => setConnection("live", "ok"));
  events.addEventListener("error", () => setConnection("reconnecting…", "error"));
  events.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    if (page.browserActive) return;
    showState(s.state, s.detail);
    showLevel(s.level_db);
    if (s.decision) showDecision(s.decision);
  });
  events.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    if (!page.browserActive) showState(s.state, s.detail);
  });
  events.addEventListener("level", (e) => {
    if (!page.browserActive) showLevel(JSON.parse(e.data).level_db);
  });
  events.addEventListener("decision", (e) => {
    const d = JSON.parse(e.data);
    if (!page.browserActive) showDecision(d);
    if (d.final) addFinal(d);
  });
}

async function start() {
  try {
    const health = await (await api("/health")).json();
    page.thresholds = health.thresholds;
    drawBand();
    page.daemon = health.mode === "daemon";
    $("no-daemon").hidden = page.daemon;
    if (!page.daemon) {
      setConnection("no microphone here", "idle");
      showState("—", "");
      return;
    }
    const state = await (await api("/state")).json();
    page.holdSeconds = state.hold_seconds;
    const recent = await (await api("/decisions?limit=200")).json();
    for (const d of recent.decisions) addFinal(d);
    follow();
  } catch (err) {
    if (!(err instanceof NeedToken)) setConnection(`error: ${err.message}`, "error");
  }
}

// -- the browser's microphone -----------------------------------------------------------------------

const mic = { ws: null, context: null, stream: null };

function micStatus(text, kind) {
  $("mic-status").textContent = text;
  $("mic-status").dataset.kind = kind;
}

async function startMic() {
  if (!navigator.mediaDevices || !window.isSecureContext) {
    micStatus("this browser allows the microphone only on https:// or http://localhost", "error");
    return;
  }
  $("mic-start").disabled = true;
  try {
    mic.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    mic.context = new AudioContext();
    await mic.context.audioWorklet.addModule("/static/worklet.js");
    const source = mic.context.createMediaStreamSource(mic.stream);
    const node = new AudioWorkletNode(mic.context, "pcm-sender", { numberOfInputs: 1, numberOfOutputs: 1 });
    const mute = mic.context.createGain();
    mute.gain.value = 0; // keeps the graph pulling audio without playing it back
    source.connect(node).connect(mute).connect(mic.context.destination);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${withToken("/api/v1/stream")}`);
    ws.binaryType = "arraybuffer";
    mic.ws = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ sample_rate: mic.context.sampleRate, format: "s16le", channels: 1 }));
      node.port.onmessage = (e) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(e.data);
      };
      page.browserActive = true;
      $("source").textContent = "(this browser's microphone)";
      micStatus(`streaming at ${mic.context.sampleRate} Hz`, "ok");
      $("mic-stop").disabled = false;
    });
    ws.addEventListener("message", (e) => onStreamMessage(JSON.parse(e.data)));
    ws.addEventListener("close", (e) => {
      if (e.code !== 1000) micStatus(`closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`, "error");
      stopAudio();
    });
  } catch (err) {
    micStatus(`microphone: ${err.message}`, "error");
    stopAudio();
  }
}

function onStreamMessage(m) {
  if (m.type === "state") showState(m.state, "");
  else if (m.type === "level") showLevel(m.level_db);
  else if (m.type === "decision") {
    showDecision(m);
    if (m.final) {
      const list = $("mic-decisions");
      list.prepend(listItem(m, `${m.start.toFixed(1)}–${m.end.toFixed(1)} s`));
    }
  } else if (m.type === "error") micStatus(m.error, "error");
  else if (m.type === "end") micStatus("stopped", "idle");
}

function stopAudio() {
  if (mic.stream) mic.stream.getTracks().forEach((t) => t.stop());
  if (mic.context) mic.context.close();
  mic.stream = null;
  mic.context = null;
  page.browserActive = false;
  $("source").textContent = "(this device's microphone)";
  $("mic-start").disabled = false;
  $("mic-stop").disabled = true;
}

function stopMic() {
  // Ask for the last decision; the server answers "end" and closes the stream.
  if (mic.ws && mic.ws.readyState === WebSocket.OPEN) mic.ws.send(JSON.stringify({ type: "end" }));
  if (mic.stream) mic.stream.getTracks().forEach((t) => t.stop());
  $("mic-stop").disabled = true;
}

$("mic-start").addEventListener("click", startMic);
$("mic-stop").addEventListener("click", stopMic);

drawBand();
setInterval(drawTimeline, 1000);
start();
