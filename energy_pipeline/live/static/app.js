// The live dashboard: polls the JSON API every few seconds and redraws. No libraries, no CDN:
// cards are DOM tables, charts are inline SVG.
"use strict";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function fmt(v) {
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  return a >= 100000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : v.toFixed(2);
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok && r.status !== 503) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function renderHealth(h) {
  const badge = document.getElementById("health");
  badge.textContent = `${h.status} · up ${Math.round(h.uptime)} s`;
  badge.className = `badge ${h.status}`;
  document.getElementById("updated").textContent =
    `updated ${new Date().toLocaleTimeString()}`;
}

function renderAlerts(doc) {
  const list = document.getElementById("alerts");
  list.replaceChildren();
  if (!doc.active.length) list.append(el("li", { class: "muted" }, "none"));
  for (const a of doc.active) {
    list.append(el("li", { class: a.severity },
      `${a.severity.toUpperCase()} · ${a.device_id} · ${a.message}` +
      (a.value !== null && a.value !== undefined ? ` (${fmt(a.value)})` : "") +
      (a.since ? ` since ${new Date(a.since).toLocaleTimeString()}` : "")));
  }
}

function renderCards(devices, telemetry) {
  const box = document.getElementById("cards");
  box.replaceChildren();
  for (const d of devices) {
    const t = telemetry.devices[d.device_id] || { values: {} };
    const rows = el("table");
    for (const m of d.cards) {
      const v = t.values[m];
      const label = d.labels[m] && v !== undefined ? d.labels[m][String(v)] : undefined;
      const text = v === undefined ? "–" : label !== undefined ? label : fmt(v);
      const cell = el("td", { class: "value", "data-device": d.device_id, "data-metric": m }, text);
      if (d.units[m]) cell.append(el("span", { class: "unit" }, d.units[m]));
      rows.append(el("tr", {}, el("td", {}, m), cell));
    }
    const card = el("div", { class: "card", id: `card-${d.device_id}` },
      el("h3", {}, d.name, el("span", { class: `badge ${d.state}` }, d.state)), rows,
      el("div", { class: "foot" },
        d.last_ok ? `last reading ${new Date(d.last_ok).toLocaleTimeString()}` : "no reading yet",
        d.consecutive_failures ? ` · ${d.consecutive_failures} failed` : ""));
    if (d.last_error) card.append(el("div", { class: "error" }, d.last_error));
    box.append(card);
  }
}

function chart(series) {
  const w = 380, h = 140, pad = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const pts = series.points;
  if (pts.length) {
    const t1 = pts[pts.length - 1][0], t0 = Math.min(pts[0][0], t1 - 3600);
    let lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
    if (hi === lo) { hi += 1; lo -= 1; }
    const x = t => pad + (w - pad - 4) * (t - t0) / (t1 - t0 || 1);
    const y = v => h - 16 - (h - 24) * (v - lo) / (hi - lo);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
    svg.append(line);
    for (const [v, yy] of [[hi, 10], [lo, h - 18]]) {
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", "2"); label.setAttribute("y", String(yy));
      label.textContent = fmt(v);
      svg.append(label);
    }
    const stamp = document.createElementNS(SVG, "text");
    stamp.setAttribute("x", String(w - 60)); stamp.setAttribute("y", String(h - 2));
    stamp.textContent = new Date(t1 * 1000).toLocaleTimeString();
    svg.append(stamp);
  }
  return svg;
}

function renderCharts(doc) {
  const box = document.getElementById("charts");
  box.replaceChildren();
  if (!doc.series.length) box.append(el("p", { class: "muted" }, "no charted metrics"));
  for (const s of doc.series) {
    const title = `${s.device} · ${s.metric}` + (s.unit ? ` [${s.unit}]` : "");
    box.append(el("div", { class: "chart" }, el("h3", {}, title), chart(s)));
  }
}

async function refresh() {
  try {
    const [health, devices, telemetry, alerts, history] = await Promise.all([
      getJson("/api/health"), getJson("/api/devices"), getJson("/api/telemetry"),
      getJson("/api/alerts"), getJson("/api/history"),
    ]);
    renderHealth(health);
    renderAlerts(alerts);
    renderCards(devices.devices, telemetry);
    renderCharts(history);
  } catch (err) {
    const badge = document.getElementById("health");
    badge.textContent = `offline: ${err.message}`;
    badge.className = "badge down";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
