// The demo page (Iris, or MultiMNIST with a LeNet): settings in, taskgrad's
// wasm module trains, the page draws each epoch as it arrives. Plain
// JavaScript, no framework.
//
// Query parameters (for links and the browser test): dataset, digits, method,
// arch, seed, epochs, baselines=0, autorun=1 (train on load), bench=N (W-iris,
// N steps).

import init, { Demo } from "./pkg/taskgrad_web.js";

// A task's name on a chart ("petal_length" → "petal length"), and shorter
// where two share a line ("length").
const label = (t) => t.replaceAll("_", " ");
const short = (t) => t.split("_").pop();
// Every pair of tasks i < j, for the cosine chart.
const pairs = (k) => [...Array(k).keys()].flatMap((i) => [...Array(k).keys()].filter((j) => j > i).map((j) => [i, j]));
// Okabe–Ito: readable by most colour-blind readers, as taskgrad's plots.
const COLOURS = ["#0072B2", "#D55E00", "#009E73"];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let demo = null;
let history = [];

function setStatus(id, text, error = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", error);
}

// A line chart on a canvas: `series` is [{ name, colour, points: [y...] }],
// x the epoch. `log` draws y on a log scale; `range` fixes y's extent.
function lineChart(canvas, series, { log = false, range = null, xmax = 1, xlabel = "epoch" } = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const pad = { l: 52, r: 12, t: 28, b: 30 };
  ctx.clearRect(0, 0, W, H);
  const f = (y) => (log ? Math.log10(Math.max(y, 1e-12)) : y);
  const ys = series.flatMap((s) => s.points).filter(Number.isFinite).map(f);
  let [lo, hi] = range ? range.map(f) : [Math.min(...ys), Math.max(...ys)];
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const X = (i) => pad.l + (W - pad.l - pad.r) * (xmax > 1 ? i / (xmax - 1) : 0);
  const Y = (y) => H - pad.b - (H - pad.t - pad.b) * ((f(y) - lo) / (hi - lo));
  // Axes, y ticks (five), x ticks (epochs).
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#333"; ctx.font = "11px system-ui, sans-serif";
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4, y = H - pad.b - (H - pad.t - pad.b) * i / 4;
    const label = log ? Number(Math.pow(10, v).toPrecision(2)).toString() : v.toFixed(2);
    ctx.fillText(label, pad.l - 5, y);
    ctx.strokeStyle = "#eee"; ctx.beginPath(); ctx.moveTo(pad.l + 1, y); ctx.lineTo(W - pad.r, y); ctx.stroke();
  }
  if (range && range[0] < 0 && range[1] > 0) { // the zero line of the cosines
    ctx.strokeStyle = "#777"; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(pad.l, Y(0)); ctx.lineTo(W - pad.r, Y(0)); ctx.stroke(); ctx.setLineDash([]);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  const step = Math.max(1, Math.ceil(xmax / 6 / 10) * 10);
  for (let e = 0; e < xmax; e += step) ctx.fillText(String(e), X(e), H - pad.b + 4);
  ctx.fillText(xlabel, W - pad.r - 18, H - pad.b + 15);
  // Curves.
  for (const s of series) {
    ctx.strokeStyle = s.colour; ctx.lineWidth = s.points.length > 300 ? 1 : 2; ctx.beginPath();
    let started = false;
    s.points.forEach((y, i) => {
      if (!Number.isFinite(y)) return;
      if (started) ctx.lineTo(X(i), Y(y)); else { ctx.moveTo(X(i), Y(y)); started = true; }
    });
    ctx.stroke(); ctx.lineWidth = 1;
  }
  // Legend strip above the plot.
  ctx.textAlign = "left"; ctx.textBaseline = "middle";
  let x = pad.l;
  for (const s of series) {
    ctx.fillStyle = s.colour; ctx.fillRect(x, 9, 14, 4);
    ctx.fillStyle = "#333"; ctx.fillText(s.name, x + 18, 11);
    x += ctx.measureText(s.name).width + 34;
  }
}

