"""Scale of a whole run's outputs (`artcap bench report --paintings N`): what notebooks 04-06 do with the files of
a run of N test paintings, each painting's human caption its query, every query ranked over all N paintings.

A run directory is written in the files steps 01-05 write (`data/artworks.json` with small JPEG images, the
captions JSONL, Experiment 1's per-image tables and summary, each retrieval variant's streamed-form files, the
training histories), with synthetic numbers: each query's rank of its own painting drawn log-normally (a shared
per-query difficulty, the fine-tunes better than the baseline), its top 100 filled around it. Then three phases,
each in its own spawned process so its peak memory (RSS high-water) is its own:

    summarise   runs.summarise_model of both models: what steps 04/05 end with (runs read back, per-query metrics,
                bootstrap CIs, paired randomisation tests)
    report      notebook 06's step: both tables, every figure, results.json, the README
    explore     the explorer's data (`explore.load`) and the one-page HTML explorer
"""
from __future__ import annotations

import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

MODELS = ("blip", "longclip")
VARIANTS = {"baseline": 6.5, "human": 4.0, "synthetic": 4.3}      # mean log-rank at 100k paintings
DEPTH = 100
MONITORS = {"blip": ("val_r_mean", "max"), "longclip": ("val_loss", "min")}     # what each model's loop keeps by
WORDS = ("a painting of the virgin and child with saints in a landscape portrait man woman red blue golden light "
         "river trees sky clouds figures standing seated holding book angel horse city church dark background "
         "dressed robe mountain sea ship flowers table fruit still life hands looking left right").split()


