// The console: reads /tiers and /readyz every few seconds, lists /symbols, and for each followed symbol
// draws a live chart from its Server-Sent Events (/symbols/{symbol}/events) and its realised outcomes
// (/symbols/{symbol}/outcomes). Read-only: it only ever GETs. Plain browser JavaScript, no library, no
// build step; charts are drawn on a canvas.
"use strict";

const REGIMES = ["calm", "normal", "volatile", "crisis"];
const REGIME_COLOURS = { calm: "#dcefdc", normal: "#e4ecf7", volatile: "#fbeacb", crisis: "#f5c8c8" };
const TIER_COLOURS = ["#b2182b", "#ef8a62", "#2166ac", "#1a9850", "#7b3294", "#555555"];
const KEEP = 300; // bars per chart
const REFRESH_MS = 2000;
let family = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "colour") node.style.background = v; // a style attribute would break the page's CSP
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  return Math.abs(x) >= 1000 ? x.toLocaleString("en", { maximumFractionDigits: 0 }) : x.toPrecision(digits);
}

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const tierColour = (name) => TIER_COLOURS[Math.max(0, family ? family.tiers.findIndex((t) => t.name === name) : 0)];

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
}

function renderFamily(f) {
  const h = f.headline;
  document.getElementById("family").textContent = `family ${f.family_id}`;
  document.getElementById("target").textContent =
    `predicts ${f.target.name}, ${f.target.horizon} bar(s) ahead: ${f.target.units}; headline ${h}`;
  document.getElementById("headline-overall").textContent = `test ${h}`;
  fillTable("tiers", f.tiers.map((t) => el("tr", { "data-tier": t.name },
    el("td", {}, el("b", {}, t.name)), el("td", {}, t.role), el("td", {}, t.teacher || "—"),
    el("td", {}, `${t.layers}×${t.width}`), el("td", { class: "num" }, t.params.toLocaleString("en")),
    el("td", { class: "num" }, `${t.compression.toFixed(1)}×`),
    el("td", {}, t.available ? "serving" : `unavailable: ${t.problem}`),
    el("td", { class: "num" }, fmt(t.metrics[h])),
    ...REGIMES.map((r) => el("td", { class: `num regime-${r}` }, fmt((t.per_regime[r] || {})[h]))))));
  document.getElementById("verdict").textContent = f.verdict;
  fillTable("regimes", REGIMES.map((r) => el("tr", { class: `regime-${r}` }, el("td", {}, r),
    el("td", {}, f.tier_map[r]))));
  document.getElementById("thresholds").textContent = "thresholds: " +
    Object.entries(f.thresholds).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(", ");
}

function renderLive(f) {
  const h = f.headline;
  fillTable("live", f.tiers.map((t) => {
    const shadow = Object.entries(t.live.shadow).map(([s, by]) =>
      `${s}: ${pct(by.all.agreement)} agree, |Δ| ${fmt(by.all.mean_abs_difference, 3)} (${by.all.comparisons})`);
    const realised = Object.entries(t.live.realised).map(([r, stats]) => {
      const others = Object.entries(stats.scores).filter(([s]) => s !== t.name)
        .map(([s, m]) => `${s} ${fmt(m[h], 3)}`).join(", ");
      return `${r}: ${fmt((stats.scores[t.name] || {})[h], 3)} on ${stats.outcomes} (${others})`;
    });
    return el("tr", {}, el("td", {}, el("b", {}, t.name)), el("td", { class: "num" }, t.live.requests),
      el("td", { class: "num" }, pct(t.live.share)), el("td", { class: "num" }, fmt(t.live.p50_us, 3)),
      el("td", { class: "num" }, fmt(t.live.p99_us, 3)), el("td", {}, shadow.join("; ") || "–"),
      el("td", {}, realised.join("; ") || "–"));
  }));
}

async function refresh() {
  try {
    const f = await getJSON("/tiers");
    if (!family || family.family_id !== f.family_id) renderFamily(f);
    family = f;
    renderLive(f);
    const ready = await (await fetch("/readyz")).json();
    const badge = document.getElementById("ready");
    badge.textContent = ready.status;
    badge.className = `badge ${ready.status}`;
  } catch (e) {
    document.getElementById("ready").textContent = `unreachable (${e.message})`;
  }
}

