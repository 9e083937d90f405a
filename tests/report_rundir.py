"""A small run directory for notebook 06's tests: step 01 for real (a tiny demo collection with images), and the
files of steps 02-05 in their documented schemas (captions JSONL, metrics/summary.json + parquet tables,
retrieval results written by `runs.write_variant`/`runs.summarise_model`, training history.json files), with
numbers chosen so the tests know what the tables must say.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from artcap_lib.bench.report_scale import history
from artcap_lib.textmetrics import coco, scorer
from artcap_lib.data import step as data_step
from artcap_lib.retrieval import runs
from artcap_lib.files import read_json, write_json
from artcap_lib.config import RunPaths
from artcap_lib.config import load_profile

SIZES = {"data.demo_train": 12, "data.demo_val": 4, "data.demo_test": 6, "data.demo_pretrain": 0}
STEPS = ("data", "captions", "metrics", "retrieval", "histories")


SECOND = "second"          # the further captioner of a two-captioner run (make_run_dir(second=True))
SECOND_SHIFT = 0.125       # its Experiment 1 means are the first's plus this


def make_run_dir(root: Path, steps=STEPS, second: bool = False) -> dict:
    """Build the run directory under root (run/ and figures/) with the given steps; return the overrides that
    point the demo profile at it. second: a run of two captioners (pocket-llava, then SECOND), whose files are
    laid out as steps 02-05 lay out a further captioner's."""
    overrides = {"run_dir": str(root / "run"), "figures_dir": str(root / "figures"), **SIZES}
    if second:
        overrides["captioning.captioners"] = [{"name": "pocket-llava", "model": "pocket-llava"},
                                              {"name": SECOND, "model": "pocket-llava", "prompt": "Describe"}]
    cfg = load_profile("demo", overrides)
    paths = RunPaths.for_profile(cfg)
    data_step.run(cfg, paths)
    artworks = read_json(paths.artworks)
    ids = {split: [i for i, a in artworks.items() if a["split"] == split] for split in ("train", "val", "test")}
    if "captions" in steps:
        _captions(paths.caption_file(cfg.captioning.name), list(artworks))
        if second:
            _captions(paths.caption_file(SECOND), list(artworks))
    if "metrics" in steps:
        _metrics(paths.metrics, ids["test"], cfg.captioning.name)
        if second:
            _metrics(paths.captioner_metrics(SECOND, primary=False), ids["test"], SECOND, SECOND_SHIFT)
    if "retrieval" in steps:
        for model in ("blip", "longclip"):
            _retrieval(paths.score_dir(model), ids["test"], second)
    if "histories" in steps:
        for model, monitor, mode in (("blip", "val_r_mean", "max"), ("longclip", "val_loss", "min")):
            for variant in ("human", "synthetic") + ((f"synthetic-{SECOND}",) if second else ()):
                write_json(paths.history(model, variant), history(monitor, mode))
    return overrides


def _captions(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"id": i, "caption": f"The image features a painting number {i} with a red circle.",
              "model": "pocket-llava", "prompt": "Caption this image", "decoding": "greedy", "new_tokens": 12,
              "seconds": 0.01} for i in ids]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


METRIC_MEANS = {"bertscore_f": 0.8125, "meteor": 0.25, "rougeL_f": 0.3125, "bleu4": 0.0625, "coco_cider": 0.5}


def _metrics(out: Path, ids: list[str], captioner: str, shift: float = 0.0) -> None:
    """per_image.parquet with a known mean per metric, the control at half of it, and summary.json."""
    rng = np.random.default_rng(0)
    columns = [c for c in scorer.PAPER_COLUMNS + coco.COCO_COLUMNS if c != "coco_spice"]
    per_image, control = {}, {}
    for column in columns:
        mean = METRIC_MEANS.get(column, 0.375) + shift
        noise = rng.normal(0, 0.05, len(ids))
        per_image[column] = mean + noise - noise.mean()          # mean exactly `mean`
        control[column] = per_image[column] / 2
    index = pd.Index(ids, name="id")
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(per_image, index=index).to_parquet(out / "per_image.parquet")
    pd.DataFrame(control, index=index).to_parquet(out / "control_per_image.parquet")
    metrics = {c: {"backend": "coco" if c.startswith("coco_") else "paper", "mean": float(np.mean(per_image[c])),
                   "ci95": [float(np.mean(per_image[c])) - 0.0625, float(np.mean(per_image[c])) + 0.0625],
                   "control_mean": float(np.mean(control[c])),
                   "corpus": 0.4 if c in ("coco_bleu4", "coco_meteor") else None} for c in columns}
    write_json(out / "summary.json", {
        "schema_version": 1, "profile": "demo", "split": "test", "captioner": captioner, "n_pairs": len(ids),
        "n_missing_captions": 0, "backends": ["paper", "coco"], "metrics": metrics,
        "bertscore": {"model": "minilm", "label": "all-MiniLM-L6-v2", "num_layers": 6, "is_paper_model": False,
                      "hash": "minilm_L6_no-idf"},
        "spice": {"status": "skipped", "reason": "CoreNLP 3.6.0 jars not found", "how_to_enable": "..."},
        "meteor_punkt": "untrained", "lengths": {}, "control": {"method": "derangement", "seed": 0},
        "bootstrap": {"method": "percentile", "resamples": 100, "seed": 0, "level": 0.95}, "seconds": {},
        "parity": None})


def _retrieval(model_dir: Path, test_ids: list[str], second: bool = False) -> None:
    """Scores where fine-tuning on human captions ranks every query's own image first, the baseline ranks it
    last, and synthetic is in between (every other query first); the second captioner's fine-tune (second=True)
    ranks two of every three queries' images first."""
    n = len(test_ids)
    qrels = runs.identity_qrels(test_ids)
    diagonal_first = np.eye(n) + 0.01 * np.arange(n)[None, :]
    diagonal_last = -np.eye(n) + 0.01 * np.arange(n)[None, :]
    halfway = np.where(np.arange(n)[:, None] % 2 == 0, diagonal_first, diagonal_last)
    two_thirds = np.where(np.arange(n)[:, None] % 3 != 0, diagonal_first, diagonal_last)
    variants = [("baseline", diagonal_last), ("human", diagonal_first), ("synthetic", halfway)]
    if second:
        variants.append((f"synthetic-{SECOND}", two_thirds))
    for variant, scores in variants:
        runs.write_variant(model_dir, variant, "artpedia", scores, test_ids, test_ids, qrels, depth=100)
    runs.summarise_model(model_dir, bootstrap=50, randomisation=200, seed=0, depth=100)
