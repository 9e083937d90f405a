"""Notebook 06: the paper's tables and figures, `results.json` and a README, from one run directory.

Reads what steps 01-05 wrote (never their notebooks' outputs) and writes:

    <figures>/tables/table1_experiment1.{tex,md}    Experiment 1: caption similarity, both metric backends,
                                                    means with 95% CIs, beside the shuffled-pairs control
    <figures>/tables/table2_experiment2.{tex,md}    Experiment 2: BLIP and Long-CLIP x variant x query set,
                                                    P@1, R@5, R@10, MRR with significance marks
    <figures>/tables/captioner_comparison.{tex,md}  runs with several captioners: Experiment 1 and 2 per captioner
                                                    (`report.comparison`)
    <figures>/<figure>.{png,pdf}                    see FIGURES
    <figures>/README.md                             the run in one page: profile, date, commit, device, headlines
    <run>/results.json                              every number in the tables (full precision) + provenance

Where the authors' values are known (the reference profile; the paper profile with the reference artefacts at
hand) each table cell shows ours beside theirs, "ours (authors')". A step that has not run, or a profile that has
no such step, is not an error here: the table or figure is left out and `missing` says which step makes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from artcap_lib.config import primary_captioner
from artcap_lib.report import comparison, figures
from artcap_lib.files import atomic_write_text, read_json, write_json

SCHEMA = "artcap.report.results/1"
TABLE2_METRICS = ("precision@1", "recall@5", "recall@10", "mrr")
FIGURES = {  # name -> what it shows
    "fig_metric_distributions": "Experiment 1: per-image metric scores, synthetic vs human captions and shuffled pairs",
    "fig_caption_lengths": "caption length histograms, human vs synthetic",
    "fig_retrieval": "Experiment 2: retrieval metrics per model, query set and variant with 95% CIs",
    "fig_training_curves": "fine-tuning curves of BLIP and Long-CLIP (training loss, validation criterion)",
    "fig_gallery": "test artworks with their human and synthetic captions",
    "fig_captioners": "captioners compared: Experiment 1 metrics and P@1 after fine-tuning on each, with 95% CIs",
}
DAGGER, DOUBLE_DAGGER = "\u2020", "\u2021"     # significantly different from the baseline / from human-ft
LATEX_MARKS = {DAGGER: r"$^{\dagger}$", DOUBLE_DAGGER: r"$^{\ddagger}$"}


# ------------------------------------------------------------------------------------------------------ inputs
@dataclass
class RunInputs:
    """Everything notebook 06 reads from a run directory; absent inputs are None/empty and listed in `missing`."""
    experiment1: dict | None = None                       # metrics/summary.json (the first captioner's)
    per_image: pd.DataFrame | None = None                 # metrics/per_image.parquet
    control: pd.DataFrame | None = None                   # metrics/control_per_image.parquet (shuffled pairs)
    experiment2: dict[str, dict] = field(default_factory=dict)   # model -> results (runs' schema)
    authors2: dict[str, dict] = field(default_factory=dict)      # model -> results of the authors' stored runs
    histories: dict[str, dict[str, dict]] = field(default_factory=dict)   # model -> variant -> history.json
    manifest: dict = field(default_factory=dict)          # the run's manifest.json
    captioners: list[dict] = field(default_factory=list)  # [{name, model, prompt, variant}], the profile's order
    captioner_summaries: dict[str, dict] = field(default_factory=dict)   # name -> its Experiment 1 summary.json
    captioner_per_image: dict[str, pd.DataFrame] = field(default_factory=dict)   # name -> its per_image table
    missing: list[str] = field(default_factory=list)      # what is absent, and which step writes it


def collect(cfg, paths) -> RunInputs:
    inputs = RunInputs()
    inputs.manifest = read_json(paths.manifest) if paths.manifest.is_file() else {}
    _collect_experiment1(paths, inputs)
    _collect_captioners(cfg, paths, inputs)
    _collect_experiment2(cfg, paths, inputs)
    _collect_histories(cfg, paths, inputs)
    return inputs


def _collect_experiment1(paths, inputs: RunInputs) -> None:
    summary = paths.metrics / "summary.json"
    if summary.is_file():
        inputs.experiment1 = read_json(summary)
    else:
        inputs.missing.append(f"Table 1: {summary} not found (step 03, caption metrics, has not run)")
    per_image = paths.metrics / "per_image.parquet"
    if per_image.is_file():
        inputs.per_image = pd.read_parquet(per_image)
    else:
        inputs.missing.append(f"metric distributions: {per_image} not found (step 03, caption metrics)")
    control = paths.metrics / "control_per_image.parquet"
    if control.is_file():
        inputs.control = pd.read_parquet(control)


def _collect_captioners(cfg, paths, inputs: RunInputs) -> None:
    """Every captioner of the profile, with its Experiment 1 files where step 03 wrote them."""
    from artcap_lib.config import captioner_variant, captioners
    from artcap_lib.textmetrics.step import output_dir
    for spec in captioners(cfg):
        inputs.captioners.append({"name": spec.name, "model": spec.model, "prompt": spec.prompt,
                                  "variant": captioner_variant(cfg, spec.name)})
        folder = output_dir(cfg, paths, spec.name)
        if (folder / "summary.json").is_file():
            inputs.captioner_summaries[spec.name] = read_json(folder / "summary.json")
        elif len(inputs.captioners) > 1:
            inputs.missing.append(f"captioner comparison: {folder / 'summary.json'} not found (step 03)")
        if (folder / "per_image.parquet").is_file():
            inputs.captioner_per_image[spec.name] = pd.read_parquet(folder / "per_image.parquet")


def _collect_experiment2(cfg, paths, inputs: RunInputs) -> None:
    from artcap_lib.retrieval import registry
    if cfg.retrieval.source == "reference":
        if paths.reference_results.is_file():
            inputs.experiment2 = read_json(paths.reference_results)["models"]
        else:
            inputs.missing.append(f"Table 2: {paths.reference_results} not found (steps 04/05 import the authors' "
                                  "runs in the reference profile)")
        return
    for model in cfg.retrieval.models:
        results = paths.retrieval_results(model)
        if results.is_file():
            inputs.experiment2[model] = read_json(results)
        else:
            entry = registry.entry(model)
            inputs.missing.append(f"Table 2: {results} not found (step {entry.notebook}, {entry.title}, has not run)")
    if cfg.report.compare_with_authors and inputs.experiment2:
        inputs.authors2 = _authors_experiment2(cfg, paths, inputs.missing)


def _authors_experiment2(cfg, paths, missing: list[str]) -> dict[str, dict]:
    """The authors' runs evaluated like ours (retrieval/reference_results.json, made here when absent)."""
    if paths.reference_results.is_file():
        return read_json(paths.reference_results)["models"]
    from artcap_lib import reference
    from artcap_lib.retrieval import runs
    try:
        return runs.reference_experiment2(paths, bootstrap=cfg.retrieval.bootstrap,
                                          randomisation=cfg.retrieval.randomisation, seed=cfg.seed)["models"]
    except reference.ReferenceError as err:
        missing.append(f"authors' values in Table 2: the reference artefacts are not available ({err})")
        return {}