class SymbolChart {
  constructor(summary) {
    this.name = summary.symbol;
    this.bars = [];
    this.outcomes = [];
    this.title = el("span", {}, summary.feed);
    this.state = el("span", { class: `badge ${summary.state.status}` }, summary.state.status);
    this.canvas = el("canvas", { width: 900, height: 300 });
    const legend = el("div", { class: "legend" },
      ...REGIMES.map((r) => el("span", {}, el("i", { colour: REGIME_COLOURS[r] }), r)),
      el("span", {}, "top: close · strip: tier · bottom: prediction (dots, by tier) vs realised (grey)"));
    this.node = el("div", { class: "symbol", "data-symbol": this.name, "data-bars": "0" },
      el("h3", {}, this.name, this.state, this.title), this.canvas, legend);
    document.getElementById("symbols").append(this.node);
    this.source = new EventSource(`/symbols/${encodeURIComponent(this.name)}/events`);
    this.source.onmessage = (e) => this.onBar(JSON.parse(e.data));
    this.source.addEventListener("state", (e) => this.onState(JSON.parse(e.data)));
    setInterval(() => this.loadOutcomes(), REFRESH_MS);
  }

  onState(state) {
    this.state.textContent = state.status;
    this.state.className = `badge ${state.status}`;
  }

  onBar(u) {
    this.onState(u.state);
    if (!u.bar || (this.bars.length && this.bars[this.bars.length - 1].ts >= u.bar.ts)) return;
    let predicted = u.prediction;
    if (predicted !== null && typeof predicted === "object") predicted = family.target.classes.indexOf(predicted.label);
    this.bars.push({ ts: u.bar.ts, close: u.bar.close, regime: u.regime && u.regime.name, tier: u.tier, predicted });
    if (this.bars.length > KEEP) this.bars.shift();
    this.title.textContent = `${u.feed} · ${u.bar.time} · close ${fmt(u.bar.close, 6)} · ` +
      (u.tier ? `${u.regime.name} → ${u.tier} (${u.reason})` : `no prediction: ${u.problem}`);
    this.node.dataset.bars = String(this.bars.length);
    this.node.dataset.lastTs = String(u.bar.ts);
    this.draw();
  }

  async loadOutcomes() {
    try {
      this.outcomes = (await getJSON(`/symbols/${encodeURIComponent(this.name)}/outcomes`)).outcomes;
      this.node.dataset.outcomes = String(this.outcomes.length);
      this.draw();
    } catch (e) { /* the next refresh tries again */ }
  }

  draw() {
    const c = this.canvas, ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth || 900, h = c.clientHeight || 300;
    c.width = w * ratio; c.height = h * ratio;
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const n = this.bars.length;
    if (!n) return;
    const step = w / Math.max(n, 2), price = { top: 4, bottom: h * 0.58 }, strip = { top: h * 0.6, bottom: h * 0.65 };
    const pred = { top: h * 0.69, bottom: h - 4 };
    this.bars.forEach((b, i) => {
      g.fillStyle = REGIME_COLOURS[b.regime] || "#eeeeee";
      g.fillRect(i * step, price.top, step + 0.5, price.bottom - price.top);
      g.fillStyle = b.tier ? tierColour(b.tier) : "#cccccc";
      g.fillRect(i * step, strip.top, step + 0.5, strip.bottom - strip.top);
    });
    line(g, this.bars.map((b, i) => [i * step + step / 2, b.close]), price, "#1d2330");
    const index = new Map(this.bars.map((b, i) => [b.ts, i]));
    const shown = this.outcomes.filter((o) => index.has(o.ts));
    const values = [...shown.flatMap((o) => [o.predicted, o.realised]),
      ...this.bars.map((b) => b.predicted).filter((v) => v !== null)];
    const span = scale(values, pred);
    line(g, shown.map((o) => [index.get(o.ts) * step + step / 2, o.realised]), pred, "#9aa0ab", span);
    this.bars.forEach((b, i) => {
      if (b.predicted === null) return;
      g.fillStyle = tierColour(b.tier);
      g.beginPath();
      g.arc(i * step + step / 2, span.y(b.predicted), 2.2, 0, 2 * Math.PI);
      g.fill();
    });
  }
}

function scale(values, box) {
  const lo = Math.min(...values), hi = Math.max(...values);
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  return { y: (v) => box.bottom - ((v - lo + pad) / (hi - lo + 2 * pad)) * (box.bottom - box.top) };
}

function line(g, points, box, colour, span) {
  if (points.length < 2) return;
  const s = span || scale(points.map((p) => p[1]), box);
  g.strokeStyle = colour;
  g.lineWidth = 1.3;
  g.beginPath();
  points.forEach(([x, v], i) => (i ? g.lineTo(x, s.y(v)) : g.moveTo(x, s.y(v))));
  g.stroke();
}

async function start() {
  await refresh();
  setInterval(refresh, REFRESH_MS);
  const list = (await getJSON("/symbols")).symbols;
  if (list.length) document.getElementById("no-symbols").remove();
  for (const s of list) new SymbolChart(s);
}

start();
