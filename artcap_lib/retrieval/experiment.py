"""Experiment 2 (notebooks 04 and 05): one runner for every retrieval model of `registry.MODELS`.

    baseline   the starting model, not fine-tuned (paper: the published checkpoint; demo: the model's pocket
               stand-in, pre-trained here on the disjoint pre-training pool)
    human      fine-tuned on the human captions (visual sentences joined) of the train split, selected on val
    synthetic  fine-tuned on the captioner's captions (captions/<first captioner>.jsonl), validated on them too,
               as the authors did
    synthetic-<name>   the same for every further captioner of `captioning.captioners` (the zoo), beside human

`run` trains what is missing (a finished fine-tune returns at once; a killed one resumes), then one process
(rank 0 under torchrun; the others wait at a barrier) scores every variant x query set with every score kind of
the model, writes the runs (`runs.write_variant`), their summaries with CIs and paired tests
(`runs.summarise_model`), image-to-text metrics of the main kind, the truncation statistics and summary.json.
In the reference profile (retrieval.source "reference") nothing is trained: the authors' stored runs are
evaluated (`runs.reference_experiment2`). Every file's place is a `RunPaths` method.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from artcap_lib.config import primary_captioner
from artcap_lib.files import read_json, write_json
from artcap_lib.model_names import locate
from artcap_lib.progress import say, stage
from artcap_lib.retrieval import registry, runs
from artcap_lib.retrieval.inputs import Inputs, load_inputs
from artcap_lib.retrieval.protocol import FineTuneDirs, RetrievalModel

VARIANTS = runs.VARIANTS                      # baseline, human, synthetic: the paper's three
SOURCE = runs.SOURCE                          # results we computed (the authors' stored runs: "reference")
POCKET_HISTORY = "pocket pre-training"        # the name of the pocket pre-training's curve
Progress = Callable[[str], None] | None


def _quiet(_message: str) -> None:
    pass


def variants_of(cfg) -> list[str]:
    """The run's variants: baseline, human, then one fine-tuned on each captioner's captions."""
    from artcap_lib.config import variant_captioners
    return ["baseline", "human", *variant_captioners(cfg)]


def fine_tuned_variants(cfg) -> list[str]:
    return variants_of(cfg)[1:]


def run(cfg, paths, model: str, variants: Sequence[str] | None = None,
        progress: Progress = say) -> dict[str, Any]:
    """Notebooks 04/05's one call: Experiment 2 for `model` (a registry name), from our models
    (retrieval.source "model") or the authors' stored runs ("reference"); variants default to `variants_of(cfg)`.
    The run's inputs are resolved here, once, and handed down. Returns the `outcome` dict."""
    if cfg.retrieval.source not in ("model", "reference"):
        raise ValueError(f"retrieval.source must be model or reference, got {cfg.retrieval.source!r}")
    inputs = load_inputs(cfg, paths)
    if cfg.retrieval.source == "reference":
        return reference(cfg, paths, model, inputs)
    return train_and_score(cfg, paths, model, inputs, variants, progress)


# ---------------------------------------------------------------------------------------------- our models
def _start(cfg, model: str):
    from artcap_lib import runtime
    from artcap_lib.retrieval import distributed
    adapter = registry.get(model)
    runtime.use_threads(adapter.settings(cfg).threads)
    return adapter, distributed.setup_distributed(cfg.device)


def train_and_score(cfg, paths, model: str, inputs: Inputs, variants: Sequence[str] | None = None,
                    progress: Progress = say) -> dict[str, Any]:
    """Fine-tune (where needed) and score the variants; write the files of the module docstring."""
    from artcap_lib.retrieval import distributed
    known = variants_of(cfg)
    variants = known if variants is None else variants
    unknown = sorted(set(variants) - set(known))
    if unknown or not variants:
        raise ValueError(f"unknown variant(s) {unknown or 'none given'} (known: {', '.join(known)})")
    variants = [v for v in known if v in variants]
    t_start = time.perf_counter()
    adapter, dist = _start(cfg, model)
    say = progress if (progress and dist.is_main) else _quiet
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    base = baseline_location(cfg, paths, adapter, inputs, dist, say)
    seconds["baseline"] = time.perf_counter() - t0
    records = {}
    for variant in variants:
        if variant != "baseline":
            t0 = time.perf_counter()
            records[variant] = _fine_tune(cfg, paths, adapter, base, variant, inputs, dist, say)
            seconds[f"train_{variant}"] = time.perf_counter() - t0
    # exactly one process scores and writes; the others wait until the files are there
    if dist.is_main:
        _score_and_write(cfg, paths, adapter, base, variants, inputs, records, dist.device, say, seconds, t_start)
    distributed.barrier(dist)
    return outcome(paths, model)


