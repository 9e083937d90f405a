"""Tables 1 and 2 of the paper from a run's inputs: their records (every number, for results.json), the tables as
shown (ours beside the authors' where known, significance marks), their notes, and their .md/.tex files:

    <figures>/tables/table1_experiment1.{tex,md}    Experiment 1: caption similarity, both metric backends,
                                                    means with 95% CIs, beside the shuffled-pairs control
    <figures>/tables/table2_experiment2.{tex,md}    Experiment 2: each model x variant x query set,
                                                    P@1, R@5, R@10, MRR with significance marks
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from artcap_lib.files import atomic_write_text
from artcap_lib.report import figures
from artcap_lib.report.inputs import RunInputs

TABLE2_METRICS = ("precision@1", "recall@5", "recall@10", "mrr")
DAGGER, DOUBLE_DAGGER = "\u2020", "\u2021"     # significantly different from the baseline / from human-ft
LATEX_MARKS = {DAGGER: r"$^{\dagger}$", DOUBLE_DAGGER: r"$^{\ddagger}$"}


# ------------------------------------------------------------------------------------------------------ Table 1
METRIC_NAMES = {  # column of metrics/per_image.parquet -> name in tables and figures
    **{f"rouge{n}_{k}": f"ROUGE-{n} {name}" for n in ("1", "2", "L") for k, name in (("p", "P"), ("r", "R"),
                                                                                       ("f", "F1"))},
    "bleu4": "BLEU-4 (sentence)", "meteor": "METEOR (NLTK)",
    "bertscore_p": "BERTScore P", "bertscore_r": "BERTScore R", "bertscore_f": "BERTScore F1",
    **{f"coco_bleu{n}": f"BLEU-{n}" for n in range(1, 5)},
    "coco_meteor": "METEOR 1.5", "coco_rougeL": "ROUGE-L", "coco_cider": "CIDEr-D", "coco_spice": "SPICE",
}
BACKEND_NAMES = {"paper": "paper (the authors' libraries)", "coco": "coco (pycocoevalcap)"}
DISTRIBUTION_METRICS = ("bertscore_f", "meteor", "rougeL_f", "bleu4", "coco_meteor", "coco_cider")
HEADLINE_METRICS = ("bertscore_f", "meteor", "rougeL_f", "bleu4", "coco_cider")


def table1_records(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One record per metric of metrics/summary.json: mean, 95% CI, shuffled control, corpus value, authors'."""
    parity = (summary.get("parity") or {}).get("metrics", {})
    records = []
    for metric, entry in summary["metrics"].items():
        records.append({"backend": entry["backend"], "metric": metric, "name": METRIC_NAMES.get(metric, metric),
                        "mean": entry["mean"], "ci95": entry.get("ci95"), "control": entry.get("control_mean"),
                        "corpus": entry.get("corpus"),
                        "authors": parity.get(metric, {}).get("theirs_mean"),
                        "authors_max_abs_diff": parity.get(metric, {}).get("max_abs_diff"),
                        "authors_fraction_exact": parity.get(metric, {}).get("fraction_exact")})
    return records


def table1(records: list[dict[str, Any]], decimals: int = 3) -> pd.DataFrame:
    """Columns backend, metric, ours (mean [95% CI]), authors' mean (when known), shuffled control, corpus."""
    show_authors = any(r["authors"] is not None for r in records)
    show_corpus = any(r["corpus"] is not None for r in records)
    rows = []
    for r in records:
        row = {"backend": BACKEND_NAMES.get(r["backend"], r["backend"]), "metric": r["name"],
               "synthetic vs human, mean [95% CI]": _with_ci(r["mean"], r["ci95"], decimals)}
        if show_authors:
            row["authors' mean"] = _number(r["authors"], decimals)
        row["shuffled pairs, mean"] = _number(r["control"], decimals)
        if show_corpus:
            row["corpus-level"] = _number(r["corpus"], decimals)
        rows.append(row)
    return _blank_repeats(pd.DataFrame(rows), "backend")


