"""The run explorer as one static page: the views of `explore_widgets` in a self-contained HTML file (inline CSS
and vanilla JS, thumbnails as base64 JPEG, the `explore.RunView` as embedded JSON), to share a run with someone
who has no Python: no server, no network, any browser.

The filter is the JupyterLab explorer's expression language (pandas' `query` syntax, reduced to numbers, column
names, arithmetic, comparisons, `and` / `or` / `not` and parentheses), translated token by token to JavaScript,
so a filter typed in one works in the other.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from artcap_lib.report import explore

PAGE_ROWS = 500           # table rows drawn at once: Artpedia's ~2,500 stay quick to sort and filter
PAGE_PAINTINGS = 5_000    # paintings a page holds: Artpedia's test split whole; a 100k run's page would be ~1 GB
EXTREMES = 25             # a larger run's page keeps this many at each end of every metric and rank difference


def page_paintings(view: "explore.RunView", limit: int | None = PAGE_PAINTINGS) -> list[str]:
    """The paintings a page holds: every one up to `limit` (None: no limit); above it, those at either end of every
    metric and rank-difference column (where a user looks first), then a seeded sample of the rest up to
    `limit`, in the table's order."""
    import numpy as np
    table = view.table
    if limit is None or len(table) <= limit:
        return list(table.index)
    chosen: dict[str, None] = {}
    for name, column in view.columns.items():
        if column.kind in ("metric", "delta"):
            values = table[name].dropna()
            for end in (values.nsmallest(EXTREMES, keep="first"), values.nlargest(EXTREMES, keep="first")):
                chosen.update(dict.fromkeys(end.index))
    rest = np.array([i for i in table.index if i not in chosen], dtype=object)
    fill = min(max(limit - len(chosen), 0), len(rest))
    chosen.update(dict.fromkeys(np.random.default_rng(0).choice(rest, fill, replace=False).tolist()))
    return [i for i in table.index if i in chosen]


