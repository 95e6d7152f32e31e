"""The unit browser's page: one self-contained HTML file (style and script
inline) that reads ``data/index.js`` and, per opened unit, one chunk file.

Routing is the URL's hash, ``#layer=<i>&unit=<c>``, so a unit has an address
to share and the browser's back button walks the units seen.
"""

__all__ = ["PAGE"]

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222}
header{padding:.6em 1em;border-bottom:1px solid #ddd;background:#f5f7fa}
header h1{font-size:1.15em;margin:0 0 .2em}
header p{margin:0;color:#555}
.pos{color:#2166ac}.neg{color:#b2182b}
main{display:flex;height:calc(100vh - 4.6em);min-height:420px}
#side{width:390px;flex:none;display:flex;flex-direction:column;border-right:1px solid #ddd}
#controls{padding:.5em;display:flex;flex-direction:column;gap:.4em;border-bottom:1px solid #eee}
#controls select,#controls input{font:inherit;padding:.2em .3em;min-width:0;width:100%}
#list{overflow-y:auto;flex:1;position:relative}
.row{display:flex;align-items:center;gap:.5em;height:30px;padding:0 .6em;cursor:pointer;
 border-bottom:1px solid #f2f2f2;white-space:nowrap}
.row:hover{background:#f5f7fa}.row.on{background:#e3ecf6}
.row.head{position:sticky;top:0;background:#fff;cursor:default;color:#666;font-size:.8em;z-index:1;
 border-bottom:1px solid #ddd}
.row.head .name{font-weight:400}
.row .rank{width:3.2em;color:#888;text-align:right;font-size:.85em}
.row .name{width:5.5em;font-weight:600}
.row .num{width:5.5em;text-align:right;font-variant-numeric:tabular-nums;font-size:.9em}
.row svg{flex:none}
#detail{flex:1;overflow-y:auto;padding:.8em 1.2em;min-width:0}
#detail h2{margin:.1em 0 .3em;font-size:1.2em}
.stats{color:#555;margin-bottom:.6em}
.cols{display:flex;gap:1.2em;flex-wrap:wrap}
.col{flex:1 1 380px;min-width:0}
.col h3{font-size:1em;margin:.4em 0}
.entry{border:1px solid #e4e4e4;border-radius:6px;padding:.45em .6em;margin-bottom:.5em}
.entry .what{font-size:.85em;color:#555;margin-bottom:.25em;overflow-wrap:anywhere}
.entry .what b{color:#222}
.tokens{line-height:1.9;overflow-wrap:anywhere}
.tok{padding:1px 2px;border-radius:3px}
.tok.at{outline:2px solid #222;outline-offset:-1px}
canvas{display:block;image-rendering:pixelated;border-radius:4px}
.col.pictures .entries{display:flex;flex-wrap:wrap;gap:.5em}
.col.pictures .entry{width:150px;margin:0}
.empty{color:#888;padding:1em}
.hint{color:#666;font-size:.9em}
@media (max-width:900px){main{display:block;height:auto}#side{width:auto;height:45vh}}
"""

_SCRIPT = r"""
const KC = {meta: null, chunks: {}, waiting: {}};
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "" :
  (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001)) ? v.toExponential(2) : v.toFixed(3);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
function shade(v, scale) {
  const a = scale > 0 ? Math.min(1, Math.abs(v) / scale) * 0.75 : 0;
  return v >= 0 ? `rgba(33,102,172,${a.toFixed(3)})` : `rgba(178,24,43,${a.toFixed(3)})`;
}
function load(src) {
  const s = document.createElement("script");
  s.src = src;
  s.onerror = () => { $("detail").innerHTML = `<p class="empty">Could not load ${esc(src)}.</p>`; };
  document.head.appendChild(s);
}
KC.index = function (meta) {
  KC.meta = meta;
  meta.sameNames = JSON.stringify(meta.label_names) === JSON.stringify(meta.class_names);
  meta.layers.forEach((l, i) => {
    l.order = l.mean_abs.map((_, u) => u).sort((a, b) => l.mean_abs[b] - l.mean_abs[a] || a - b);
    l.rank = new Array(l.units);
    l.order.forEach((u, r) => { l.rank[u] = r; });
    $("layer").add(new Option(`${l.name} (${l.units} units)`, i));
  });
  const what = meta.target === "top" ? "each example's top class" : meta.target;
  $("sub").innerHTML = `${meta.count} examples · explained: ${esc(what)} · ${esc(meta.method)}, ` +
    `${meta.n_steps} steps · units ranked by mean |conductance|; ` +
    `<span class="pos">blue: conducts toward the score</span>, <span class="neg">red: against it</span>`;
  route();
};
KC.chunk = function (layer, chunk, data) {
  const key = layer + "/" + chunk;
  KC.chunks[key] = data;
  (KC.waiting[key] || []).forEach((f) => f(data));
  delete KC.waiting[key];
};
function withChunk(layer, unit, then) {
  const chunk = Math.floor(unit / KC.meta.chunk), key = layer + "/" + chunk;
  if (KC.chunks[key]) return then(KC.chunks[key]);
  (KC.waiting[key] = KC.waiting[key] || []).push(then);
  if (KC.waiting[key].length === 1) load(`data/${layer}/${chunk}.js`);
}
function binRange(l) {
  // One x range for the whole layer, the bins any unit uses, always with
  // the zero bin: histograms side by side compare.
  if (l.range) return l.range;
  let lo = (l.bins - 1) / 2, hi = lo;
  l.histogram.forEach((h) => { if (h.length > 1) { lo = Math.min(lo, h[0]); hi = Math.max(hi, h[0] + h.length - 2); } });
  return (l.range = [lo, hi]);
}
function histogram(l, u, w = 96, ht = 20) {
  const h = l.histogram[u], first = h[0], counts = h.slice(1), [lo, hi] = binRange(l);
  const n = hi - lo + 1, bw = w / n, top = Math.max(...counts, 1), zero = (l.bins - 1) / 2;
  let bars = "";
  counts.forEach((c, j) => {
    if (!c) return;
    const b = first + j, y = ht * (1 - Math.log1p(c) / Math.log1p(top));
    const color = b === zero ? "#888" : b > zero ? "#2166ac" : "#b2182b";
    bars += `<rect x="${((b - lo) * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(bw - 0.3, 0.8).toFixed(2)}" height="${(ht - y).toFixed(1)}" fill="${color}"/>`;
  });
  return `<svg width="${w}" height="${ht}" viewBox="0 0 ${w} ${ht}"><title>per-example conductance: ` +
    `log-spaced bins, red below zero, blue above, grey near zero; bar height: log count</title>` +
    `<line x1="0" x2="${w}" y1="${ht - 0.5}" y2="${ht - 0.5}" stroke="#ddd"/>${bars}</svg>`;
}
function renderList(layer, filter) {
  const l = KC.meta.layers[layer], list = $("list");
  const units = filter === "" ? l.order :
    l.order.filter((u) => String(u).startsWith(filter));
  const rows = units.map((u) => {
    const m = l.mean[u];
    return `<div class="row" data-unit="${u}" title="unit ${u}"><span class="rank">#${l.rank[u] + 1}</span>` +
      `<span class="name">unit ${u}</span><span class="num">${fmt(l.mean_abs[u])}</span>` +
      `<span class="num ${m >= 0 ? "pos" : "neg"}">${fmt(m)}</span>${histogram(l, u)}</div>`;
  });
  const head = `<div class="row head"><span class="rank">rank</span><span class="name">unit</span>` +
    `<span class="num">mean |C|</span><span class="num">mean C</span><span>per example</span></div>`;
  list.innerHTML = head + (rows.length ? rows.join("") : `<p class="empty">No unit ${esc(filter)} in this layer.</p>`);
  list.dataset.layer = layer;
  list.dataset.filter = filter;
}
function textContext(e, layer, text) {
  const P = e.values.length;
  // Positions are tokens (P == T) or the windows of a stride-1 convolution
  // (P < T); anything else (one value per example, 2-D positions) shades
  // nothing.
  if (layer.positions.length !== 1 || P > text.length) {
    return `<div class="tokens">${text.tokens.map(esc).join(" ")}</div>`;
  }
  // A window's value is spread evenly over the tokens it covers; token i
  // of the text is token start + i of the padded sequence.
  const width = text.length - P + 1, n = text.length, start = text.start || 0;
  const per = new Array(n).fill(0);
  e.values.forEach((v, p) => { for (let t = p; t < Math.min(p + width, n); t++) per[t] += (v || 0) / width; });
  const shown = text.tokens.map((_, i) => per[start + i]);
  const scale = Math.max(...shown.map(Math.abs), 1e-12);
  return `<div class="tokens">` + text.tokens.map((t, i) => {
    const at = start + i, on = at >= e.position && at < e.position + width ? " at" : "";
    return `<span class="tok${on}" style="background:${shade(shown[i], scale)}" title="${fmt(shown[i])}">${esc(t)}</span>`;
  }).join(" ") + `</div>`;
}
function imageContext(e, layer, id) {
  return `<canvas id="${id}" width="132" height="132"></canvas>`;
}
function cell(p, shape) { return [Math.floor(p / shape[1]), p % shape[1]]; }
function drawImage(canvas, e, layer) {
  const img = new Image();
  img.onload = () => {
    if (layer.kind !== "image") {  // a (B, C) layer: the whole picture
      const g = canvas.getContext("2d");
      g.drawImage(img, 0, 0, canvas.width, canvas.height);
      if (!e.map) { canvas.dataset.drawn = "whole"; return; }
      const over = new Image();
      over.onload = () => { g.drawImage(over, 0, 0, canvas.width, canvas.height); canvas.dataset.drawn = "whole map"; };
      over.src = e.map;
      return;
    }
    const [h, w] = layer.positions, [r, c] = cell(e.position, layer.positions);
    const ch = img.naturalHeight / h, cw = img.naturalWidth / w;
    // A crop of half the picture (at least 3 cells) around the cell: the
    // cell and enough of its surroundings to recognise what it is on.
    const side = Math.min(Math.max(3 * ch, 3 * cw, img.naturalHeight / 2), img.naturalHeight, img.naturalWidth);
    const y0 = Math.min(Math.max((r + 0.5) * ch - side / 2, 0), img.naturalHeight - side);
    const x0 = Math.min(Math.max((c + 0.5) * cw - side / 2, 0), img.naturalWidth - side);
    const g = canvas.getContext("2d"), k = canvas.width / side;
    g.imageSmoothingEnabled = false;
    g.drawImage(img, x0, y0, side, side, 0, 0, canvas.width, canvas.height);
    const box = () => {
      g.strokeStyle = "#000"; g.lineWidth = 2;
      g.strokeRect((c * cw - x0) * k, (r * ch - y0) * k, cw * k, ch * k);
    };
    if (e.map) {  // the Eq. 2 map, the same size as the picture
      const over = new Image();
      over.onload = () => {
        g.drawImage(over, x0, y0, side, side, 0, 0, canvas.width, canvas.height);
        box();
        canvas.dataset.drawn = "map";
      };
      over.src = e.map;
      return;
    }
    const scale = Math.max(...e.values.map(Math.abs), 1e-12);
    e.values.forEach((v, p) => {
      const [i, j] = cell(p, layer.positions);
      g.fillStyle = shade(v, scale).replace(/,([0-9.]+)\)$/, (_, a) => `,${(a * 0.6).toFixed(3)})`);
      g.fillRect((j * cw - x0) * k, (i * ch - y0) * k, cw * k, ch * k);
    });
    box();
    canvas.dataset.drawn = "crop";  // read by the tests (a file:// picture taints the canvas)
  };
  img.src = `img/${e.example}.png`;
}
function className(k, names = KC.meta.class_names) {
  if (k === null || k === undefined) return "";
  if (k < 0) return "a callable";
  return names && k < names.length ? `${esc(names[k])} (${k})` : `class ${k}`;
}
function entryHtml(e, l, sign, j, texts) {
  const pos = l.positions.length ? (l.kind === "image" ? `cell ${cell(e.position, l.positions).join(", ")}`
    : `position ${e.position}`) : "";
  let body = "";
  if (l.kind === "text" && texts[e.example]) body = textContext(e, l, texts[e.example]);
  else if (l.kind === "image" || KC.meta.input === "image") body = imageContext(e, l, `c-${sign}-${j}`);
  const hasLabel = e.label !== null && e.label !== undefined;
  // Explained the example's own label (target="label"): say it once.
  const what = hasLabel && e.label === e.target && KC.meta.sameNames
    ? ` · explained its label <b>${className(e.target)}</b>`
    : ` · explained <b>${className(e.target)}</b>` +
      (hasLabel ? ` · label <b>${className(e.label, KC.meta.label_names)}</b>` : "");
  return `<div class="entry"><div class="what"><b class="${e.value >= 0 ? "pos" : "neg"}">${fmt(e.value)}</b>` +
    ` · example <b>${e.example}</b>${pos ? " · " + pos : ""}${what}</div>` +
    `${body}</div>`;
}
function note(l, entries, sign) {
  let text = "";
  if (!entries.length) {
    text = sign === "positive" ? "This unit conducts toward the score at no position kept."
      : "This unit conducts against the score at no position kept.";
  }
  const maps = entries.some((e) => e.map);
  if (l.kind === "image") {
    text += ` Half-picture crops around the boxed cell (of ${l.positions.join(" × ")}); shading: ` +
      (maps ? "the unit's Eq. 2 map, each pixel's conductance through it." : "the unit's conductance in each cell.");
  } else if (maps) text += " Shading: the unit's Eq. 2 map, each pixel's conductance through it.";
  else if (l.kind === "text") text += " Shading: the unit's conductance at each token; the box: the position kept.";
  return text ? `<p class="hint">${text.trim()}</p>` : "";
}
function renderUnit(layer, unit) {
  const l = KC.meta.layers[layer];
  document.querySelectorAll(".row.on").forEach((r) => r.classList.remove("on"));
  const row = document.querySelector(`.row[data-unit="${unit}"]`);
  if (row) { row.classList.add("on"); row.scrollIntoView({block: "nearest"}); }
  $("detail").innerHTML = `<h2>${esc(l.name)} · unit ${unit}</h2><p class="empty">Loading…</p>`;
  withChunk(layer, unit, (chunk) => {
    const u = chunk.units[unit];
    if (+$("detail").dataset.layer !== layer || +$("detail").dataset.unit !== unit) return;
    const col = (sign, title) => `<div class="col${KC.meta.input === "image" ? " pictures" : ""}"><h3 class="${sign === "positive" ? "pos" : "neg"}">${title}</h3>` +
      note(l, u[sign], sign) + `<div class="entries">` +
      u[sign].map((e, j) => entryHtml(e, l, sign, j, chunk.texts)).join("") + `</div></div>`;
    $("detail").innerHTML = `<h2>${esc(l.name)} · unit ${unit}</h2>` +
      `<div class="stats">rank ${l.rank[unit] + 1} of ${l.units} by mean |conductance| ` +
      `(${fmt(l.mean_abs[unit])}) · mean ${fmt(l.mean[unit])} · ${histogram(l, unit)}</div>` +
      `<div class="cols">${col("positive", "Conducts most toward the score")}` +
      `${col("negative", "Conducts most against it")}</div>`;
    if (KC.meta.input === "image") {
      SIGNS.forEach((sign) => u[sign].forEach((e, j) => drawImage($(`c-${sign}-${j}`), e, l)));
    }
    document.body.dataset.shown = `${layer}/${unit}`;
  });
}
const SIGNS = ["positive", "negative"];
function route() {
  if (!KC.meta) return;
  const q = new URLSearchParams(location.hash.slice(1));
  let layer = +(q.get("layer") || 0), unit = q.get("unit");
  if (!(layer >= 0 && layer < KC.meta.layers.length)) layer = 0;
  const l = KC.meta.layers[layer];
  unit = unit === null ? l.order[0] : +unit;
  if (!(Number.isInteger(unit) && unit >= 0 && unit < l.units)) {
    $("detail").innerHTML = `<p class="empty">No unit ${esc(q.get("unit"))} in ${esc(l.name)}: ` +
      `its units are 0 to ${l.units - 1}.</p>`;
    return;
  }
  $("layer").value = layer;
  if ($("list").dataset.layer !== String(layer) || $("list").dataset.filter !== $("search").value.trim()) {
    renderList(layer, $("search").value.trim());
  }
  $("detail").dataset.layer = layer;
  $("detail").dataset.unit = unit;
  // Milliseconds from navigation to the list drawn (read by the tests).
  if (!document.body.dataset.listMs) document.body.dataset.listMs = performance.now().toFixed(0);
  renderUnit(layer, unit);
}
function go(layer, unit) { location.hash = `layer=${layer}&unit=${unit}`; }
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("list").addEventListener("click", (ev) => {
    const row = ev.target.closest(".row");
    if (row) go(+$("list").dataset.layer, +row.dataset.unit);
  });
  $("layer").addEventListener("change", () => { $("search").value = ""; go(+$("layer").value, KC.meta.layers[+$("layer").value].order[0]); });
  $("search").addEventListener("input", () => renderList(+$("layer").value, $("search").value.trim()));
  $("search").addEventListener("keydown", (ev) => {
    // Enter opens the unit typed; one that does not exist is said so (route).
    const typed = $("search").value.trim();
    if (ev.key === "Enter" && typed !== "") location.hash = `layer=${+$("layer").value}&unit=${encodeURIComponent(typed)}`;
  });
  const started = performance.now();
  const s = document.createElement("script");
  s.src = "data/index.js";
  s.onload = () => { document.body.dataset.indexMs = (performance.now() - started).toFixed(0); };
  s.onerror = () => { $("detail").innerHTML = `<p class="empty">data/index.js is missing: open the folder the browser wrote.</p>`; };
  document.head.appendChild(s);
});
"""

PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unit browser · keras_conductance</title>
<style>{_STYLE}</style>
<script>{_SCRIPT}</script>
</head><body>
<header><h1>What does each unit conduct?</h1><p id="sub">Loading…</p></header>
<main>
<div id="side">
<div id="controls"><select id="layer" aria-label="layer"></select>
<input id="search" type="search" placeholder="unit number (Enter opens it)" aria-label="search by unit"></div>
<div id="list"></div>
</div>
<section id="detail"><p class="empty">Choose a unit.</p></section>
</main>
</body></html>
"""