function draw(epochs) {
  const mtl = history.filter((p) => p.run === "mtl");
  const tasks = mtl.length ? mtl[0].tasks : [];
  const K = tasks.length;
  const col = (f) => (k) => mtl.map((p) => f(p, k));
  lineChart($("loss"), tasks.map((t, k) => ({ name: label(t), colour: COLOURS[k], points: col((p, k) => p.train_loss[k])(k) })),
    { log: true, xmax: epochs });
  // Weights and cosines at every step (watched on the GPU, read once per epoch).
  const steps = mtl.flatMap((p) => p.steps);
  const perEpoch = mtl.length ? Math.max(1, mtl[0].steps.length) : 1;
  const xmax = Math.max(steps.length, epochs * perEpoch);
  lineChart($("weights"), tasks.map((t, k) => ({ name: label(t), colour: COLOURS[k], points: steps.map((s) => s.weights[k]) })),
    { xmax, xlabel: "step" });
  lineChart($("cosines"), pairs(K).map(([i, j], n) => ({
    name: `${short(tasks[i])}·${short(tasks[j])}`,
    colour: ["#CC79A7", "#E69F00", "#56B4E9"][n % 3],
    points: steps.map((s) => (s.cosines.length ? s.cosines[i * K + j] : NaN)),
  })), { range: [-1, 1], xmax, xlabel: "step" });
}

function fmt(v, digits = 3) {
  return Number.isFinite(v) ? v.toFixed(digits) : "–";
}

function showResults(out) {
  const rows = out.rows.map((r) => {
    const better = r.stl == null ? null : (r.higher_is_better ? r.mtl > r.stl : r.mtl < r.stl);
    return `<tr><td>${r.task}</td><td>${r.metric} ${r.higher_is_better ? "↑" : "↓"}</td>
      <td class="${better === true ? "better" : ""}">${fmt(r.mtl)}</td>
      <td class="${better === false ? "better" : ""}">${r.stl == null ? "–" : fmt(r.stl)}</td></tr>`;
  }).join("");
  const dm = out.delta_m == null ? "" :
    `<p id="delta-m"><b>Δm% = ${out.delta_m >= 0 ? "+" : ""}${fmt(out.delta_m, 2)}</b>
     (the multi-task model's mean relative gain over the single-task models; positive is better)</p>`;
  $("results").innerHTML = `
    <h2>Test split (${out.test_rows} rows): multi-task against each task alone</h2>
    <table id="table"><thead><tr><th>task</th><th>metric</th><th>MTL (${out.method}, ${out.arch})</th><th>STL</th></tr></thead>
    <tbody>${rows}</tbody></table>${dm}
    <p>Best epoch ${out.best_epoch} of ${out.epochs_run}; ${out.steps} steps of ${out.dispatches_per_step}
    dispatches each (one submit per step), ${fmt(out.ms_per_step, 2)} ms per step; seed ${out.seed}; ${out.train_rows} training rows.</p>
    <p>${$("adapter").textContent}</p>`;
}

function options() {
  return {
    dataset: $("dataset").value,
    digits: Number($("digits").value),
    method: $("method").value,
    arch: $("arch").value,
    seed: Number($("seed").value),
    epochs: Number($("epochs").value),
    baselines: $("baselines").checked,
    half: $("half").checked,
  };
}

function busy(on) {
  for (const id of ["train", "bench", "dataset", "digits", "method", "arch", "seed", "epochs", "baselines"]) $(id).disabled = on;
  // The LeNet is one shared trunk; the mixtures are Iris's.
  if (!on && $("dataset").value === "multimnist") { $("arch").value = "shared"; $("arch").disabled = true; }
  $("digits").disabled = on || $("dataset").value !== "multimnist";
  $("half").disabled = on || !demo.has_f16();
}

