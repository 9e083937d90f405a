"""The run explorer in JupyterLab (ipywidgets): three tabs over one `explore.RunView`.

* Paintings: the painting table, filtered by an expression over its columns (`RunView.filter`), sorted by any
  column; picking a row opens its painting.
* Painting: the image, the human caption, each captioner's caption, the per-image metric scores of both backends,
  and the painting's rank for its own query under every model x variant (and query set).
* Query: a query's text and the top-k paintings under every model x variant side by side, the relevant one marked.

Only the rows and paintings on screen are drawn (a page of the table, one painting, one query's top k), from the
thumbnail cache under the run, so the explorer stays quick at Artpedia's size.
"""
from __future__ import annotations

import base64
import html
import math

import ipywidgets as w

from artcap_lib.report import explore

ROWS = 25                  # table rows on one page
_STYLE = """<style>
.artcap-explore-rows select{font-family:monospace;font-size:12px}
.artcap-x table{border-collapse:collapse;font-size:12px}.artcap-x td,.artcap-x th{border:1px solid #ddd;padding:1px 5px}
.artcap-x .hit{display:inline-block;vertical-align:top;width:150px;margin:2px;border:3px solid transparent;font-size:11px}
.artcap-x .hit.relevant{border-color:#1a8f2e;background:#e8f6ea}.artcap-x .column{display:inline-block;
vertical-align:top;margin-right:8px}.artcap-x .note{color:#7a4b00}
</style>"""


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    return str(value)