def _collect_histories(cfg, paths, inputs: RunInputs) -> None:
    """The shared training loop's history.json of every fine-tuned variant of every model of the run."""
    from artcap_lib.retrieval.experiment import fine_tuned_variants
    for model in cfg.retrieval.models:
        found = {variant: read_json(paths.history(model, variant)) for variant in fine_tuned_variants(cfg)
                 if paths.history(model, variant).is_file()}
        if found:
            inputs.histories[model] = found
    if not inputs.histories:
        inputs.missing.append(f"training curves: no {paths.history('<model>', '<variant>')} "
                              "(steps 04/05 fine-tune; the reference profile trains nothing)")


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


# ------------------------------------------------------------------------------------------------------ figures
def make_figures(cfg, paths, inputs: RunInputs) -> dict[str, list[Path]]:
    """Every figure the run's files allow, saved in cfg.report.formats; the rest go to inputs.missing."""
    import matplotlib.pyplot as plt
    from artcap_lib.report.plots import save
    made: dict[str, list[Path]] = {}
    for name, build in (("fig_metric_distributions", _fig_metric_distributions),
                        ("fig_caption_lengths", _fig_caption_lengths), ("fig_retrieval", _fig_retrieval),
                        ("fig_training_curves", _fig_training_curves), ("fig_gallery", _fig_gallery),
                        ("fig_captioners", _fig_captioners)):
        fig = build(cfg, paths, inputs)
        if fig is not None:
            made[name] = save(fig, paths.figures, name, cfg.report.formats)
            plt.close(fig)
    return made


def _fig_metric_distributions(cfg, paths, inputs):
    if inputs.per_image is None:
        return None
    columns = {m: METRIC_NAMES[m] for m in DISTRIBUTION_METRICS if m in inputs.per_image.columns}
    return figures.metric_distributions(inputs.per_image, columns, inputs.control, primary_captioner(cfg))


