// lstm-asr live page: microphone (Web Audio at the model's rate, 16-bit PCM over a WebSocket) or a dropped file;
// partial hypotheses as they change, final results, and the final alignment drawn under the waveform.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { info: null, ws: null, ctx: null, media: null, samples: [], finals: [], done: false, error: null };
window.lstmAsr = state;  // for tests and for the curious: finals, done, error

function setStatus(text) { $("status").textContent = text; }

async function loadInfo() {
  state.info = await (await fetch("/info")).json();
  $("model").textContent = `${state.info.units}, ${state.info.tokens.length} tokens, chunk ${state.info.chunk_frames}` +
    ` + look-ahead ${state.info.right_context} frames`;
}

function openSocket(format) {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws; state.finals = []; state.done = false; state.error = null;
  $("finals").textContent = ""; $("partial").textContent = "";
  ws.onmessage = (event) => onUpdate(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (!state.done && event.code !== 1000) { state.error = event.reason || `closed (${event.code})`; setStatus(state.error); }
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => { ws.send(JSON.stringify({ type: "start", format, sample_rate: state.info.sample_rate })); resolve(ws); };
    ws.onerror = () => reject(new Error("cannot connect"));
  });
}

function onUpdate(u) {
  if (u.type === "error") { state.error = u.message; setStatus(`error: ${u.message}`); return; }
  $("latency").textContent = `latency ${u.latency_ms} ms, look-ahead lag ${u.lag_ms} ms`;
  if (u.type === "partial") { $("partial").textContent = u.text; return; }
  $("partial").textContent = "";
  if (u.text) {
    state.finals.push(u);
    const line = document.createElement("div");
    line.textContent = u.text;
    $("finals").appendChild(line);
  }
  if (u.last) { state.done = true; setStatus("done"); draw(); }
}

function pcm16(float32) {
  const out = new Int16Array(float32.length);
  for (let i = 0; i < float32.length; i++) {
    const s = Math.max(-1, Math.min(1, float32[i]));
    out[i] = Math.round(s < 0 ? s * 32768 : s * 32767);
  }
  return out;
}

async function record() {
  $("record").disabled = true; $("stop").disabled = false;
  state.samples = [];
  const rate = state.info.sample_rate;
  try {
    state.media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
      noiseSuppression: false, autoGainControl: false } });
  } catch (err) { setStatus(`no microphone: ${err.message}`); $("record").disabled = false; $("stop").disabled = true; return; }
  const ws = await openSocket("pcm16");
  state.ctx = new AudioContext({ sampleRate: rate });  // the browser resamples the microphone to the model's rate
  await state.ctx.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = state.ctx.createMediaStreamSource(state.media);
  const tap = new AudioWorkletNode(state.ctx, "pcm-tap");
  let pending = [], pendingLength = 0;
  tap.port.onmessage = (event) => {  // send 100 ms at a time
    state.samples.push(event.data); pending.push(event.data); pendingLength += event.data.length;
    if (pendingLength >= rate / 10 && ws.readyState === WebSocket.OPEN) {
      const block = new Float32Array(pendingLength); let at = 0;
      for (const p of pending) { block.set(p, at); at += p.length; }
      ws.send(pcm16(block).buffer); pending = []; pendingLength = 0;
    }
  };
  source.connect(tap);
  setStatus("recording");
}

async function stop() {
  $("stop").disabled = true; $("record").disabled = false;
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  if (state.ctx) await state.ctx.close();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "end" }));
  setStatus("finishing");
}

async function sendFile(file) {
  const bytes = await file.arrayBuffer();
  try {  // the waveform for the drawing (the server decodes the file itself)
    const ctx = new OfflineAudioContext(1, 1, state.info.sample_rate);
    const audio = await ctx.decodeAudioData(bytes.slice(0));
    state.samples = [audio.getChannelData(0)];
  } catch (err) { state.samples = []; }
  const ws = await openSocket("file");
  const step = state.info.max_message_bytes;
  for (let i = 0; i < bytes.byteLength; i += step) ws.send(bytes.slice(i, i + step));
  ws.send(JSON.stringify({ type: "end" }));
  setStatus(`decoding ${file.name}`);
}

function draw() {
  const canvas = $("wave"), g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, mid = 70;
  g.clearRect(0, 0, w, h);
  let total = 0; for (const s of state.samples) total += s.length;
  const rate = state.info.sample_rate;
  const last = state.finals.length ? state.finals[state.finals.length - 1] : null;
  const seconds = Math.max(total / rate, last && last.tokens.length ? last.tokens[last.tokens.length - 1].end : 0, 0.01);
  g.strokeStyle = "#456"; g.beginPath();
  const perPixel = Math.max(1, Math.floor(total / w)); let x = 0, i = 0, peak = 0;
  for (const s of state.samples) for (let k = 0; k < s.length; k++, i++) {
    peak = Math.max(peak, Math.abs(s[k]));
    if (i % perPixel === 0) { const px = (i / rate) / seconds * w; g.moveTo(px, mid - peak * 60); g.lineTo(px, mid + peak * 60); peak = 0; x++; }
  }
  g.stroke();
  g.font = "13px system-ui"; g.textBaseline = "top";
  state.finals.forEach((f) => f.tokens.forEach((t, k) => {  // the alignment: one box per token, in two rows
    const x0 = t.start / seconds * w, x1 = t.end / seconds * w, y = 140 + (k % 2) * 28;
    g.fillStyle = k % 2 ? "#dbe6f7" : "#c6d7f2"; g.fillRect(x0, y, Math.max(1, x1 - x0), 24);
    g.fillStyle = "#123"; g.fillText(t.token, x0 + 2, y + 5);
  }));
}

$("record").onclick = record;
$("stop").onclick = stop;
$("drop").ondragover = (e) => { e.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (e) => { e.preventDefault(); $("drop").classList.remove("over"); if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0]); };
$("file").onchange = (e) => { if (e.target.files[0]) sendFile(e.target.files[0]); };

loadInfo().then(() => {  // ?record=SECONDS records at once and stops after that long (demos, tests)
  const seconds = parseFloat(new URLSearchParams(location.search).get("record"));
  if (seconds > 0) record().then(() => setTimeout(stop, seconds * 1000));
});