def page_data(view: "explore.RunView", thumbs: dict[str, Path], kept: list[str] | None = None) -> dict[str, Any]:
    """The RunView as JSON-ready data (NaN -> null), the thumbnails inline. kept (`page_paintings`; None: all):
    the paintings the page holds; their queries alone, and of the paintings those rank only the titles."""
    def number(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else x

    table = view.table if kept is None else view.table.loc[kept]
    held = set(table.index)
    relevant = {qs: {q: docs for q, docs in block.items() if held.intersection(docs)}
                for qs, block in view.relevant.items()}
    top = {key: {q: docs for q, docs in tops.items() if q in relevant.get(key[2], {})}
           for key, tops in view.top.items()}
    hits = {d for tops in top.values() for docs in tops.values() for d in docs} - held
    titles = view.table["title"].reindex(sorted(hits)).fillna("")
    notes = list(view.notes)
    if len(table) < len(view.table):
        notes.append(f"This page holds {len(table):,} of the run's {len(view.table):,} paintings: the {EXTREMES} at "
                     "each end of every metric and rank-difference column and a random sample (seed 0) of the rest, "
                     "with their own queries; the paintings those queries rank are named, not shown. "
                     "`artcap explore --paintings N` writes a larger page; the JupyterLab explorer of notebook 06 "
                     "holds every painting.")
    return {
        "profile": view.profile, "run_dir": str(view.run_dir), "notes": notes,
        "captioners": view.captioners, "models": view.models, "variants": view.variants,
        "query_sets": view.query_sets, "has_images": bool(view.images), "partial": len(table) < len(view.table),
        "columns": [{"name": name, **vars(col)} for name, col in view.columns.items()],
        "ids": list(table.index),
        "data": {c: [number(v) for v in (table[c].tolist())] for c in table.columns},
        "titles": {i: str(t) for i, t in titles.items()},
        "human": {i: t for i, t in view.human.items() if i in held},
        "captions": {n: {i: t for i, t in c.items() if i in held} for n, c in view.captions.items()},
        "queries": {qs: {q: t for q, t in texts.items() if q in relevant.get(qs, {})}
                    for qs, texts in view.queries.items()},
        "relevant": relevant,
        "top": {"|".join(key): tops for key, tops in top.items()},
        "query_ranks": {"|".join(key): {q: number(r) for q, r in ranks.items() if q in relevant.get(key[2], {})}
                        for key, ranks in view.query_ranks.items()},
        "thumbs": {i: base64.b64encode(p.read_bytes()).decode("ascii") for i, p in thumbs.items() if i in held},
        "page_rows": PAGE_ROWS,
    }


def write_page(view: "explore.RunView", paths, out: Path, limit: int | None = PAGE_PAINTINGS) -> Path:
    """Write the page to out (its folder made if needed) and return it; it holds at most `limit` paintings
    (`page_paintings`; None: every one)."""
    kept = page_paintings(view, limit)
    data = page_data(view, explore.thumbnails(view, paths, kept), kept)
    # inside <script>, "</" would end the element early: JSON allows the escaped solidus
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    page = (_PAGE.replace("__TITLE__", html.escape(f"artcap run explorer: {view.profile}"))
            .replace("__CSS__", _CSS).replace("__JS__", _JS).replace("__DATA__", payload))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title><style>__CSS__</style></head>
<body>
<header><h1>__TITLE__</h1><div id="notes"></div>
<nav><button id="tab-table" class="tab">Paintings</button><button id="tab-painting" class="tab">Painting</button>
<button id="tab-query" class="tab">Query</button></nav></header>
<section id="view-table">
 <div class="controls"><label>filter <input id="filter" size="60"
   placeholder="e.g. delta_blip_synthetic > 10 and bleu4 < 0.1"></label>
 <label><input type="checkbox" id="all-metrics"> every metric column</label>
 <span id="count"></span> <span id="filter-error" class="error"></span></div>
 <div class="scroll"><table id="paintings"><thead></thead><tbody></tbody></table></div>
 <p class="hint">Click a header to sort, a row to open its painting. A filter is an expression over the column
 names (hover a header for its meaning): numbers, + - * /, &lt; &lt;= &gt; &gt;= == !=, and, or, not, ( ).</p>
</section>
<section id="view-painting" hidden></section>
<section id="view-query" hidden>
 <div class="controls"><label>query set <select id="query-set"></select></label>
 <label>query <select id="query-id"></select></label></div>
 <div id="query-body"></div>
</section>
<script type="application/json" id="run-data">__DATA__</script>
<script>__JS__</script>
</body></html>
"""

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 1em;color:#222}
h1{font-size:1.3em;margin:.5em 0}
nav button{font-size:1em;padding:.3em .9em;margin-right:.3em;border:1px solid #888;background:#eee;cursor:pointer}
nav button.active{background:#333;color:#fff}
.controls{margin:.6em 0}.controls label{margin-right:1em}
.error{color:#b00}.note{color:#7a4b00;margin:.2em 0}.hint{color:#666;font-size:.85em}
.scroll{overflow:auto;max-height:70vh;border:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ddd;padding:.15em .4em;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0;cursor:pointer}
#paintings tbody tr{cursor:pointer}#paintings tbody tr:hover{background:#eef}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.painting{display:flex;gap:1.2em;align-items:flex-start}
.painting img{width:320px;image-rendering:auto;border:1px solid #ccc}
.noimage{width:160px;height:120px;display:flex;align-items:center;justify-content:center;background:#f0f0f0;
 color:#777;font-size:.8em;text-align:center;border:1px solid #ccc}
.caption{max-width:60em;margin:.3em 0}.caption b{display:inline-block;min-width:9em}
.grid{display:flex;gap:.8em;overflow-x:auto}
.column h3{font-size:.9em;margin:.3em 0}
.hit{width:170px;margin-bottom:.4em;border:3px solid transparent;padding:2px;font-size:.75em;cursor:pointer}
.hit img{width:160px;display:block}
.hit.relevant{border-color:#1a8f2e;background:#e8f6ea}
.query-text{max-width:70em;background:#f6f6f6;padding:.5em;border-left:4px solid #1a8f2e}
"""

_JS = r"""
"use strict";
const D = JSON.parse(document.getElementById("run-data").textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const fmt = (v) => v === null || v === undefined ? "" : (typeof v === "number" ?
  (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
const COLUMNS = Object.fromEntries(D.columns.map((c) => [c.name, c]));
const ROW = Object.fromEntries(D.ids.map((id, n) => [id, n]));
const MAIN_METRICS = new Set(["bleu4", "meteor", "rougeL_f", "bertscore_f", "coco_bleu4", "coco_meteor",
                              "coco_rougeL", "coco_cider", "coco_spice"]);
let sortBy = null, ascending = true, kept = D.ids.map((_, n) => n);

function value(n, column) { const v = D.data[column][n]; return v === undefined ? null : v; }
function title(id) { return id in ROW ? value(ROW[id], "title") : (D.titles[id] || ""); }
function thumb(id, cls) {
  return D.thumbs[id] ? `<img class="${cls || ""}" alt="${esc(id)}" src="data:image/jpeg;base64,${D.thumbs[id]}">`
       : `<div class="noimage">${D.partial && !(id in ROW) ? "not on this page" : "no image in this run"}</div>`;
}

// ---- filter: the explorer's expression language, token by token into a JavaScript function of one row
const TOKEN = /\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|<|>|\+|-|\*|\/|\(|\)))/y;
function compile(expression) {
  const out = [];
  TOKEN.lastIndex = 0;
  if (!expression.trim()) return null;
  while (TOKEN.lastIndex < expression.length) {
    const at = TOKEN.lastIndex, m = TOKEN.exec(expression);
    if (!m) {
      if (expression.slice(at).trim() === "") break;
      throw new Error(`cannot read "${expression.slice(at).trim()}"`);
    }
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) {
      const word = m[2];
      if (word === "and") out.push("&&"); else if (word === "or") out.push("||"); else if (word === "not") out.push("!");
      else if (word in COLUMNS) out.push(`v(${JSON.stringify(word)})`);
      else throw new Error(`no column ${word}`);
    } else out.push(m[3] === "==" ? "===" : m[3] === "!=" ? "!==" : m[3]);
  }
  // a missing value (a rank below a stored run's depth) satisfies no comparison, as NaN in pandas
  const body = `return (${out.join(" ")});`;
  const f = new Function("v", body);
  return (n) => { try { return Boolean(f((c) => { const x = value(n, c); return x === null ? NaN : x; })); }
                  catch (e) { return false; } };
}

function visibleColumns() {
  const all = $("all-metrics").checked;
  return D.columns.filter((c) => c.kind !== "metric" || all || MAIN_METRICS.has(c.label.split(" ")[0]))
                  .map((c) => c.name);
}

function drawTable() {
  const columns = visibleColumns();
  $("paintings").querySelector("thead").innerHTML = "<tr><th data-col=\"id\">id</th>" + columns.map((c) =>
    `<th data-col="${c}" title="${esc(COLUMNS[c].label)}">${esc(c)}${sortBy === c ? (ascending ? " ▲" : " ▼") : ""}</th>`
  ).join("") + "</tr>";
  const rows = kept.slice(0, D.page_rows).map((n) => `<tr data-id="${esc(D.ids[n])}"><td>${esc(D.ids[n])}</td>` +
    columns.map((c) => { const v = value(n, c);
      return `<td class="${typeof v === "number" ? "num" : ""}">${esc(fmt(v))}</td>`; }).join("") + "</tr>");
  $("paintings").querySelector("tbody").innerHTML = rows.join("");
  $("count").textContent = `${kept.length} of ${D.ids.length} paintings` +
    (kept.length > D.page_rows ? ` (first ${D.page_rows} shown)` : "");
}

function applyFilter() {
  let test = null;
  $("filter-error").textContent = "";
  try { test = compile($("filter").value); }
  catch (e) { $("filter-error").textContent = e.message; return; }
  kept = D.ids.map((_, n) => n).filter((n) => !test || test(n));
  if (sortBy) {
    const key = (n) => sortBy === "id" ? D.ids[n] : value(n, sortBy);
    kept.sort((a, b) => { const x = key(a), y = key(b);
      if (x === null) return y === null ? 0 : 1; if (y === null) return -1;        // missing values last
      const c = x < y ? -1 : x > y ? 1 : 0; return ascending ? c : -c; });
  }
  drawTable();
}

// ---- painting view
function paintingView(id) {
  const n = ROW[id];
  const parts = [`<h2>${esc(id)}: ${esc(title(id))}</h2><div class="painting">${thumb(id)}<div>`,
    `<p class="caption"><b>human</b> ${esc(D.human[id] || (D.partial && !(id in ROW) ? "(not on this page)" : "(not in this run)"))}</p>`];
  for (const name of D.captioners)
    parts.push(`<p class="caption"><b>${esc(name)}</b> ${esc((D.captions[name] || {})[id] || "(no caption)")}</p>`);
  parts.push("</div></div>");
  if (n !== undefined) {
    const metrics = D.columns.filter((c) => c.kind === "metric");
    if (metrics.length) {
      parts.push("<h3>caption metrics</h3><table class=\"metrics\"><tr><th>captioner</th><th>backend</th><th>metric</th><th>score</th></tr>");
      for (const c of metrics) parts.push(`<tr><td>${esc(c.captioner)}</td><td>${esc(c.backend)}</td>` +
        `<td>${esc(c.label.split(" ")[0])}</td><td class="num">${fmt(value(n, c.name))}</td></tr>`);
      parts.push("</table>");
    }
    const ranks = D.columns.filter((c) => c.kind === "rank");
    if (ranks.length) {
      parts.push(`<h3>rank of this painting for its own query</h3><table class="ranks"><tr><th>model</th><th>variant</th>` +
        D.query_sets.map((q) => `<th>${esc(q)}</th>`).join("") + "</tr>");
      for (const model of D.models) for (const variant of D.variants[model] || []) {
        parts.push(`<tr><td>${esc(model)}</td><td>${esc(variant)}</td>` + D.query_sets.map((q) => {
          const c = ranks.find((r) => r.model === model && r.variant === variant && r.query_set === q);
          const v = c ? value(n, c.name) : null;
          return `<td class="num">${c ? (v === null ? "below depth" : fmt(v)) : ""}</td>`; }).join("") + "</tr>");
      }
      parts.push("</table>");
    }
  }
  // its own queries: one per human caption (query id = painting id, or id#k where a painting has several)
  const own = D.query_sets.flatMap((q) => Object.keys(D.relevant[q] || {})
    .filter((qid) => (D.relevant[q][qid] || []).includes(id)).map((qid) => [q, qid]));
  parts.push(own.map(([q, qid]) => `<button class="open-query" data-qs="${esc(q)}" data-id="${esc(qid)}">` +
    `query view: ${esc(q)} query ${esc(qid)}</button>`).join(" "));
  $("view-painting").innerHTML = parts.join("");
  show("painting");
}

// ---- query view
function fillQueryIds() {
  const qs = $("query-set").value, texts = D.queries[qs] || {};
  $("query-id").innerHTML = Object.keys(texts).map((q) =>
    `<option value="${esc(q)}">${esc(q)}: ${esc(texts[q].slice(0, 70))}</option>`).join("");
}

function queryView() {
  const qs = $("query-set").value, q = $("query-id").value;
  if (!qs || !q) { $("query-body").innerHTML = "<p>No retrieval runs in this run directory.</p>"; return; }
  const relevant = new Set((D.relevant[qs] || {})[q] || []);
  const parts = [`<p class="query-text">${esc(D.queries[qs][q])}</p><div class="grid">`];
  for (const model of D.models) for (const variant of D.variants[model] || []) {
    const top = (D.top[`${model}|${variant}|${qs}`] || {})[q];
    if (!top) continue;
    const rank = ((D.query_ranks || {})[`${model}|${variant}|${qs}`] || {})[q] ?? null;
    parts.push(`<div class="column" data-model="${esc(model)}" data-variant="${esc(variant)}"><h3>${esc(model)} · ${esc(variant)}` +
      `<br><small>relevant at rank ${rank === null ? "?" : fmt(rank)}</small></h3>`);
    top.forEach((id, r) => parts.push(`<div class="hit${relevant.has(id) ? " relevant" : ""}" data-id="${esc(id)}">` +
      `${thumb(id)}<b>${r + 1}.</b> ${esc(id)} ${esc(title(id))}${relevant.has(id) ? " ✔ relevant" : ""}</div>`));
    parts.push("</div>");
  }
  parts.push("</div>");
  $("query-body").innerHTML = parts.join("");
}

function show(name) {
  for (const v of ["table", "painting", "query"]) {
    $(`view-${v}`).hidden = v !== name;
    $(`tab-${v}`).classList.toggle("active", v === name);
  }
  window.scrollTo(0, 0);          // a view opened from far down the table starts at its top
}

$("notes").innerHTML = D.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("");
$("query-set").innerHTML = D.query_sets.map((q) => `<option>${esc(q)}</option>`).join("");
fillQueryIds();
$("tab-table").onclick = () => show("table");
$("tab-painting").onclick = () => { if (!$("view-painting").innerHTML) paintingView(D.ids[kept[0]] || D.ids[0]); show("painting"); };
$("tab-query").onclick = () => { queryView(); show("query"); };
$("filter").addEventListener("input", applyFilter);
$("all-metrics").addEventListener("change", drawTable);
$("paintings").querySelector("thead").addEventListener("click", (e) => {
  const th = e.target.closest("th"); if (!th) return;
  ascending = sortBy === th.dataset.col ? !ascending : true; sortBy = th.dataset.col; applyFilter(); });
$("paintings").querySelector("tbody").addEventListener("click", (e) => {
  const tr = e.target.closest("tr"); if (tr) paintingView(tr.dataset.id); });
$("view-painting").addEventListener("click", (e) => {
  const b = e.target.closest("button.open-query"); if (!b) return;
  $("query-set").value = b.dataset.qs; fillQueryIds(); $("query-id").value = b.dataset.id; queryView(); show("query"); });
$("query-body").addEventListener("click", (e) => { const h = e.target.closest(".hit"); if (h) paintingView(h.dataset.id); });
$("query-set").onchange = () => { fillQueryIds(); queryView(); };
$("query-id").onchange = queryView;
applyFilter();
show("table");
"""
