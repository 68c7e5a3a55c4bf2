// The live dashboard. The overview refreshes every few seconds with only the values that changed
// (/api/telemetry?since=<seq>), conditional requests (ETag) and gzip; a device page (#device=<id>)
// draws lake history with uPlot, vendored under /static/vendor. No build step, no CDN.
"use strict";

const REFRESH_MS = 5000;
const DEVICES_MS = 30000;
const RANGES = [["hour", "-1h"], ["day", "-24h"], ["week", "-7d"], ["month", "-30d"], ["year", "-365d"]];
const SCALED = { W: "W", Wh: "Wh", VA: "VA", VAh: "VAh", var: "var", varh: "varh", kW: "W", kWh: "Wh" };
const PREFIXES = ["", "k", "M", "G", "T"];
const UNIT_TEXT = { degC: "°C", celsius: "°C" };

const model = { devices: [], byId: {}, values: {}, heads: {}, seq: 0, alerts: { active: [], recent: [] },
                battery: {}, range: "day", lastDevices: 0 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// A number in the unit people read it in: 1818041344 Wh is 1.818 GWh, 987.6 W stays W,
// 12345 W is 12.3 kW. Counters keep one digit more, integers show no decimals.
function scaled(v, unit, kind) {
  let text = UNIT_TEXT[unit] || unit || "";
  if (typeof v !== "number" || !Number.isFinite(v)) return [String(v), text];
  const base = SCALED[unit];
  let k = base && unit.startsWith("k") ? 1 : 0;
  let x = v;
  if (base) {
    while (Math.abs(x) >= 1000 && k < PREFIXES.length - 1) { x /= 1000; k += 1; }
    while (Math.abs(x) < 1 && x !== 0 && k > 0) { x *= 1000; k -= 1; }
    text = PREFIXES[k] + base;
  }
  const a = Math.abs(x);
  let digits = a < 10 ? (kind === "counter" ? 3 : 2) : a < 100 ? 2 : a < 1000 ? 1 : 0;
  if (Number.isInteger(x)) digits = 0;
  const shown = x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return [shown, text];
}

function valueText(device, metric, v) {
  const labels = device.labels[metric];
  if (labels && v !== undefined && labels[String(v)] !== undefined) return [labels[String(v)], ""];
  if (v === undefined) return ["–", ""];
  return scaled(v, device.units[metric], device.kinds[metric]);
}

async function getJson(path) {
  // no-cache: the browser revalidates with If-None-Match and gets 304 when nothing changed.
  const r = await fetch(path, { cache: "no-cache", credentials: "same-origin" });
  if (!r.ok && r.status !== 503) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function renderHealth(h) {
  const badge = document.getElementById("health");
  badge.textContent = `${h.status} · up ${Math.round(h.uptime)} s`;
  badge.className = `badge ${h.status}`;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function alarmText(a) {
  return `${a.severity.toUpperCase()} · ${a.device_id} · ${a.message}` +
    (a.value !== null && a.value !== undefined ? ` (${scaled(a.value, "", "").join("")})` : "") +
    (a.since ? ` since ${new Date(a.since).toLocaleTimeString()}` : "");
}

function renderAlerts() {
  const list = document.getElementById("alerts");
  list.replaceChildren();
  if (!model.alerts.active.length) list.append(el("li", { class: "muted" }, "none"));
  for (const a of model.alerts.active) list.append(el("li", { class: a.severity }, alarmText(a)));
}

function deviceState(id) {
  return (model.heads[id] && model.heads[id].state) || model.byId[id].state;
}

function renderGlance() {
  const nav = document.getElementById("glance");
  nav.replaceChildren();
  for (const d of model.devices) {
    const state = deviceState(d.device_id);
    nav.append(el("a", { href: `#device=${d.device_id}`, title: `${d.name}: ${state}` },
      el("span", { class: `dot ${state}` }), el("span", { class: "name" }, d.name)));
  }
}

function renderCards() {
  const box = document.getElementById("cards");
  box.replaceChildren();
  for (const d of model.devices) {
    const values = model.values[d.device_id] || {};
    const state = deviceState(d.device_id);
    const rows = el("table");
    for (const m of d.cards) {
      const [text, unit] = valueText(d, m, values[m]);
      const cell = el("td", { class: "value", "data-device": d.device_id, "data-metric": m }, text);
      if (unit) cell.append(el("span", { class: "unit" }, unit));
      rows.append(el("tr", {}, el("td", { class: "label", title: d.descriptions[m] || m }, d.names[m] || m), cell));
    }
    const head = model.heads[d.device_id];
    const last = head ? head.timestamp : d.last_ok;
    const card = el("div", { class: "card", id: `card-${d.device_id}` },
      el("h3", {}, el("a", { href: `#device=${d.device_id}` }, d.name), el("span", { class: `badge ${state}` }, state)),
      el("div", { class: "model" }, [d.manufacturer, d.model].filter(Boolean).join(" · ")),
      rows,
      el("div", { class: "foot" }, last ? `last reading ${new Date(last).toLocaleTimeString()}` : "no reading yet",
        d.consecutive_failures ? ` · ${d.consecutive_failures} failed` : ""));
    if (d.last_error && state !== "up") card.append(el("div", { class: "error" }, d.last_error));
    box.append(card);
  }
}

// Runtime on battery from the observed discharge: level over the fall rate since the UPS left
// line power. Nothing is shown until the level has fallen over at least a minute.
function runtimeEstimate(id, onBattery, level, at) {
  if (!onBattery || typeof level !== "number") { delete model.battery[id]; return null; }
  const seen = model.battery[id] || (model.battery[id] = { t0: at, l0: level });
  const minutes = (at - seen.t0) / 60000, fell = seen.l0 - level;
  if (minutes < 1 || fell <= 0) return "estimating…";
  return `≈ ${Math.max(0, Math.round(level / (fell / minutes)))} min`;
}

function bar(percent, label) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  const cls = p < 20 ? "bar low" : p < 50 ? "bar mid" : "bar";
  const fill = el("div");
  fill.style.width = `${p}%`;  // CSSOM, not a style attribute: the page's CSP allows no inline style
  return el("div", { class: cls, "data-percent": String(p) }, fill, el("span", {}, label));
}

function renderUps() {
  const box = document.getElementById("ups");
  box.replaceChildren();
  const upsDevices = model.devices.filter(d => d.ups);
  document.getElementById("ups-section").hidden = !upsDevices.length;
  for (const d of upsDevices) {
    const u = d.ups, values = model.values[d.device_id] || {};
    const code = values[u.status];
    const label = code === undefined ? undefined : (d.labels[u.status] || {})[String(code)];
    const onLine = u.on_line.includes(label), onBattery = u.on_battery.includes(label);
    const banner = onLine ? "ONLINE" : onBattery ? "ON BATTERY" : (label || "NO DATA").toUpperCase();
    const level = values[u.battery];
    const head = model.heads[d.device_id];
    const runtime = runtimeEstimate(d.device_id, onBattery, level, head ? Date.parse(head.timestamp) : Date.now());
    const facts = el("dl");
    const fact = (name, metric) => {
      if (!metric || values[metric] === undefined) return;
      facts.append(el("dt", {}, name), el("dd", { "data-metric": metric }, valueText(d, metric, values[metric]).join(" ")));
    };
    fact("Load", u.load_power); fact("Input", u.input_voltage); fact("Output", u.output_voltage);
    fact("Battery voltage", u.battery_voltage);
    facts.append(el("dt", {}, "Runtime"), el("dd", { class: "runtime" }, runtime || (onLine ? "on line power" : "–")));
    const recent = el("ul");
    const events = model.alerts.recent.filter(e => e.device_id === d.device_id).slice(0, 5);
    for (const e of events) {
      recent.append(el("li", {}, `${new Date(e.timestamp).toLocaleTimeString()} · ${e.state} · ${e.message}`));
    }
    if (!events.length) recent.append(el("li", { class: "muted" }, "no recent alarms"));
    box.append(el("div", { class: "card ups", id: `ups-${d.device_id}` },
      el("h3", {}, el("a", { href: `#device=${d.device_id}` }, d.name), el("span", { class: `badge ${deviceState(d.device_id)}` }, deviceState(d.device_id))),
      el("div", { class: `banner ${onLine ? "online" : onBattery ? "battery" : ""}` }, banner),
      el("div", { class: "muted" }, "Battery"),
      bar(level, level === undefined ? "–" : `${scaled(level, "", "")[0]} %`),
      u.load_percent ? el("div", { class: "muted" }, "Load") : null,
      u.load_percent ? bar(values[u.load_percent], values[u.load_percent] === undefined ? "–" : `${scaled(values[u.load_percent], "", "")[0]} %`) : null,
      facts, el("div", { class: "muted" }, "Recent alarms"), recent));
  }
}

async function loadDevices() {
  const doc = await getJson("/api/devices");
  model.devices = doc.devices;
  model.byId = Object.fromEntries(doc.devices.map(d => [d.device_id, d]));
  model.lastDevices = Date.now();
}

async function refreshOverview() {
  if (!model.devices.length || Date.now() - model.lastDevices > DEVICES_MS) await loadDevices();
  const [health, delta, alerts] = await Promise.all([
    getJson("/api/health"), getJson(`/api/telemetry?view=cards&since=${model.seq}`), getJson("/api/alerts"),
  ]);
  if (delta.full) { model.values = {}; model.heads = {}; }
  for (const [id, dev] of Object.entries(delta.devices)) {
    model.values[id] = Object.assign(model.values[id] || {}, dev.values);
    model.heads[id] = { timestamp: dev.timestamp, state: dev.state };
  }
  model.seq = delta.seq;
  model.alerts = alerts;
  renderHealth(health);
  renderGlance();
  renderAlerts();
  renderUps();
  renderCards();
}

// ---- device page ----

const charts = [];

function chartOptions(doc, width) {
  const counter = doc.kind === "counter";
  const [, unit] = scaled(1, doc.unit, doc.kind);
  const label = counter ? `per ${doc.step >= 3600 ? doc.step / 3600 + " h" : doc.step / 60 + " min"}` : "avg";
  return {
    width, height: 200,
    scales: { x: { time: true } },
    axes: [{}, { size: 70, values: (u, ticks) => ticks.map(v => scaled(v, doc.unit, "").join(" ")) }],
    series: [{}, { label, stroke: "#2b6cb0", width: 1.5, value: (u, v) => v === null ? "–" : scaled(v, doc.unit, "").join(" ") },
      ...(counter ? [] : [{ label: "min", stroke: "#9ab", width: 1 }, { label: "max", stroke: "#9ab", width: 1 }])],
    legend: { show: true },
    unit,
  };
}

async function drawChart(chart, device, metric) {
  const from = RANGES.find(r => r[0] === model.range)[1];
  const q = new URLSearchParams({ device, metric, from, to: "now", step: "auto" });
  const doc = await getJson(`/api/history?${q}`);
  const title = `${(model.byId[device].names || {})[metric] || metric}` + (doc.unit ? ` [${scaled(1, doc.unit, doc.kind)[1]}]` : "");
  const plot = el("div", { class: "plot" });
  const note = el("div", { class: "note" }, `${doc.t.length} points · step ${doc.step} s · ${doc.resolution}`);
  chart.replaceChildren(el("h3", {}, title), plot, note);
  chart.dataset.points = String(doc.t.length);
  const data = doc.kind === "counter" ? [doc.t, doc.delta] : [doc.t, doc.avg, doc.min, doc.max];
  const width = Math.max(200, plot.clientWidth);
  charts.push(new uPlot(chartOptions(doc, width), data, plot));
}

async function showDevice(id) {
  const d = model.byId[id];
  if (!d) { location.hash = ""; return; }
  document.getElementById("device-title").textContent = `${d.name} · ${[d.manufacturer, d.model].filter(Boolean).join(" ")}`;
  const ranges = document.getElementById("ranges");
  ranges.replaceChildren();
  for (const [name] of RANGES) {
    const b = el("button", { type: "button", class: name === model.range ? "on" : "" }, name);
    b.addEventListener("click", () => { model.range = name; showDevice(id); });
    ranges.append(b);
  }
  const box = document.getElementById("device-charts");
  box.replaceChildren();
  while (charts.length) charts.pop().destroy();
  const metrics = d.cards.filter(m => d.kinds[m] !== "state");
  const boxes = metrics.map(m => el("div", { class: "chart", "data-metric": m }));
  box.append(...boxes);
  await Promise.all(metrics.map((m, i) => drawChart(boxes[i], id, m)));
  box.dataset.ready = "1";
  await refreshDeviceValues(id);
}

async function refreshDeviceValues(id) {
  const d = model.byId[id], flat = await getJson(`/api/telemetry/${id}`);
  const box = document.getElementById("device-values");
  box.replaceChildren();
  for (const [k, v] of Object.entries(flat)) {
    if (["device_id", "timestamp", "health", "uptime", "alarms"].includes(k)) continue;
    const text = typeof v === "number" ? scaled(v, (d.units || {})[k] || "", (d.kinds || {})[k]).join(" ") : String(v);
    box.append(el("div", {}, el("span", { class: "k", title: k }, (d.names || {})[k] || k.replaceAll("_", " ")), el("span", { class: "v" }, text)));
  }
}

function route() {
  const match = /^#device=([a-z0-9_-]+)$/.exec(location.hash);
  document.getElementById("overview").hidden = !!match;
  document.getElementById("device").hidden = !match;
  return match ? match[1] : null;
}

async function tick() {
  try {
    await refreshOverview();
    const id = route();
    if (id) await refreshDeviceValues(id);
  } catch (err) {
    const badge = document.getElementById("health");
    badge.textContent = `offline: ${err.message}`;
    badge.className = "badge down";
  }
}

window.addEventListener("hashchange", async () => {
  const id = route();
  if (id) await showDevice(id);
});
window.addEventListener("resize", () => {
  for (const c of charts) c.setSize({ width: Math.max(200, c.root.parentNode.clientWidth), height: 200 });
});

(async () => {
  await tick();
  const id = route();
  if (id) await showDevice(id);
  setInterval(tick, REFRESH_MS);
})();