def baseline_location(cfg, paths, adapter: RetrievalModel, inputs: Inputs, dist, say: Progress = _quiet) -> str:
    """Where the baseline is: the run's pocket model (pre-trained here first if it is not there yet), or what
    `model_names.locate` makes of the profile's value (a random: spec is materialised once, by rank 0)."""
    from artcap_lib.retrieval import distributed
    spec = adapter.settings(cfg).model
    if adapter.pocket is None or spec != adapter.pocket:
        if not dist.is_main:
            distributed.barrier(dist)
        location = locate(spec, paths, cfg.device)
        if dist.is_main:
            distributed.barrier(dist)
        return location
    out = paths.pocket_model(spec)
    if not out.is_dir():                 # it appears complete (copied, then renamed) or not at all
        pool = inputs.pretraining_pool
        say(f"pre-training {spec} on the pre-training pool ({len(pool.train_ids)} artworks)")
        dirs = FineTuneDirs(paths.pocket_pretraining_model(spec), paths.pocket_training_dir(spec),
                            paths.pocket_pretraining(spec))
        with stage(f"pre-training {spec}"):
            adapter.pretrain_pocket(cfg, pool, dirs, dist, say)
        distributed.barrier(dist)
        if dist.is_main:
            _copy_dir(dirs.model, out)
        distributed.barrier(dist)
    return str(out)


def pockets_to_pretrain(cfg, paths, notebook: str) -> list[str]:
    """The models that `notebook` ("04", "05") runs whose baseline is a pocket model this run has not pre-trained
    yet: what `pretrain` would do, found from the profile alone (no model code imported)."""
    if cfg.retrieval.source != "model":
        return []
    from artcap_lib.model_names import POCKET_MODELS
    return [name for name in cfg.retrieval.models
            if (entry := registry.entry(name)).notebook == notebook and entry.settings is not None
            and (spec := getattr(cfg, name).model) in POCKET_MODELS and not paths.pocket_model(spec).is_dir()]


def pretrain(cfg, paths, models: Sequence[str], progress: Progress = say) -> dict[str, str]:
    """`artcap retrieval pretrain`: each model's baseline located, its pocket model pre-trained first where the run
    has none. It reads only step 01's pre-training pool, so `artcap reproduce` runs it beside step 02 (a demo's
    captioner trains on one thread, the other core would idle) and notebooks 04/05 find the baselines done."""
    inputs = load_inputs(cfg, paths)
    out = {}
    for model in models:
        adapter, dist = _start(cfg, model)
        out[model] = baseline_location(cfg, paths, adapter, inputs, dist, progress if dist.is_main else _quiet)
    return out


def _copy_dir(source: Path, target: Path) -> None:
    # copied beside the target, then renamed: the target is either absent or complete
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.rename(target)


def fine_tune(cfg, paths, model: str, variant: str, progress: Progress = say) -> dict[str, Any]:
    """One fine-tune (`artcap blip finetune`): the baseline (pre-trained first in the demo), then the variant."""
    if variant not in fine_tuned_variants(cfg):
        raise ValueError(f"variant {variant!r} is not fine-tuned in this profile (fine-tuned: "
                         f"{', '.join(fine_tuned_variants(cfg))})")
    adapter, dist = _start(cfg, model)
    say = progress if (progress and dist.is_main) else _quiet
    inputs = load_inputs(cfg, paths)
    base = baseline_location(cfg, paths, adapter, inputs, dist, say)
    return _fine_tune(cfg, paths, adapter, base, variant, inputs, dist, say)