class Explorer:
    """Build with a RunView and the run's paths; `widget` is what a notebook displays."""

    def __init__(self, view: "explore.RunView", paths):
        self.view, self.paths = view, paths
        self._thumbs: dict[str, str] = {}
        columns = [c for c in view.table.columns if c != "title"]
        self.filter = w.Text(placeholder="e.g. delta_blip_synthetic > 10 and bleu4 < 0.1", description="filter",
                             continuous_update=False, layout=w.Layout(width="60%"))
        self.filter.add_class("artcap-explore-filter")
        self.sort = w.Dropdown(options=["id"] + columns, value="id", description="sort by")
        self.descending = w.Checkbox(value=False, description="descending")
        self.page = w.BoundedIntText(value=1, min=1, max=1, description="page", layout=w.Layout(width="160px"))
        self.status = w.HTML()
        self.rows = w.Select(options=[], rows=ROWS, layout=w.Layout(width="100%"))
        self.rows.add_class("artcap-explore-rows")
        # the rows are text lines: a run of four models and two captioners has ~40 columns, too wide to read at once
        self.shown_columns = w.SelectMultiple(options=columns, value=[c for c in columns if default_column(view, c)],
                                              rows=6, description="columns")
        self.header = w.HTML()
        self.painting_id = w.Combobox(options=list(view.table.index), description="painting", ensure_option=True)
        self.painting = w.HTML()
        self.painting.add_class("artcap-explore-painting")
        self.to_query = w.Button(description="its query", tooltip="open this painting's query in the Query tab")
        self.to_query.add_class("artcap-explore-open-query")
        self.query_set = w.Dropdown(options=view.query_sets, description="query set")
        self.query_id = w.Combobox(description="query", ensure_option=True)
        self.k = w.BoundedIntText(value=min(5, explore.TOP_K), min=1, max=explore.TOP_K, description="top k",
                                  layout=w.Layout(width="160px"))
        self.query = w.HTML()
        self.query.add_class("artcap-explore-query")

        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in view.notes)
        table_tab = w.VBox([w.HBox([self.filter, self.sort, self.descending]),
                            w.HBox([self.shown_columns, self.page, self.status]), self.header, self.rows])
        painting_tab = w.VBox([w.HBox([self.painting_id, self.to_query]), self.painting])
        query_tab = w.VBox([w.HBox([self.query_set, self.query_id, self.k]), self.query])
        self.tabs = w.Tab(children=[table_tab, painting_tab, query_tab])
        for n, title in enumerate(("Paintings", "Painting", "Query")):
            self.tabs.set_title(n, title)
        self.widget = w.VBox([w.HTML(_STYLE + f"<div class='artcap-x'><b>Run explorer</b>: {view.profile}, "
                                     f"<code>{html.escape(str(view.run_dir))}</code>{notes}</div>"), self.tabs])
        self.widget.add_class("artcap-explore")

        for control in (self.filter, self.sort, self.descending):
            control.observe(self._refilter, names="value")
        for control in (self.page, self.shown_columns):
            control.observe(lambda _: self._draw_rows(), names="value")
        self.rows.observe(self._open_row, names="value")
        self.painting_id.observe(lambda change: self._show_painting(change["new"]), names="value")
        self.to_query.on_click(lambda _: self._open_query(self.painting_id.value))
        self.query_set.observe(self._query_ids, names="value")
        for control in (self.query_id, self.k):
            control.observe(lambda _: self._show_query(), names="value")
        self._kept = view.table
        self._refilter()
        self._query_ids()

    # ---- table
    def _refilter(self, _=None) -> None:
        try:
            kept = self.view.filter(self.filter.value)
        except ValueError as err:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        if self.sort.value != "id":
            kept = kept.sort_values(self.sort.value, ascending=not self.descending.value, na_position="last",
                                    kind="stable")
        elif self.descending.value:
            kept = kept.iloc[::-1]
        self._kept = kept
        self.page.max = max(1, math.ceil(len(kept) / ROWS))
        self.page.value = 1
        self._draw_rows()

    def _draw_rows(self) -> None:
        start = (self.page.value - 1) * ROWS
        rows = self._kept.iloc[start:start + ROWS]
        shown = list(self.shown_columns.value)
        widths = {c: max(len(c), 7) for c in shown}
        self.header.value = ("<pre style='margin:0;font-size:12px'>" + html.escape(
            f"{'id':>8}  {'title':<28} " + " ".join(f"{c:>{widths[c]}}" for c in shown)) + "</pre>")
        options = [(f"{i:>8}  {str(r['title'])[:28]:<28} " + " ".join(f"{_fmt(r[c]):>{widths[c]}}" for c in shown),
                    i)
                   for i, r in rows.iterrows()]
        self.rows.unobserve(self._open_row, names="value")
        self.rows.options, self.rows.value = options, None
        self.rows.observe(self._open_row, names="value")
        self.status.value = (f"{len(self._kept)} of {len(self.view.table)} paintings; "
                             f"page {self.page.value} of {self.page.max}; pick a row to open its painting")

    def _open_row(self, change) -> None:
        if change["new"] is not None:
            self.painting_id.value = change["new"]
            self._show_painting(change["new"])
            self.tabs.selected_index = 1

    # ---- painting
    def _image(self, art_id: str, full: bool = False) -> str:
        if art_id not in self.view.images:
            return "<div style='width:150px;height:100px;background:#f0f0f0;color:#777'>no image in this run</div>"
        if full:
            data, width = self.view.images[art_id].read_bytes(), 360
            mime = "image/png" if self.view.images[art_id].suffix.lower() == ".png" else "image/jpeg"
        else:
            if art_id not in self._thumbs:
                thumb = explore.thumbnails(self.view, self.paths, [art_id])[art_id]
                self._thumbs[art_id] = base64.b64encode(thumb.read_bytes()).decode("ascii")
            return f"<img width=144 src='data:image/jpeg;base64,{self._thumbs[art_id]}'>"
        return f"<img width={width} src='data:{mime};base64,{base64.b64encode(data).decode('ascii')}'>"

    def _show_painting(self, art_id: str) -> None:
        view = self.view
        if art_id not in view.table.index:
            return
        row = view.table.loc[art_id]
        captions = [("human", view.human.get(art_id, "(not in this run)"))] + [
            (name, view.captions.get(name, {}).get(art_id, "(no caption)")) for name in view.captioners]
        parts = [f"<div class='artcap-x'><h3>{html.escape(art_id)}: {html.escape(str(row['title']))} "
                 f"({row['split']})</h3><table><tr><td>{self._image(art_id, full=True)}</td><td>"]
        parts += [f"<p><b>{html.escape(n)}</b>: {html.escape(t)}</p>" for n, t in captions]
        parts.append("</td></tr></table>")
        metrics = [(view.columns[c], c) for c in view.metric_columns()]
        if metrics:
            parts.append("<h4>caption metrics</h4><table class='metrics'><tr><th>captioner</th><th>backend</th>"
                         "<th>metric</th><th>score</th></tr>")
            parts += [f"<tr><td>{html.escape(col.captioner)}</td><td>{col.backend}</td><td>{col.label.split()[0]}"
                      f"</td><td>{_fmt(row[c])}</td></tr>" for col, c in metrics]
            parts.append("</table>")
        if view.models:
            parts.append("<h4>rank of this painting for its own query</h4><table class='ranks'><tr><th>model</th>"
                         "<th>variant</th>" + "".join(f"<th>{q}</th>" for q in view.query_sets) + "</tr>")
            for model in view.models:
                for variant in view.variants.get(model, []):
                    cells = []
                    for q in view.query_sets:
                        column = view.rank_column(model, variant, q)
                        value = row[column] if column in row else None
                        cells.append("below depth" if isinstance(value, float) and math.isnan(value) else _fmt(value))
                    parts.append(f"<tr><td>{model}</td><td>{variant}</td>"
                                 + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
        self.painting.value = "".join(parts) + "</div>"

    # ---- query
    def _query_ids(self, _=None) -> None:
        self.query_id.options = list(self.view.queries.get(self.query_set.value, {}))
        self._show_query()

    def _open_query(self, art_id: str) -> None:
        own = self.view.queries_of(self.query_set.value, art_id)      # its caption(s); the first one opens
        if own:
            self.query_id.value = own[0]
            self._show_query()
            self.tabs.selected_index = 2

    def _show_query(self) -> None:
        view, qs, q = self.view, self.query_set.value, self.query_id.value
        if not qs or q not in view.queries.get(qs, {}):
            self.query.value = ("<p>No retrieval runs in this run directory.</p>" if not view.query_sets
                                else "<p>Pick a query.</p>")
            return
        relevant = set(view.relevant.get(qs, {}).get(q, []))
        parts = [f"<div class='artcap-x'><p><b>query {html.escape(q)}</b> ({qs}): "
                 f"{html.escape(view.queries[qs][q])}</p>"]
        for model in view.models:
            for variant in view.variants.get(model, []):
                top = view.top.get((model, variant, qs), {}).get(q)
                if top is None:
                    continue
                rank = view.query_ranks.get((model, variant, qs), {}).get(q)
                parts.append(f"<div class='column'><b>{model} · {variant}</b><br><small>relevant at rank "
                             f"{_fmt(rank)}</small><br>")
                for n, art_id in enumerate(top[:self.k.value]):
                    mark = " relevant" if art_id in relevant else ""
                    title = view.table.loc[art_id, "title"] if art_id in view.table.index else ""
                    parts.append(f"<div class='hit{mark}'>{self._image(art_id)}<br><b>{n + 1}.</b> "
                                 f"{html.escape(art_id)} {html.escape(str(title))[:40]}"
                                 f"{' ✔ relevant' if mark else ''}</div><br>")
                parts.append("</div>")
        self.query.value = "".join(parts) + "</div>"


def default_column(view: "explore.RunView", column: str) -> bool:
    """The table's columns until the user picks others: split, the headline metrics, every rank and rank change
    (the filter and the sort reach every column)."""
    col = view.columns[column]
    return col.kind != "metric" or col.label.split()[0] in {"bleu4", "meteor", "rougeL_f", "bertscore_f",
                                                               "coco_cider"}


def explorer(view: "explore.RunView", paths):
    """The interactive explorer of a loaded run (`explore.load`), to display in a notebook."""
    return Explorer(view, paths).widget