def build(root: Path, n: int, seed: int = 0, images: bool = True, profile_name: str = "collection",
          overrides: dict | None = None) -> dict[str, float]:
    """Write the run directory root/run (figures go to root/figures); return the seconds each part took."""
    import numpy as np
    from PIL import Image

    from artcap_lib.files import write_json

    rng = np.random.default_rng(seed)
    cfg, paths = profile(root, profile_name, overrides)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ids = [str(i) for i in range(1, n + 1)]
    lengths = rng.integers(12, 40, size=(n, 2))
    human = [" ".join(rng.choice(WORDS, lengths[k, 0])) + "." for k in range(n)]
    synthetic = [" ".join(rng.choice(WORDS, lengths[k, 1])) + "." for k in range(n)]
    data = paths.artworks.parent
    (data / "images").mkdir(parents=True, exist_ok=True)
    artworks = {}
    colours = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    for k, art_id in enumerate(ids):
        entry = {"title": f"Painting {art_id}", "img_url": f"https://example.org/{art_id}.jpg", "year": 1500,
                 "visual_sentences": [human[k]], "contextual_sentences": [], "split": "test"}
        if images:          # 48-pixel blocks of colour: what the thumbnails are made from, cheap to write
            Image.fromarray(colours[k]).resize((48, 48), Image.NEAREST).save(data / "images" / f"{art_id}.jpg")
            entry["file_path"] = f"images/{art_id}.jpg"
        artworks[art_id] = entry
    write_json(paths.artworks, artworks)
    seconds["artworks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    caption_file = paths.caption_file(cfg.captioning.name)
    caption_file.parent.mkdir(parents=True, exist_ok=True)
    with open(caption_file, "w", encoding="utf-8") as fh:
        for art_id, text in zip(ids, synthetic):
            fh.write(json.dumps({"id": art_id, "caption": text, "model": cfg.captioning.model,
                                 "prompt": "Describe the painting.", "decoding": "greedy", "new_tokens": 40,
                                 "seconds": 0.01}) + "\n")
    _experiment1(cfg, paths, ids, human, synthetic, rng)
    seconds["experiment1_files"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _experiment2(cfg, paths, ids, rng)
    seconds["experiment2_files"] = time.perf_counter() - t0
    return seconds


def profile(root: Path, name: str = "collection", overrides: dict | None = None):
    """The profile (default: collection, what a user's own 100k collection runs) pointed at root (run/, figures/);
    its retrieval.bootstrap and .randomisation are what the summarise phase uses. Its first query set names the
    runs."""
    from artcap_lib.config import RunPaths, load_profile
    cfg = load_profile(name, {**(overrides or {}), "run_dir": str(root / "run"), "figures_dir": str(root / "figures"),
                              "data.path": str(root / "run" / "data"), "retrieval.models": list(MODELS)})
    return cfg, RunPaths.for_profile(cfg)


def _experiment1(cfg, paths, ids, human, synthetic, rng) -> None:
    """per_image / control tables of every metric column (scores in each metric's usual range) and summary.json
    through the step's own `summarise` (its bootstrap at this size)."""
    import pandas as pd

    from artcap_lib.files import write_json
    from artcap_lib.textmetrics import coco, scorer
    from artcap_lib.textmetrics.step import SCHEMA_VERSION, output_dir, summarise
    columns = [c for c in scorer.PAPER_COLUMNS + coco.COCO_COLUMNS if c != "coco_spice"]
    index = pd.Index(ids, name="id")
    scale = {c: (3.0 if "cider" in c else 1.0) for c in columns}
    per_image = pd.DataFrame({c: rng.beta(2, 6, len(ids)) * scale[c] for c in columns}, index=index)
    control = pd.DataFrame({c: rng.beta(1.5, 9, len(ids)) * scale[c] for c in columns}, index=index)
    result = scorer.ScoreResult(per_image, control, {}, None, {"status": "skipped", "reason": "bench"}, "bench")
    summary = {"schema_version": SCHEMA_VERSION, "profile": cfg.profile, "split": "test",
               "captioner": cfg.captioning.name, "model": cfg.captioning.model, "prompt": "Describe the painting.",
               "n_missing_captions": 0, "backends": list(cfg.metrics.backends),
               **summarise(result, human, synthetic, cfg.metrics.bootstrap, cfg.seed), "parity": None}
    out = output_dir(cfg, paths)
    out.mkdir(parents=True, exist_ok=True)
    per_image.to_parquet(paths.metrics_per_image(out))
    control.to_parquet(paths.metrics_control(out))
    write_json(paths.metrics_summary(out), summary)


def _experiment2(cfg, paths, ids, rng) -> None:
    """Each model's variants in the streamed form (`runs.write_variant` of a `topk.TopK`) and their histories."""
    import numpy as np

    from artcap_lib.files import write_json
    from artcap_lib.retrieval import runs
    n = len(ids)
    shift = np.log(n / 100_000)                   # ranks grow with the collection
    qrels = runs.identity_qrels(ids)
    difficulty = rng.normal(0, 1.5, n)
    for model in MODELS:
        for variant, mean in VARIANTS.items():
            log_rank = mean + shift + difficulty + rng.normal(0, 0.8, n)
            ranks = np.clip(np.rint(np.exp(log_rank)), 1, n).astype(np.int64)
            runs.write_variant(paths.score_dir(model), variant, cfg.retrieval.query_sets[0], _top(ranks, n, rng), ids, ids, qrels,
                               depth=DEPTH)
            write_json(paths.history(model, variant), history(*MONITORS[model]))


def _top(ranks, n: int, rng) -> "Any":
    """A TopK whose query q ranks its own painting (index q) at ranks[q]: the other places a window of paintings
    that excludes q, the scores falling."""
    import numpy as np

    from artcap_lib.retrieval import topk
    depth = min(DEPTH, n)
    q = np.arange(n)
    start = (q + 1 + rng.integers(0, max(n - depth, 1), n)) % n
    indices = (start[:, None] + np.arange(depth)[None, :]) % n
    inside = ranks <= depth
    indices[q[inside], ranks[inside] - 1] = q[inside]
    scores = (0.9 - 0.002 * np.arange(depth))[None, :] - 0.1 * rng.random((n, 1))
    return topk.TopK(indices.astype(np.int64), scores.astype(np.float32), ranks)


def history(monitor: str, mode: str) -> dict:
    """A history.json of `training.fit`'s schema: two epochs of two steps, the first kept (the tests' run
    directory uses it too)."""
    values = [0.5, 0.4, 0.45] if mode == "min" else [0.2, 0.5, 0.4]
    return {"monitor": monitor, "mode": mode, "steps_per_epoch": 2, "best_epoch": 1, "best": values[1],
            "finished": True, "stopped_early": True,
            "steps": [{"epoch": e, "step": s, "lr": 1e-4, "loss": 2.0 - 0.2 * s, "grad_norm": 1.0}
                      for e, s in ((1, 1), (1, 2), (2, 3), (2, 4))],
            "epochs": [{"epoch": 0, monitor: values[0], "lr": 1e-4},
                       {"epoch": 1, "train_loss": 1.7, monitor: values[1], "lr": 1e-4, "seconds": 1.0},
                       {"epoch": 2, "train_loss": 1.3, monitor: values[2], "lr": 5e-5, "seconds": 1.0}]}


def _phase(args: tuple) -> dict[str, Any]:
    phase, root, n, seed, images, profile_name, overrides = args
    root = Path(root)
    out: dict[str, Any] = {"phase": phase}
    start = time.perf_counter()
    if phase == "build":
        out["parts"] = build(root, n, seed, images, profile_name, overrides)
    else:
        cfg, paths = profile(root, profile_name, overrides)
        if phase == "summarise":
            from artcap_lib.retrieval import runs
            for model in MODELS:
                runs.summarise_model(paths.score_dir(model), cfg.retrieval.bootstrap, cfg.retrieval.randomisation,
                                     cfg.seed, DEPTH, model)
        elif phase == "report":
            from artcap_lib.report import step
            made = step.run(cfg, paths)
            out["figures"] = {name: [str(p) for p in files] for name, files in made.figures.items()}
            out["figure_kib"] = {Path(p).name: Path(p).stat().st_size / 1024
                                 for files in made.figures.values() for p in files}
        else:
            from artcap_lib.report import explore, explore_html
            t0 = time.perf_counter()
            view = explore.load(cfg, paths)
            out["load_seconds"] = time.perf_counter() - t0
            page = explore_html.write_page(view, paths, paths.figures / explore.PAGE_NAME)
            out["page"] = str(page)
            out["page_mib"] = page.stat().st_size / 2**20
            out["rows"] = len(view.table)
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux
    return out


PHASES = ("build", "summarise", "report", "explore")


def benchmark(root: Path, n: int, seed: int = 0, images: bool = True, phases=PHASES, report=None,
              profile_name: str = "collection", overrides: dict | None = None) -> dict[str, Any]:
    """Each phase in its own spawned process, in order; report(phase, figures) as each ends. profile_name and
    overrides: the profile the run is read with (`profile`)."""
    ctx = multiprocessing.get_context("spawn")
    result: dict[str, Any] = {"benchmark": "report_scale", "paintings": n, "queries": n, "seed": seed,
                              "images": images, "run_dir": str(root / "run"), "figures_dir": str(root / "figures"),
                              "peak": "RSS high-water (ru_maxrss)"}
    for phase in phases:
        with ctx.Pool(1) as pool:
            result[phase] = pool.apply(_phase, ((phase, str(root), n, seed, images, profile_name, overrides),))
        if report:
            report(phase, result[phase])
    return result
