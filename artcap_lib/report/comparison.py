"""The captioner comparison (notebook 06, runs with several captioners): Experiment 1 and 2 per captioner.

Which captioner's captions are closest to the human ones (Experiment 1), and which make the best fine-tuning data
for each retrieval model, measured against fine-tuning on the human captions (Experiment 2)?

    records(captioners, experiment1, per_image, experiment2)   one record per captioner: everything below
    table(records)                                             the table as shown (strings)
    figure(records)                                            Experiment 1 means and each model's P@1, with CIs

Experiment 1: each captioner's mean [95% CI] of the headline metrics, and a paired t-test over the images both
captioned against the first captioner (the paper's). Experiment 2: for every retrieval model and query set, the
captioner's fine-tune (its variant) P@1 and MRR [95% CI] with the paired test against human-ft that the runner
already ran (every pair of variants is tested), and human-ft's own value beside it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from artcap_lib import stats
from artcap_lib.report import figures
from artcap_lib.report.tables import METRIC_NAMES

EXPERIMENT1_METRICS = ("bertscore_f", "meteor", "rougeL_f", "bleu4", "coco_cider")
EXPERIMENT2_METRICS = ("precision@1", "mrr")
SIGNIFICANT = "\u2021"          # differs from human-ft (Experiment 2) / from the first captioner (Experiment 1)


def records(captioners: Sequence[Mapping[str, Any]], experiment1: Mapping[str, dict],
            per_image: Mapping[str, pd.DataFrame], experiment2: Mapping[str, dict],
            alpha: float = 0.05, test: str = "ttest") -> list[dict[str, Any]]:
    """captioners: [{name, model, prompt, variant}] in the profile's order; experiment1: {name: summary.json};
    per_image: {name: per_image frame}; experiment2: {model: results.json of `runs`}; test: which of the runner's
    paired tests marks Experiment 2 (ttest | randomisation, `report.significance_test`)."""
    first = captioners[0]["name"] if captioners else None
    out = []
    for spec in captioners:
        name = spec["name"]
        record = {**spec, "experiment1": None, "experiment2": {}}
        summary = experiment1.get(name)
        if summary:
            metrics = {}
            for metric in EXPERIMENT1_METRICS:
                entry = summary["metrics"].get(metric)
                if entry is None:
                    continue
                metrics[metric] = {"mean": entry["mean"], "ci95": entry["ci95"],
                                   "p_vs_first": _p_vs_first(per_image, name, first, metric)}
            record["experiment1"] = {"n_pairs": summary["n_pairs"], "split": summary["split"], "metrics": metrics}
        for model, results in experiment2.items():
            for query_set, block in results["query_sets"].items():
                variants = block["variants"]
                if spec["variant"] not in variants:
                    continue
                tests = {(t["a"], t["b"], t["metric"]): t[f"p_{test}"] for t in block.get("significance", [])}
                cells = {}
                for metric in EXPERIMENT2_METRICS:
                    mine = variants[spec["variant"]]
                    human = variants.get("human", {})
                    p = tests.get((spec["variant"], "human", metric), tests.get(("human", spec["variant"], metric)))
                    cells[metric] = {"value": mine["metrics"][metric], "ci95": mine.get("ci95", {}).get(metric),
                                     "human": human.get("metrics", {}).get(metric),
                                     "human_ci95": human.get("ci95", {}).get(metric), "p_vs_human": p,
                                     "significant": p is not None and p < alpha}
                record["experiment2"].setdefault(model, {})[query_set] = cells
        out.append(record)
    return out


def _p_vs_first(per_image: Mapping[str, pd.DataFrame], name: str, first: str | None, metric: str) -> float | None:
    """Paired t-test of a metric over the images both captioners have, against the first captioner."""
    if name == first or name not in per_image or first not in per_image:
        return None
    a, b = per_image[name], per_image[first]
    if metric not in a or metric not in b:
        return None
    common = a.index.intersection(b.index)
    if len(common) < 2:
        return None
    return stats.paired_t_test(a.loc[common, metric].to_numpy(), b.loc[common, metric].to_numpy())


def _cell(value, ci, decimals: int, mark: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:.{decimals}f}{mark}"
    return f"{text} [{ci[0]:.{decimals}f}, {ci[1]:.{decimals}f}]" if ci else text


def table(recs: Sequence[Mapping[str, Any]], decimals: int = 3, alpha: float = 0.05) -> pd.DataFrame:
    """One row per captioner (plus human-ft for Experiment 2); columns (Experiment 1 metric) and (model · query
    set · metric); cells "mean [95% CI]" with ‡ where the paired test gives p < alpha."""
    rows: dict[str, dict[tuple[str, str], str]] = {}
    human: dict[tuple[str, str], str] = {}
    for r in recs:
        row = rows.setdefault(r["name"], {("captioner", ""): r["name"], ("model", ""): r["model"]})
        for metric, m in ((r["experiment1"] or {}).get("metrics") or {}).items():
            mark = SIGNIFICANT if m["p_vs_first"] is not None and m["p_vs_first"] < alpha else ""
            row[("Experiment 1", METRIC_NAMES.get(metric, metric))] = _cell(m["mean"], m["ci95"], decimals, mark)
        for model, by_set in r["experiment2"].items():
            for query_set, cells in by_set.items():
                for metric, c in cells.items():
                    column = (f"{figures.label(model, figures.MODEL_LABELS)} · "
                              f"{figures.label(query_set, figures.QUERY_SET_LABELS)}",
                              figures.label(metric, figures.METRIC_LABELS))
                    row[column] = _cell(c["value"], c["ci95"], decimals, SIGNIFICANT if c["significant"] else "")
                    human[column] = _cell(c["human"], c["human_ci95"], decimals)
    if human:
        rows["human-ft"] = {("captioner", ""): "human (Experiment 2: human-ft)", ("model", ""): "–", **human}
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("–").reset_index(drop=True)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def notes(recs: Sequence[Mapping[str, Any]], alpha: float = 0.05) -> str:
    first = recs[0]["name"] if recs else "?"
    return "\n".join([
        "Experiment 1: each captioner's captions scored against the human captions, mean [95% bootstrap CI]; "
        f"{SIGNIFICANT} = differs from the first captioner ({first}), paired t-test over images, p < {alpha}.",
        "Experiment 2: each retrieval model fine-tuned on each captioner's captions, test P@1 and MRR [95% CI]; "
        f"{SIGNIFICANT} = differs from human-ft (the last row), paired test over queries "
        f"(report.significance_test), p < {alpha}.",
        "Prompts: " + "; ".join(f"{r['name']}: \"{r['prompt']}\"" for r in recs) + "."])


def figure(recs: Sequence[Mapping[str, Any]]):
    """Left: the Experiment 1 metrics per captioner; then one panel per (retrieval model, query set): P@1 of
    human-ft and of each captioner's fine-tune; 95% CIs as error bars."""
    import matplotlib.pyplot as plt
    import numpy as np
    names = [r["name"] for r in recs]
    panels = list(dict.fromkeys((m, qs) for r in recs for m, by_set in r["experiment2"].items() for qs in by_set))
    with1 = [r for r in recs if r["experiment1"]]
    if not with1 and not panels:
        raise ValueError("no captioner has Experiment 1 or 2 results")
    n = (1 if with1 else 0) + len(panels)
    fig, axes = plt.subplots(1, n, figsize=(max(4.5, 1.1 * len(names) + 2.5) * n, 3.6), squeeze=False)
    axes = list(axes[0])
    if with1:
        ax = axes.pop(0)
        metrics = [m for m in EXPERIMENT1_METRICS if all(m in r["experiment1"]["metrics"] for r in with1)]
        width = 0.8 / len(with1)
        x = np.arange(len(metrics))
        for i, r in enumerate(with1):
            means = np.array([r["experiment1"]["metrics"][m]["mean"] for m in metrics])
            cis = np.array([r["experiment1"]["metrics"][m]["ci95"] for m in metrics])
            ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=np.abs(cis.T - means), capsize=2,
                   color=figures.EXTRA_COLOURS[i % len(figures.EXTRA_COLOURS)], label=r["name"],
                   error_kw={"lw": 0.8})
            ax.set_xticks(x, [METRIC_NAMES.get(m, m) for m in metrics], rotation=20, fontsize=8)
        ax.set_title("Experiment 1: captions vs human", fontsize=10)
        ax.legend(fontsize=7)
    for ax, (model, query_set) in zip(axes, panels):
        bars = []
        human = next(r["experiment2"][model][query_set]["precision@1"] for r in recs
                     if query_set in r["experiment2"].get(model, {}))
        bars.append(("human-ft", human["human"], human["human_ci95"], figures.SOURCE_COLOURS["human"]))
        for i, r in enumerate(recs):
            cell = r["experiment2"].get(model, {}).get(query_set, {}).get("precision@1")
            if cell:
                bars.append((r["name"] + (f" {SIGNIFICANT}" if cell["significant"] else ""), cell["value"],
                             cell["ci95"], figures.EXTRA_COLOURS[i % len(figures.EXTRA_COLOURS)]))
        for j, (name, value, ci, tint) in enumerate(bars):
            err = [[value - ci[0]], [ci[1] - value]] if ci and value is not None else None
            ax.bar(j, value or 0.0, 0.7, yerr=err, capsize=3, color=tint, error_kw={"lw": 0.8})
        ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{figures.label(model, figures.MODEL_LABELS)} · "
                     f"{figures.label(query_set, figures.QUERY_SET_LABELS)}: P@1 after fine-tuning", fontsize=10)
    fig.suptitle("Captioners compared (95% bootstrap CIs; \u2021 differs from human-ft / the first captioner)",
                 fontsize=11)
    fig.tight_layout()
    return fig