def _caption_pairs(cfg, paths, split: str | None = None) -> tuple[dict, dict[str, str]]:
    """(artworks, synthetic captions) for the artworks that have both (optionally of one split)."""
    from artcap_lib.data.artpedia import load_artworks
    from artcap_lib.captioning.store import read_captions
    caption_file = paths.caption_file(primary_captioner(cfg))
    if not paths.artworks.is_file() or not caption_file.is_file():
        return {}, {}
    artworks = load_artworks(paths.artworks, require_urls=False)
    captions = read_captions(caption_file)
    keep = {i: a for i, a in artworks.items() if i in captions and (split is None or a.get("split") == split)}
    return keep, {i: captions[i] for i in keep}


def _fig_caption_lengths(cfg, paths, inputs):
    from artcap_lib.data.artpedia import human_caption
    artworks, captions = _caption_pairs(cfg, paths)
    if not captions:
        inputs.missing.append(f"caption lengths: needs {paths.artworks} (step 01) and "
                              f"{paths.caption_file(primary_captioner(cfg))} (step 02)")
        return None
    return figures.caption_lengths({"human": [len(human_caption(a).split()) for a in artworks.values()],
                                    "synthetic": [len(captions[i].split()) for i in artworks]})


def _fig_retrieval(cfg, paths, inputs):
    if not inputs.experiment2:
        return None
    authors = {(r["model"], r["query_set"], r["variant"], r["metric"]): r["authors"]
               for r in table2_records(inputs) if r["authors"] is not None}
    return figures.retrieval_bars(inputs.experiment2, TABLE2_METRICS, authors)


def captioner_records(cfg, inputs: RunInputs) -> list[dict[str, Any]]:
    """`comparison.records` of the run (Experiment 2 of our own models only: the authors' runs have one captioner)."""
    own = {m: r for m, r in inputs.experiment2.items() if r.get("source") != "reference"}
    return comparison.records(inputs.captioners, inputs.captioner_summaries, inputs.captioner_per_image, own,
                              cfg.report.alpha, cfg.report.significance_test)


def _fig_captioners(cfg, paths, inputs):
    if len(inputs.captioners) < 2:
        return None                     # one captioner: Tables 1 and 2 are the comparison
    recs = captioner_records(cfg, inputs)
    if not any(r["experiment1"] or r["experiment2"] for r in recs):
        return None
    return comparison.figure(recs)


def _fig_training_curves(cfg, paths, inputs):
    return figures.training_curves(inputs.histories) if inputs.histories else None


def _fig_gallery(cfg, paths, inputs):
    from artcap_lib.data.artpedia import human_caption, image_path
    from artcap_lib.report.plots import gallery
    artworks, captions = _caption_pairs(cfg, paths, split="test")
    items = []
    for art_id, entry in artworks.items():
        image = image_path(paths.artworks, entry)
        if image is not None and image.is_file():
            items.append({"image": image, "title": f"{art_id}: {entry.get('title', '')}",
                          "captions": {"human": human_caption(entry), primary_captioner(cfg): captions[art_id]}})
        if len(items) == cfg.report.gallery_size:
            break
    if not items:
        inputs.missing.append("gallery: no test artwork with an image file and a synthetic caption "
                              "(the reference profile has no images)")
        return None
    return gallery(items, ncols=min(3, len(items)), width=56, max_lines=4,
                   title="Test artworks: human caption and synthetic caption")


# ------------------------------------------------------------------------------------------------ the report
@dataclass
class Report:
    inputs: RunInputs
    table1: pd.DataFrame | None                 # as shown (strings)
    table2: pd.DataFrame | None
    parity: pd.DataFrame                        # Table 2: max |ours - authors'| per model, query set, metric
    tables: dict[str, list[Path]]
    figures: dict[str, list[Path]]
    results: dict[str, Any]                     # = results.json
    captioners: pd.DataFrame | None = None      # the captioner comparison (runs with several captioners)