def table1_notes(summary: Mapping[str, Any]) -> str:
    bert = summary.get("bertscore")
    spice = summary.get("spice") or {}
    lines = [f"{summary.get('n_pairs', '?')} {summary.get('split', '')} artworks: the {summary.get('captioner', '')} "
             "caption (candidate) scored against the human caption (visual sentences joined; reference).",
             "Shuffled pairs: each human caption scored against another artwork's synthetic caption "
             "(what unrelated captions of this collection score).",
             "95% CI: percentile bootstrap of the mean over images."]
    if bert:
        lines.append(f"BERTScore model: {bert.get('label') or bert.get('model')}; hash {bert.get('hash')}.")
    if spice.get("status") != "ok" and "coco" in summary.get("backends", []):
        lines.append(f"SPICE not computed: {spice.get('reason', 'skipped')}.")
    parity = summary.get("parity")
    if parity:
        lines.append(f"Authors' mean: their stored per-image scores ({parity.get('source')}, {parity.get('n_rows')} "
                     "rows, ROUGE P/R labels corrected); BERTScore parity "
                     f"{parity.get('bertscore')}.")
    return "\n".join(lines)


def _number(value: float | None, decimals: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{decimals}f}"


def _with_ci(value: float, ci, decimals: int) -> str:
    text = _number(value, decimals)
    return f"{text} [{ci[0]:.{decimals}f}, {ci[1]:.{decimals}f}]" if ci else text


# ------------------------------------------------------------------------------------------------------ Table 2
def _significance(block: Mapping[str, Any], test: str) -> dict[tuple[str, str, str], float]:
    """{(variant, other, metric): p} for both orders of every paired test of a query set."""
    key = {"ttest": "p_ttest", "randomisation": "p_randomisation"}[test]
    out = {}
    for t in block.get("significance", []):
        out[(t["a"], t["b"], t["metric"])] = out[(t["b"], t["a"], t["metric"])] = t[key]
    return out


def authors_value(inputs: RunInputs, model: str, query_set: str, variant: str, metric: str) -> float | None:
    """The authors' value of one cell: their stored mean (reference profile: `stored`), else their stored run
    evaluated like ours (paper profile, from reference_results.json); None where they have none."""
    entry = inputs.experiment2.get(model, {}).get("query_sets", {}).get(query_set, {}).get("variants", {}) \
        .get(variant, {})
    if metric in entry.get("stored", {}):
        return entry["stored"][metric]
    theirs = inputs.authors2.get(model, {}).get("query_sets", {}).get(query_set, {}).get("variants", {}) \
        .get(variant)
    return theirs["metrics"].get(metric) if theirs else None


def table2_records(inputs: RunInputs, test: str = "ttest", alpha: float = 0.05,
                   metrics=TABLE2_METRICS) -> list[dict[str, Any]]:
    """One record per (model, query set, variant, metric): value, 95% CI, authors' value, p-values, marks."""
    records = []
    for model, results in inputs.experiment2.items():
        for query_set, block in results["query_sets"].items():
            p = _significance(block, test)
            for variant, entry in block["variants"].items():
                for metric in metrics:
                    if metric not in entry["metrics"]:
                        continue
                    p_base, p_human = p.get((variant, "baseline", metric)), p.get((variant, "human", metric))
                    marks = ""
                    if variant != "baseline" and p_base is not None and p_base < alpha:
                        marks += DAGGER
                    if variant not in ("baseline", "human") and p_human is not None and p_human < alpha:
                        marks += DOUBLE_DAGGER
                    records.append({"model": model, "query_set": query_set, "variant": variant, "metric": metric,
                                    "value": entry["metrics"][metric], "ci95": entry.get("ci95", {}).get(metric),
                                    "n_queries": entry.get("n_queries", block.get("n_queries")),
                                    "authors": authors_value(inputs, model, query_set, variant, metric),
                                    "p_vs_baseline": p_base, "p_vs_human": p_human, "marks": marks})
    return records


