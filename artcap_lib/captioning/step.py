"""Step 02 of a run (notebook 02): produce captions/<name>.jsonl for each captioner of the run, by running it or by
importing the authors' captions.

- captioning.source = model: each captioner of `config.captioners(cfg)` (a hub id, a local directory, a pocket name
  such as "pocket-llava" = the run's pocket model, trained here first if the run has none, a random:<arch> or
  replica:<hub id> spec) captions every image of the run through `captioning.caption_collection`, one after the
  other (each is freed before the next loads); figures go to captions/<name>_run.json.
- captioning.source = reference: the authors' published LLaVA-1.5-7B captions are written into the same file,
  same line format, so later steps cannot tell (and need not care) where captions came from.
On the demo profile, captions/<name>_accuracy.json says how often a caption names the main object's kind and
colour right (the painter's scenes are ground truth).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from artcap_lib.captioning.store import (CaptionFileError, CaptionStore, read_captions, read_failures, read_records,
                                        writer_lock, writers)
from artcap_lib.config import CaptionerSpec, captioners
from artcap_lib.data.artpedia import read_catalogue
from artcap_lib.files import read_json, write_json
from artcap_lib.model_names import POCKET_CAPTIONERS, locate, pocket


def ensure_pocket_captioner(cfg, paths, name: str) -> dict[str, Any]:
    """Train and save the run's pocket captioner `name` unless a finished one is there; returns its training
    report."""
    out = paths.pocket_model(name)
    report = out / "training.json"            # written after the weights: its presence means the model is whole
    if report.is_file():
        return {**read_json(report), "reused": True}
    c = cfg.captioning
    return pocket(name).train(paths.pretrain_pool, paths.scenes, out, steps=c.pocket_steps,
                                  batch_size=c.pocket_batch_size, lr=c.pocket_lr, image_size=c.pocket_image_size,
                                  prompt=c.prompt, seed=cfg.seed)


def import_reference_captions(paths, name: str) -> dict[str, Any]:
    """Write the authors' published LLaVA captions into captions/<name>.jsonl (idempotent, duplicate-free)."""
    from artcap_lib import reference
    source = f"jcgohr/artwork-caption-gen@{reference.COMMIT}"
    caption_file = paths.caption_file(name)
    if caption_file.is_file():
        # the store keeps the first caption of an id: imported lines beside a model's would mix two captioners
        ours = sum(1 for r in read_records(caption_file) if r.get("source") != source)
        if ours:
            raise ValueError(f"{caption_file}: {ours} caption(s) were written by a captioner run, not imported from "
                             f"the authors; give the imported captions another name (--set captioning.name=...) "
                             f"or move that file away")
    captions = reference.llava_captions()
    decoding = {"max_new_tokens": 200, "do_sample": False, "num_beams": 1}      # the authors' call
    store = CaptionStore(caption_file)
    added = store.append({"id": art_id, "caption": text, "model": "llava-hf/llava-1.5-7b-hf",
                          "prompt": "Caption this image", "decoding": decoding, "new_tokens": None, "seconds": None,
                          "source": source}
                         for art_id, text in captions.items())
    return {"source": "reference", "imported": added, "captions": len(store.captioned),
            "commit": reference.COMMIT}


def captioner_spec(cfg, name: str | None = None) -> CaptionerSpec:
    """The run's captioner `name` (None: the first), every field filled in."""
    specs = captioners(cfg)
    if name is None:
        return specs[0]
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no captioner {name!r} in profile {cfg.profile} (has: {', '.join(s.name for s in specs)})")


def caption_artworks(cfg, paths, artworks, out, splits=None, limit: int | None = None, retry_failed: bool = False,
                     progress: bool = True, spec: CaptionerSpec | None = None) -> dict[str, Any]:
    """Caption the artworks of `artworks` (an artworks.json or its `artpedia.Catalogue`) into the caption file `out` with one captioner of the
    profile (`spec`, default the first) and the section's shared settings (dtype, batch size, decoding, engine) on
    cfg.device; a pocket captioner is trained first if the run has none. Resumes whatever `out` holds; under
    torchrun each process takes its share. Returns the run's figures."""
    from artcap_lib.runtime import distributed_rank
    # one writer per caption file, refused before any model loads (under torchrun rank 0 writes `out`, the
    # other ranks their own shards)
    writer = distributed_rank()[0] == 0
    with writer_lock(out) if writer else contextlib.nullcontext():
        spec = spec or captioner_spec(cfg)
        if writer:
            CaptionStore(out)      # a caption file with a bad line fails here, not once the model has loaded
            _refuse_other_captioners(out, spec)
        return _caption_artworks(cfg, paths, artworks, out, splits, limit, retry_failed, progress, spec)


def _refuse_other_captioners(out, spec: CaptionerSpec) -> None:
    """A caption file holds one captioner's captions: resuming into another model's (or prompt's, or imported) file
    would skip every id it has and pass its captions off as this model's."""
    others = {w: n for w, n in writers(out).items() if w != (spec.model, spec.prompt, None)}
    if others:
        (model, prompt, source), n = max(others.items(), key=lambda item: item[1])
        by = f"imported from {source}" if source else f"written by model {model!r} with prompt {prompt!r}"
        raise CaptionFileError(f"{out}: {sum(others.values())} record(s) {by}, not by this captioner ({spec.model!r}, "
                               f"prompt {spec.prompt!r}); one file holds one captioner's captions: caption into "
                               f"another file (--out, or --set captioning.name=...) or move that one away")