def build(cfg, paths) -> Report:
    """Collect the run's results, write both tables, every figure, results.json and the README."""
    decimals, test, alpha = cfg.report.decimals, cfg.report.significance_test, cfg.report.alpha
    if test not in ("ttest", "randomisation"):
        raise ValueError(f"report.significance_test must be ttest or randomisation, got {test!r}")
    inputs = collect(cfg, paths)
    tables: dict[str, list[Path]] = {}
    records1 = table1_records(inputs.experiment1) if inputs.experiment1 else []
    shown1 = table1(records1, decimals) if records1 else None
    if shown1 is not None:
        tables["table1_experiment1"] = write_table(
            "table1_experiment1", shown1, shown1,
            "Table 1: Experiment 1, similarity of synthetic and human captions", table1_notes(inputs.experiment1),
            paths.tables)
    records2 = table2_records(inputs, test, alpha)
    shown2 = table2(records2, decimals) if records2 else None
    if shown2 is not None:
        tables["table2_experiment2"] = write_table(
            "table2_experiment2", shown2, table2(records2, decimals, latex=True),
            "Table 2: Experiment 2, text-to-image retrieval after fine-tuning on human or synthetic captions",
            table2_notes(inputs, test, alpha), paths.tables)
    recs = captioner_records(cfg, inputs)
    shown3 = None
    if len(inputs.captioners) > 1 and any(r["experiment1"] or r["experiment2"] for r in recs):
        shown3 = comparison.table(recs, decimals, alpha)
        tables["captioner_comparison"] = write_table(
            "captioner_comparison", shown3, shown3,
            "Captioners compared: Experiment 1 and Experiment 2 per captioner", comparison.notes(recs, alpha),
            paths.tables)
    made = make_figures(cfg, paths, inputs)
    results = results_json(cfg, paths, inputs, records1, records2, tables, made, recs)
    write_json(paths.root / "results.json", results)
    atomic_write_text(paths.figures / "README.md", readme(results, shown1, shown2, shown3))
    return Report(inputs, shown1, shown2, table2_parity(inputs), tables, made, results, shown3)


def results_json(cfg, paths, inputs: RunInputs, records1, records2, tables, made, captioner_recs=()) -> dict[str, Any]:
    from artcap_lib.retrieval import registry
    from artcap_lib.provenance import environment
    now = environment()
    manifest = inputs.manifest
    summary = inputs.experiment1 or {}
    return {
        "schema": SCHEMA,
        "profile": cfg.profile,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(paths.root), "figures_dir": str(paths.figures),
        "git": manifest.get("git") or now["git"],
        "device": manifest.get("device") or now["device"],
        "notebooks": manifest.get("notebooks", {}),
        "lock": manifest.get("lock") or now["lock"],
        "departures_from_sources": manifest.get("departures_from_sources", {}),
        "experiment1": {"split": summary.get("split"), "captioner": summary.get("captioner"),
                        "n_pairs": summary.get("n_pairs"), "bertscore": summary.get("bertscore"),
                        "spice": summary.get("spice"), "metrics": records1} if records1 else None,
        "experiment2": {"significance_test": cfg.report.significance_test, "alpha": cfg.report.alpha,
                        "source": next(iter(inputs.experiment2.values()), {}).get("source"),
                        "cells": records2} if records2 else None,
        "captioners": list(captioner_recs),
        "retrieval_models": [{"name": m, "title": registry.entry(m).title, "notebook": registry.entry(m).notebook,
                              "has_results": m in inputs.experiment2} for m in cfg.retrieval.models],
        "tables": {k: [str(p) for p in v] for k, v in tables.items()},
        "figures": {k: [str(p) for p in v] for k, v in made.items()},
        "missing": inputs.missing,
    }


def lock_line(lock: Mapping[str, Any] | None) -> str:
    """The run README's word on the packages: as locked, or which differ from requirements.lock."""
    if not lock or lock.get("matches") is None:
        return "no requirements.lock to compare with"
    if lock["matches"]:
        return f"as locked (requirements.lock, {lock['checked']} packages)"
    differing = ", ".join(f"{name} {d['installed'] or 'missing'} (locked {d['locked']})"
                          for name, d in sorted(lock["differing"].items()))
    return f"{len(lock['differing'])} differ from requirements.lock: {differing}"