def _fine_tune(cfg, paths, adapter: RetrievalModel, base: str, variant: str, inputs: Inputs, dist,
               say: Progress) -> dict[str, Any]:
    """Fine-tune one variant unless it is finished; returns its record (fine_tune.json)."""
    from artcap_lib.retrieval import checkpoint, distributed
    name = adapter.name
    dirs = FineTuneDirs(paths.variant_model(name, variant), paths.training_dir(name, variant))
    record_path = paths.fine_tune_record(name, variant)
    if record_path.is_file() and dirs.model.is_dir():     # the record is written after the model is saved
        return read_json(record_path)
    say(f"fine-tuning {adapter.title} on {variant} captions")
    with stage(f"fine-tuning {adapter.title} on {variant}"):
        extras = adapter.fine_tune(cfg, base, inputs.training_data(variant), dirs, dist, say)
    distributed.barrier(dist)             # rank 0 has saved the model and the history: every process may read them
    history = read_json(paths.history(name, variant))
    record = {"variant": variant, "base": base, "world_size": dist.world_size, "monitor": history["monitor"],
              "best_epoch": history["best_epoch"], "best": history["best"],
              "epochs_run": max(e["epoch"] for e in history["epochs"]), "stopped_early": history["stopped_early"],
              "history": str(paths.history(name, variant).relative_to(paths.root)), **extras}
    if dist.is_main:
        write_json(record_path, record)
        # the optimiser-state checkpoint and the best epoch's weights only serve a resume (the finished model is in
        # dirs.model): at BLIP-L they are 7.1 + 3.6 GB a variant; a profile may keep them (<model>.keep_checkpoint)
        if not getattr(adapter.settings(cfg), "keep_checkpoint", True):
            for name in (checkpoint.CHECKPOINT, checkpoint.BEST_MODEL):
                (dirs.training / name).unlink(missing_ok=True)
    return record


def _score_and_write(cfg, paths, adapter: RetrievalModel, base: str, variants: Sequence[str], inputs: Inputs,
                     records: dict, device, say, seconds: dict, t_start: float) -> None:
    from artcap_lib.retrieval.topk import retrieval_metrics    # a matrix, or a dual encoder's features (streamed when large)
    name, kinds, r = adapter.name, list(adapter.score_kinds(cfg)), cfg.retrieval
    main = kinds[0].name
    test_ids = inputs.ids["test"]
    texts = {qs: list(q.values()) for qs, q in inputs.queries.items()}
    images = list(inputs.images(test_ids).values())
    # each query's one relevant painting; image-to-text: an image's relevant texts are its queries (one each in
    # Artpedia, every human caption in a collection with several)
    position = {i: n for n, i in enumerate(test_ids)}
    qrels, own = {}, {}
    for qs, paintings in inputs.query_paintings.items():
        identity = all(q == p for q, p in paintings.items())
        qrels[qs] = None if identity else {q: {p: 1} for q, p in paintings.items()}
        own[qs] = [set() for _ in test_ids]
        for n, p in enumerate(paintings.values()):
            own[qs][position[p]].add(n)
    test_metrics: dict[str, dict] = {k.name: {} for k in kinds}
    image_to_text: dict[str, dict] = {}
    tokenizer = None
    t0 = time.perf_counter()
    for variant in variants:
        say(f"scoring {variant}")
        loaded = adapter.load(cfg, base, None if variant == "baseline" else paths.variant_model(name, variant), device)
        tokenizer = tokenizer or adapter.tokenizer(cfg, loaded)
        for qs, by_kind in adapter.score(cfg, loaded, texts, images, device).items():
            for kind in kinds:
                folder = paths.score_dir(name, None if kind.name == main else kind.name)
                test_metrics[kind.name].setdefault(variant, {})[qs] = runs.write_variant(
                    folder, variant, qs, by_kind[kind.name], list(inputs.queries[qs]), test_ids, qrels[qs],
                    depth=r.run_depth)
            image_to_text.setdefault(variant, {})[qs] = retrieval_metrics(by_kind[main].T, own[qs])
        del loaded
    seconds["score"] = time.perf_counter() - t0
    settings = dict(bootstrap=r.bootstrap, randomisation=r.randomisation, seed=cfg.seed, depth=r.run_depth)
    results = {}
    for kind in kinds:
        folder = paths.score_dir(name, None if kind.name == main else kind.name)
        runs.summarise_model(folder, model=name if kind.name == main else f"{name} ({kind.label})", **settings)
        results[kind.name] = str(paths.retrieval_results(name, None if kind.name == main else kind.name)
                                 .relative_to(paths.root))
    sources = {"human": {i: inputs.human[i] for i in inputs.ids["train"]}}
    for captioner, caption_file in inputs.caption_files.items():
        if caption_file.is_file():
            sources[captioner] = {i: inputs.synthetic(captioner)[i] for i in inputs.ids["train"]}
    write_json(paths.truncation(name), adapter.truncation(cfg, tokenizer, sources, inputs.queries))
    summary = {"model": name, "title": adapter.title, "spec": adapter.settings(cfg).model, "baseline": base,
               "score_kinds": [{"name": k.name, "label": k.label} for k in kinds],
               "n": {split: len(ids) for split, ids in inputs.ids.items()},
               "query_sets": sorted(inputs.queries), "missing_query_sets": inputs.missing_query_sets,
               "n_queries": {qs: len(q) for qs, q in inputs.queries.items()},
               "chance_recall@1": 1 / len(test_ids), "variants": list(variants),
               "test_metrics": test_metrics, "image_to_text": image_to_text, "fine_tunes": records,
               "results": results, "truncation": str(paths.truncation(name).relative_to(paths.root)),
               "seconds": {**seconds, "total": time.perf_counter() - t_start}}
    write_json(paths.retrieval_summary(name), summary)
    say(f"{adapter.title} experiment done in {summary['seconds']['total']:.0f} s")