async function train() {
  const opts = options();
  history = [];
  $("results").innerHTML = "";
  busy(true);
  setStatus("progress", "compiling kernels…");
  const started = performance.now();
  try {
    const out = JSON.parse(await demo.train(JSON.stringify(opts), (text) => {
      const p = JSON.parse(text);
      history.push(p);
      const which = p.run === "mtl" ? `multi-task (${opts.method})` : `single-task baseline: ${p.run}`;
      setStatus("progress", `${which}, epoch ${p.epoch + 1} of ${p.epochs}`);
      if (p.run === "mtl") draw(opts.epochs);
    }));
    showResults(out);
    setStatus("progress", `done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    document.body.dataset.state = "trained";
  } catch (e) {
    setStatus("progress", `error: ${e.message ?? e}`, true);
    document.body.dataset.state = "error";
  } finally {
    busy(false);
  }
}

async function bench(steps) {
  busy(true);
  setStatus("progress", `W-iris: ${steps} steps after 50 warm-up…`);
  try {
    const sps = await demo.bench_w_iris(steps);
    setStatus("progress", `W-iris: ${sps.toFixed(1)} steps/s (${steps} steps) on ${demo.adapter()}`);
    $("progress").dataset.stepsPerS = sps.toFixed(1);
    document.body.dataset.state = "benched";
  } catch (e) {
    setStatus("progress", `error: ${e.message ?? e}`, true);
    document.body.dataset.state = "error";
  } finally {
    busy(false);
  }
}

async function main() {
  await init();
  // The controls are usable before the GPU is: list the methods first.
  for (const [name, summary] of JSON.parse(Demo.methods())) {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; o.title = summary;
    $("method").append(o);
  }
  // Iris trains for 100 epochs in seconds; the LeNet's epochs are far longer.
  $("dataset").addEventListener("change", () => {
    $("epochs").value = $("dataset").value === "multimnist" ? 3 : 100;
    if (demo) busy(false);
  });
  for (const id of ["dataset", "digits", "method", "arch", "seed", "epochs"]) if (params.has(id)) $(id).value = params.get(id);
  if ($("dataset").value === "multimnist" && !params.has("epochs")) $("epochs").value = 3;
  if (params.get("baselines") === "0") $("baselines").checked = false;
  const summarise = () => { $("method-summary").textContent = $("method").selectedOptions[0]?.title ?? ""; };
  $("method").addEventListener("change", summarise);
  summarise();

  if (!navigator.gpu) {
    setStatus("adapter", "This browser has no WebGPU (navigator.gpu is missing). Chrome and Edge 113+ have it on " +
      "Windows, macOS and ChromeOS, Safari 26 on macOS and iOS, Firefox 141+ on Windows; elsewhere it may need " +
      "a flag (chrome://flags/#enable-unsafe-webgpu).", true);
    document.body.dataset.state = "no-webgpu";
    return;
  }
  try {
    demo = await Demo.start();
  } catch (e) {
    console.error(e);
    setStatus("adapter", "This browser has WebGPU but gave no adapter: it may be switched off, or this GPU " +
      "blocked; on Linux, Chromium needs --enable-unsafe-webgpu. (The browser console has the details.)", true);
    document.body.dataset.state = "no-webgpu";
    return;
  }
  // Browsers tell vendor and architecture (not the device's name) through JavaScript.
  const info = (await navigator.gpu.requestAdapter())?.info;
  const what = [info?.vendor, info?.architecture].filter(Boolean).join(" ");
  setStatus("adapter", `Adapter: ${what ? what + " · " : ""}${demo.adapter()}` +
    (demo.has_f16() ? " · shader-f16" : " · no shader-f16 (f32 only)"));
  busy(false);
  document.body.dataset.state = "ready";
  $("train").addEventListener("click", train);
  $("bench").addEventListener("click", () => bench(500));
  if (params.has("bench")) await bench(Number(params.get("bench")) || 500);
  else if (params.get("autorun") === "1") await train();
}

main().catch((e) => {
  setStatus("adapter", `The page could not start: ${e.message ?? e}`, true);
  document.body.dataset.state = "error";
});