def readme(results: Mapping[str, Any], shown1: pd.DataFrame | None, shown2: pd.DataFrame | None,
           shown3: pd.DataFrame | None = None) -> str:
    """figures/<profile>/README.md: the run on one page, for readers who would rather not run it."""
    git, device = results.get("git") or {}, results.get("device") or {}
    hardware = ", ".join(device.get("gpus") or []) or f"CPU ({device.get('cpu_count', '?')} cores)"
    wall = sum(v.get("wall_s", 0) for v in results.get("notebooks", {}).values())
    lines = [f"# artcap run: profile `{results['profile']}`", "",
             f"Generated {results['generated_at']} by notebook 06 from `{results['run_dir']}`.", "",
             f"- commit: `{git.get('commit')}`{' (with uncommitted changes)' if git.get('dirty') else ''}",
             f"- device: {hardware}; {device.get('platform', '')}, Python {device.get('python', '?')}",
             f"- notebooks run before this report: {', '.join(results.get('notebooks', {})) or 'none recorded'}"
             + (f" ({wall:.0f} s of notebook time)" if wall else ""),
             f"- packages: {lock_line(results.get('lock'))}"]
    departures = results.get("departures_from_sources") or {}
    if departures:
        lines.append("- departs from the profile's sources (`artcap profile`): " + "; ".join(
            f"`{k}` = {d['value']!r} (source: {d['source_value']!r})" for k, d in sorted(departures.items())))
    lines += ["", "## Headline numbers", ""]
    lines += headlines(results) or ["No results yet (see below)."]
    if shown1 is not None:
        lines += ["", "## Table 1: Experiment 1", "", markdown(shown1)]
    if shown2 is not None:
        with_authors = any(c["authors"] is not None for c in results["experiment2"]["cells"])
        lines += ["", "## Table 2: Experiment 2", "", markdown(shown2),
                  "", f"{DAGGER} / {DOUBLE_DAGGER}: differs from baseline / human-ft, p < "
                      f"{results['experiment2']['alpha']} ({results['experiment2']['significance_test']})"
                      + ("; (x) = the authors' value." if with_authors else ".")]
    if shown3 is not None:
        lines += ["", "## Captioners compared", "", markdown(shown3), "",
                  comparison.notes(results["captioners"]).replace("\n", "  \n")]
    lines += _parity_lines(results)
    if results["figures"]:
        lines += ["", "## Figures", ""]
        for name, files in results["figures"].items():
            png = next((Path(f).name for f in files if f.endswith(".png")), Path(files[0]).name)
            lines += [f"**{FIGURES[name]}**", "", f"![{name}]({png})", ""]
    if results["missing"]:
        lines += ["", "## Not produced in this run", ""] + [f"- {m}" for m in results["missing"]]
    return "\n".join(lines) + "\n"


def headlines(results: Mapping[str, Any]) -> list[str]:
    lines = []
    exp1 = results.get("experiment1")
    if exp1:
        by_metric = {r["metric"]: r for r in exp1["metrics"]}
        parts = [f"{r['name']} {r['mean']:.3f}" + (f" (shuffled {r['control']:.3f})" if r["control"] is not None
                                                   else "") for m in HEADLINE_METRICS if (r := by_metric.get(m))]
        lines.append(f"- Experiment 1 ({exp1['n_pairs']} {exp1['split']} pairs, {exp1['captioner']} vs human): "
                     + "; ".join(parts) + ".")
    exp2 = results.get("experiment2")
    if exp2:
        cells = {(c["model"], c["query_set"], c["variant"], c["metric"]): c for c in exp2["cells"]}
        for model, query_set in dict.fromkeys((c["model"], c["query_set"]) for c in exp2["cells"]):
            parts = []
            for variant in ("baseline", "human", "synthetic"):
                p1, mrr = cells.get((model, query_set, variant, "precision@1")), cells.get((model, query_set,
                                                                                           variant, "mrr"))
                if p1 and mrr:
                    parts.append(f"{figures.label(variant, figures.VARIANT_LABELS)} P@1 {p1['value']:.3f}"
                                 f"{p1['marks']} / MRR {mrr['value']:.3f}{mrr['marks']}")
            lines.append(f"- Experiment 2, {figures.label(model, figures.MODEL_LABELS)}, "
                         f"{figures.label(query_set, figures.QUERY_SET_LABELS)}: " + "; ".join(parts) + ".")
    return lines


def _parity_lines(results: Mapping[str, Any]) -> list[str]:
    """README lines on how close ours are to the authors' values (none where no authors' value is known)."""
    per_image = [r for r in (results.get("experiment1") or {}).get("metrics", [])
                 if r["authors"] is not None and r["authors_max_abs_diff"] is not None]
    cells = [c for c in (results.get("experiment2") or {}).get("cells", []) if c["authors"] is not None]
    if not per_image and not cells:
        return []
    lines = ["", "## Parity with the authors' values", ""]
    if per_image:
        lines += ["Experiment 1, per image against their stored scores (max |ours - theirs|, share within 1e-6):", ""]
        lines += [f"- {r['name']}: {r['authors_max_abs_diff']:.2g}, {r['authors_fraction_exact']:.1%} exact"
                  for r in per_image]
        lines += [""] if cells else []
    if cells:
        worst = max(abs(c["value"] - c["authors"]) for c in cells)
        lines.append(f"Experiment 2: {len(cells)} cells with an authors' value; largest |ours - theirs| = {worst:.2g}.")
    return lines