def outcome(paths, model: str) -> dict[str, Any]:
    """What notebooks display, read back from the files of a finished run."""
    summary = read_json(paths.retrieval_summary(model))
    main, *others = [k["name"] for k in summary["score_kinds"]]
    return {"model": model, "title": summary["title"], "source": SOURCE, "summary": summary,
            "results": read_json(paths.retrieval_results(model)),
            "kind_results": {k: read_json(paths.retrieval_results(model, k)) for k in others},
            "truncation": read_json(paths.truncation(model)), "histories": histories(paths, model)}


def histories(paths, model: str) -> dict[str, dict]:
    """{run: history.json} of the fine-tunes found (and, in the demo, of the pocket pre-training), for curves."""
    found = {}
    pocket = registry.get(model).pocket
    if pocket and paths.pocket_history(pocket).is_file():
        found[POCKET_HISTORY] = read_json(paths.pocket_history(pocket))
    for history in sorted(paths.retrieval_model(model).glob("*/training/history.json")):
        found[history.parent.parent.name] = read_json(history)      # every fine-tuned variant, by name
    return found


# ---------------------------------------------------------------------------------------------- reference profile
def reference(cfg, paths, model: str, inputs: Inputs) -> dict[str, Any]:
    """No training: the authors' stored runs of `model` evaluated by runs.reference_experiment2, plus the
    truncation statistics of the published captions where the model's tokenizer is available offline."""
    adapter = registry.get(model)
    if model not in runs.REFERENCE_MODELS:
        raise ValueError(f"the authors stored no {adapter.title} runs: the reference profile has none to evaluate")
    r = cfg.retrieval
    results = runs.reference_experiment2(paths, bootstrap=r.bootstrap, randomisation=r.randomisation,
                                         seed=cfg.seed)["models"][model]
    truncation = None
    tokenizer = adapter.offline_tokenizer(cfg)
    if tokenizer is not None:
        ids = inputs.ids["train"]             # this profile's artworks.json holds the train split only
        sources = {"human": {i: inputs.human[i] for i in ids}}
        first = primary_captioner(cfg)
        if inputs.caption_files[first].is_file():
            sources[first] = {i: inputs.synthetic(first)[i] for i in ids}
        queries = {}
        if "llama" in r.query_sets:
            from artcap_lib import reference as authors
            queries["llama"] = authors.llama_queries()
        truncation = adapter.truncation(cfg, tokenizer, sources, queries)
        write_json(paths.truncation(model), truncation)
    return {"model": model, "title": adapter.title, "source": "reference", "summary": None, "results": results,
            "kind_results": {}, "truncation": truncation, "histories": {}}
