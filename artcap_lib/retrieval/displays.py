"""What notebooks 04 and 05 show of an Experiment-2 outcome (`experiment.run`), the same for every model:
a paragraph, the results with CIs, the paired tests, chance and image-to-text, the score kinds side by side,
the truncation, and retrieval examples (figures: `report.figures`)."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd


def describe(out: dict[str, Any]) -> str:
    """One paragraph saying what the notebook just did."""
    title = out["title"]
    if out["source"] == "reference":
        return (f"**Reference profile: no model was trained or run.** The numbers below are the authors' stored "
                f"{title} runs (jcgohr/artwork-caption-gen, top-100 ranx runs) re-evaluated here with bootstrap "
                "intervals and paired tests."
                + (" Truncation statistics are computed on the published captions." if out["truncation"] else ""))
    s = out["summary"]
    tunes = ", ".join(f"{v}: kept epoch {t['best_epoch']} of {t['epochs_run']}" for v, t in s["fine_tunes"].items())
    main = s["score_kinds"][0]["label"]
    text = (f"Trained and scored here: baseline = `{s['baseline']}`; fine-tuned on "
            f"{' and '.join(s['fine_tunes']) or 'nothing'} captions ({s['n']['train']} train / {s['n']['val']} val "
            f"images{'; ' + tunes if tunes else ''}), evaluated on {s['n']['test']} test images with {main} scores "
            f"(chance R@1 = {s['chance_recall@1']:.4f}) in {s['seconds']['total']:.0f} s.")
    if s["missing_query_sets"]:
        text += f" Query sets not available here: {', '.join(s['missing_query_sets'])}."
    return text


def results_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per (query set, variant): the metrics with their 95% bootstrap intervals."""
    rows = []
    for query_set, block in results["query_sets"].items():
        for variant, entry in block["variants"].items():
            row = {"query set": query_set, "variant": variant, "queries": entry["n_queries"]}
            for metric in results["metrics"]:
                low, high = entry["ci95"][metric]
                row[metric] = f"{entry['metrics'][metric]:.3f} [{low:.3f}, {high:.3f}]"
            rows.append(row)
    return pd.DataFrame(rows)


def significance_table(results: dict[str, Any], metrics: Sequence[str] = ("precision@1", "mrr")) -> pd.DataFrame:
    """The paired tests (t-test and randomisation) between variants, per query set."""
    rows = [{"query set": query_set, "a": t["a"], "b": t["b"], "metric": t["metric"],
             "mean a": round(t["mean_a"], 4), "mean b": round(t["mean_b"], 4),
             "p (t-test)": t["p_ttest"], "p (randomisation)": t["p_randomisation"]}
            for query_set, block in results["query_sets"].items() for t in block["significance"]
            if t["metric"] in metrics]
    return pd.DataFrame(rows)


def _note(out: dict[str, Any], what: str) -> pd.DataFrame:
    return pd.DataFrame({"note": [f"reference profile: the authors' runs hold only their top-100 text-to-image "
                                  f"lists, not the scores {what} needs"]})


def chance_table(out: dict[str, Any]) -> pd.DataFrame:
    """Test R@1 of every variant against chance (1 / number of test images), text-to-image and image-to-text
    (each image's own query among all queries, main score kind)."""
    if out["summary"] is None:
        return _note(out, "this table")
    s = out["summary"]
    chance = s["chance_recall@1"]
    rows = [{"query set": qs, "variant": v, "text->image R@1": entry["metrics"]["recall@1"],
             "image->text R@1": s["image_to_text"][v][qs]["recall@1"],
             "image->text MRR": s["image_to_text"][v][qs]["mrr"], "chance": chance,
             "text->image x chance": entry["metrics"]["recall@1"] / chance}
            for qs, block in out["results"]["query_sets"].items() for v, entry in block["variants"].items()
            if v in s["image_to_text"]]
    return pd.DataFrame(rows).round(4)


def score_kinds_table(out: dict[str, Any], metrics: Sequence[str] = ("precision@1", "recall@5", "mrr")) -> pd.DataFrame:
    """The main score kind (the paper's) beside every other one the model has, per variant and query set."""
    if not out["kind_results"]:
        return _note(out, "other score kinds") if out["source"] == "reference" else \
            pd.DataFrame({"note": ["this model scores with one kind only in this profile"]})
    labels = {k["name"]: k["label"] for k in out["summary"]["score_kinds"]}
    main = out["summary"]["score_kinds"][0]["label"]
    rows = []
    for qs, block in out["results"]["query_sets"].items():
        for variant, entry in block["variants"].items():
            row = {"query set": qs, "variant": variant, **{f"{main} {m}": entry["metrics"][m] for m in metrics}}
            for kind, results in out["kind_results"].items():
                other = results["query_sets"][qs]["variants"][variant]["metrics"]
                row.update({f"{labels[kind]} {m}": other[m] for m in metrics})
            rows.append(row)
    return pd.DataFrame(rows).round(4)


def truncation_table(out: dict[str, Any]) -> pd.DataFrame:
    """How much of each caption source the model reads in training, and of each query set."""
    report = out["truncation"]
    if not report:
        return pd.DataFrame({"note": ["no truncation statistics: the model's tokenizer is not available offline"]})
    rows = [{"use": use, "source": name, **stats} for use in ("training", "queries")
            for name, stats in report[use].items()]
    return pd.DataFrame(rows).round(4)


def retrieval_examples(cfg, paths, model: str, variant: str, query_set: str | None = None, n: int = 3,
                       k: int = 5) -> list[dict[str, Any]]:
    """The same n random test queries for every variant, with their top-k images from the variant's run (of
    query_set; default: the run's first): [{query_id, query, hits: [{id, image, score, relevant}]}]
    (`report.figures.retrieval_examples` draws them)."""
    import random

    from artcap_lib.retrieval import runs
    from artcap_lib.retrieval.inputs import load_inputs
    inputs = load_inputs(cfg, paths)
    query_set = query_set or next(iter(inputs.queries))
    queries, painting = inputs.queries[query_set], inputs.query_paintings[query_set]
    run = runs.load_run(runs.run_path(paths.score_dir(model), variant, query_set))
    chosen = random.Random(cfg.seed).sample(sorted(run), min(n, len(run)))
    return [{"query_id": q, "query": queries[q],
             "hits": [{"id": d, "image": inputs.catalogue.images[d], "score": s,
                       "relevant": d == painting[q]} for d, s in list(run[q].items())[:k]]} for q in chosen]


def headlines(out: dict[str, Any]) -> list[str]:
    """One line per (variant, query set): R@1 and MRR (the command line's summary of a run)."""
    whose = "the authors' stored runs" if out["source"] == "reference" else "ours"
    lines = [f"{out['title']} ({whose}):"]
    for query_set, block in out["results"]["query_sets"].items():
        for variant, entry in block["variants"].items():
            m = entry["metrics"]
            lines.append(f"  {variant:20s} {query_set:8s} R@1 {m['recall@1']:.4f}  MRR {m['mrr']:.4f}")
    return lines