def table2(records: list[dict[str, Any]], decimals: int = 3, latex: bool = False) -> pd.DataFrame:
    """Columns model, variant, then (query set, metric); cells "value marks" or "value marks (authors')"."""
    rows: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for r in records:
        cell = f"{r['value']:.{decimals}f}{_marks(r['marks'], latex)}"
        if r["authors"] is not None:
            cell += f" ({r['authors']:.{decimals}f})"
        row = (figures.label(r["model"], figures.MODEL_LABELS), figures.label(r["variant"], figures.VARIANT_LABELS))
        column = (figures.label(r["query_set"], figures.QUERY_SET_LABELS),
                  figures.label(r["metric"], figures.METRIC_LABELS))
        rows.setdefault(row, {})[column] = cell
    cells = pd.DataFrame.from_dict(rows, orient="index").fillna("–")
    keys = pd.DataFrame(list(cells.index), columns=[("model", ""), ("variant", "")])
    frame = pd.concat([keys, cells.reset_index(drop=True)], axis=1)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return _blank_repeats(frame, ("model", ""))


def _blank_repeats(frame: pd.DataFrame, column) -> pd.DataFrame:
    """Show a group's name on its first row only (as a paper table does)."""
    frame = frame.copy()
    frame.loc[frame[column].eq(frame[column].shift()), column] = ""
    return frame


def _marks(marks: str, latex: bool) -> str:
    return "".join(LATEX_MARKS[m] for m in marks) if latex else marks


def table2_parity(inputs: RunInputs) -> pd.DataFrame:
    """Per model and query set: the largest |ours - authors'| over the cells where the authors have a value."""
    rows = []
    for r in table2_records(inputs):
        if r["authors"] is not None:
            rows.append({"model": r["model"], "query set": r["query_set"], "metric": r["metric"],
                         "abs diff": abs(r["value"] - r["authors"])})
    if not rows:
        return pd.DataFrame(columns=["model", "query set", "metric", "max abs diff"])
    frame = pd.DataFrame(rows).groupby(["model", "query set", "metric"])["abs diff"].max()
    return frame.rename("max abs diff").reset_index()


# ------------------------------------------------------------------------------------------------ table files
def markdown(frame: pd.DataFrame) -> str:
    """A table with two header levels as Markdown (levels joined: "Artpedia queries · P@1")."""
    flat = frame.copy()
    flat.columns = [" · ".join(str(level) for level in column if str(level)) if isinstance(column, tuple)
                    else str(column) for column in flat.columns]
    return flat.to_markdown(index=False, disable_numparse=True)   # "0.240" stays as written


def latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); header levels become \\multicolumn groups."""
    return frame.style.hide(axis="index").to_latex(
        hrules=True, multicol_align="c", caption=caption, label=label, position_float="centering",
        environment="table")


def write_table(name: str, markdown_frame: pd.DataFrame, latex_frame: pd.DataFrame, caption: str,
                notes: str, out_dir: Path) -> list[Path]:
    """<out_dir>/<name>.md (caption, table, notes) and <out_dir>/<name>.tex (table environment, notes as a
    comment), written atomically."""
    md = out_dir / f"{name}.md"
    tex = out_dir / f"{name}.tex"
    atomic_write_text(md, f"**{caption}**\n\n{markdown(markdown_frame)}\n\n{notes}\n")
    comment = "\n".join(f"% {line}" for line in notes.splitlines())
    atomic_write_text(tex, f"% generated by artcap (notebook 06); needs \\usepackage{{booktabs,multirow}}\n"
                           f"{comment}\n{latex(latex_frame, caption, f'tab:{name}')}")
    return [md, tex]


def table2_notes(inputs: RunInputs, test: str, alpha: float) -> str:
    any_results = next(iter(inputs.experiment2.values()), {})
    settings = any_results.get("settings", {})
    source = any_results.get("source")
    lines = ["Text-to-image retrieval over the test images, one relevant image per query (its own); "
             f"runs cut at the top {settings.get('depth', '?')}. P@1 equals R@1 here.",
             f"{DAGGER} differs from the baseline, {DOUBLE_DAGGER} from human-ft: paired "
             f"{'Student t-test' if test == 'ttest' else 'randomisation test'} over queries, p < {alpha}.",
             "baseline: the starting model; human-ft / synthetic-ft: fine-tuned on human / synthetic captions."]
    if source == "reference":
        lines.append("Ours = the authors' stored runs evaluated here; (in parentheses) = their stored means "
                     "(*_means.json); they stored P@1 and MRR only.")
    elif inputs.authors2:
        lines.append("(in parentheses) = the authors' stored runs evaluated the same way.")
    return "\n".join(lines)