def _caption_artworks(cfg, paths, artworks, out, splits, limit, retry_failed, progress, spec) -> dict[str, Any]:
    from artcap_lib.captioning.captioner import (Captioner, Decoding, caption_collection, collection_items,
                                                 resolve_dtype)
    from artcap_lib.runtime import process_device, resolve_device, use_threads
    c = cfg.captioning
    use_threads(c.threads)
    device = process_device(resolve_device(cfg.device))
    dtype = resolve_dtype(c.dtype, device)
    items = collection_items(artworks, splits, limit)     # a bad collection fails before any model is loaded
    training = ensure_pocket_captioner(cfg, paths, spec.model) if spec.model in POCKET_CAPTIONERS else None
    captioner = Captioner.from_pretrained(
        locate(spec.model, paths, device), dtype=dtype, device=device, prompt=spec.prompt, engine=c.engine,
        answer_marker=spec.answer_marker, model_name=spec.model,
        decoding=Decoding(max_new_tokens=c.max_new_tokens, cache_implementation=c.cache_implementation or None))
    summary = {"source": "model", "captioner": spec.name, "model": spec.model, "prompt": spec.prompt,
               "device": device, "dtype": dtype, "engine": c.engine,
               **caption_collection(captioner, items, out, c.batch_size, retry_failed=retry_failed,
                                    progress=progress)}
    if training is not None:
        summary["pocket_training"] = {k: training[k] for k in ("steps", "train_seconds", "parameters", "reused")
                                      if k in training}
    return summary


def run(cfg, paths, progress: bool = True, retry_failed: bool = False,
                   only: str | None = None) -> dict[str, dict[str, Any]]:
    """Step 02: captions for every artwork of the run from every captioner (or the one named `only`), by the
    configured source; writes captions/<name>_run.json per captioner. Returns {captioner: its figures}."""
    import gc
    import time
    c = cfg.captioning
    if c.source not in ("model", "reference"):
        raise ValueError(f"captioning.source must be 'model' or 'reference', not {c.source!r}")
    specs = [captioner_spec(cfg, only)] if only else captioners(cfg)
    # the collection is read once, for every captioner
    artworks = read_catalogue(paths.artworks) if c.source == "model" else None
    summaries = {}
    for spec in specs:
        start = time.perf_counter()
        if c.source == "reference":
            summary = import_reference_captions(paths, spec.name)
        else:
            summary = caption_artworks(cfg, paths, artworks, paths.caption_file(spec.name),
                                       retry_failed=retry_failed, progress=progress, spec=spec)
            gc.collect()                       # the captioner's weights go before the next one loads
        summary["step_seconds"] = time.perf_counter() - start
        if summary.get("rank", 0) == 0:        # under torchrun, one process writes the run's figures
            write_json(paths.captions / f"{spec.name}_run.json", summary)
        summaries[spec.name] = summary
    return summaries


def main_object_accuracy(cfg, paths, split: str = "test", name: str | None = None) -> dict[str, Any]:
    """Demo only: share of `split` captions of captioner `name` (default: the first) naming the main object's kind
    and colour; writes captions/<name>_accuracy.json."""
    from artcap_lib.data.artpedia import by_split, load_artworks
    from artcap_lib.data.demo import main_object_accuracy as score
    spec = captioner_spec(cfg, name)
    ids = set(by_split(load_artworks(paths.artworks), split))
    captions = {i: t for i, t in read_captions(paths.caption_file(spec.name)).items() if i in ids}
    result = {"split": split, "captioner": spec.name, "model": spec.model,
              **score(captions, json.loads(Path(paths.scenes).read_text(encoding="utf-8")))}
    write_json(paths.captions / f"{spec.name}_accuracy.json", result)
    return result


def caption_table(cfg, paths, name: str | None = None):
    """One row per artwork: split, human caption, captioner `name`'s (default: the first) caption (or failure),
    lengths in words."""
    import pandas as pd

    from artcap_lib.data.artpedia import human_caption, image_path, load_artworks
    artworks = load_artworks(paths.artworks, require_urls=cfg.data.source != "reference")
    caption_file = paths.caption_file(captioner_spec(cfg, name).name)
    synthetic, failures = read_captions(caption_file), read_failures(caption_file)
    rows = []
    for art_id, entry in artworks.items():
        human = human_caption(entry)
        rows.append({"id": art_id, "split": entry["split"], "image": image_path(paths.artworks, entry),
                     "human": human, "synthetic": synthetic.get(art_id), "failure": failures.get(art_id),
                     "human_words": len(human.split()),
                     "synthetic_words": len(synthetic[art_id].split()) if art_id in synthetic else None})
    return pd.DataFrame(rows)


def length_summary(table):
    """Caption length in words (human vs synthetic): count, mean, quartiles, max."""
    stats = table[["human_words", "synthetic_words"]].describe().T
    stats.index = ["human", "synthetic"]
    return stats.round(1)


def records_frame(paths, name: str):
    """The caption file as a DataFrame (one row per line), e.g. for tokens and seconds per image."""
    import pandas as pd
    return pd.DataFrame(read_records(paths.caption_file(name)))
