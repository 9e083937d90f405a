"""Decoders side by side on the same prepared batches: images/s, and token agreement with plain `generate`.

`artcap bench decode` (and `artcap bench caption --baseline` through `compare_decoders`) time, in one process on
one device, the configurations the GPU-speed issue compares:

    generate          plain batched `generate` (dynamic cache): the baseline everyone has
    generate_static   `generate(cache_implementation="static")`: on CUDA transformers compiles the decode step
                      itself (its auto-compile), i.e. the best plain-transformers configuration
    fast              fast_decode.GreedyDecoder, eager
    fast_compiled     fast_decode.GreedyDecoder with the decode step captured by torch.compile / CUDA graphs (CUDA)

Every configuration decodes the same processor outputs (prepared once, pinned, outside the timing: the image
pipeline is the captioner's prefetch thread and is timed by `artcap bench caption`). The first batch of each
configuration is a warm-up (compilation, graph capture, allocator) and is timed separately as `first_call_s`.
Token agreement: per image, the share of positions of the plain-`generate` answer (up to its end token) that the
configuration reproduced; `identical` is the share of images whose answer is the same token for token.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from artcap_lib.bench.subjects import bench_images, bench_model, sync_device
from artcap_lib.captioning.captioner import answer_ids
from artcap_lib.captioning.prompts import model_inputs

CONFIGS = ("generate", "generate_static", "fast", "fast_compiled")


def token_agreement(reference: Sequence[list[int]], other: Sequence[list[int]]) -> dict[str, float]:
    """Share of reference tokens reproduced at the same position, and share of identical answers."""
    same = total = identical = 0
    for ref, got in zip(reference, other):
        total += len(ref)
        same += sum(a == b for a, b in zip(ref, got))
        identical += ref == got
    return {"token_agreement": same / total if total else 1.0, "identical": identical / max(len(reference), 1)}


def _generate_fn(model, name: str, decoding: dict[str, Any]):
    from artcap_lib.captioning.fast_decode import GreedyDecoder
    if name == "generate":
        return lambda **inputs: model.generate(**inputs, **decoding)
    if name == "generate_static":
        return lambda **inputs: model.generate(**inputs, **decoding, cache_implementation="static")
    decoder = GreedyDecoder(model, compile=name == "fast_compiled")
    return lambda **inputs: decoder(**inputs, **decoding)


def compare_decoders(model, processor, images: Sequence, batch_size: int, max_new_tokens: int,
                     min_new_tokens: int | None = None, prompt: str = "Caption this image",
                     configs: Sequence[str] = CONFIGS, progress=print) -> dict[str, Any]:
    """Time each configuration over `images` in batches of `batch_size` (see the module docstring)."""
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise ValueError(f"unknown decoder configuration(s) {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    batches = []
    for i in range(0, len(images), batch_size):
        chunk = list(images[i:i + batch_size])
        # the captioner's own inputs (chat template tokenised once, one image list per prompt): right for every family
        inputs = dict(model_inputs(processor, chunk, [prompt] * len(chunk)))
        inputs = {k: v.to(dtype) if torch.is_floating_point(v) else v for k, v in inputs.items()}
        batches.append({k: v.pin_memory() for k, v in inputs.items()} if device.type == "cuda" else inputs)
    decoding = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    if min_new_tokens:
        decoding["min_new_tokens"] = min_new_tokens
    results: dict[str, Any] = {}
    answers: dict[str, list[list[int]]] = {}
    for name in configs:
        if name == "fast_compiled" and device.type != "cuda":
            results[name] = {"skipped": "CUDA graphs need a CUDA device"}
            continue
        run = _generate_fn(model, name, decoding)
        rows: list[list[int]] = []
        first = seconds = 0.0
        timed = new_tokens = 0
        with torch.inference_mode():
            for b, batch in enumerate(batches):
                inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                sync_device(device)
                t0 = time.perf_counter()
                out = run(**inputs)
                sync_device(device)
                elapsed = time.perf_counter() - t0
                got = answer_ids(out.cpu(), inputs["input_ids"].shape[1], model.generation_config.eos_token_id)
                rows.extend(got)
                if b == 0 and len(batches) > 1:
                    first = elapsed          # warm-up batch: compilation and capture, reported apart
                    continue
                seconds += elapsed
                timed += len(got)
                new_tokens += sum(map(len, got))
        answers[name] = rows
        results[name] = {"images_per_second": timed / seconds if seconds else 0.0,
                         "new_tokens_per_second": new_tokens / seconds if seconds else 0.0,
                         "seconds": seconds, "first_call_s": first, "timed_images": timed}
        progress(f"{name}: {results[name]['images_per_second']:.2f} images/s "
                 f"(first batch {first:.1f} s, {timed} images timed)")
    reference = answers.get("generate")
    for name, rows in answers.items():
        if reference is not None:
            results[name].update(token_agreement(reference, rows))
    summary: dict[str, Any] = {"benchmark": "decoders", "device": str(device), "dtype": str(dtype).replace("torch.", ""),
                               "images": len(images), "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                               "min_new_tokens": min_new_tokens,
                               "prompt_tokens": int(batches[0]["input_ids"].shape[1]), "configs": results}
    rate = {n: r.get("images_per_second") for n, r in results.items() if r.get("images_per_second")}
    for fast in ("fast", "fast_compiled"):
        for base in ("generate", "generate_static"):
            if fast in rate and base in rate:
                summary[f"ratio_{fast}_vs_{base}"] = rate[fast] / rate[base]
    return summary


def load_for_bench(path: str, dtype: str, device: str, attn_implementation: str = "sdpa"):
    """(model, processor) of a checkpoint or local directory, in `dtype` on `device`, with SDPA attention."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from artcap_lib.captioning.captioner import DTYPES
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn_implementation)
    return model.to(device).eval(), processor


# ---------------------------------------------------------------------------------------------- artcap bench decode
def bench_decode(cfg, paths, images: int, min_new_tokens: int = 0, configs: Sequence[str] = CONFIGS) -> dict[str, Any]:
    """`artcap bench decode`: compare_decoders on the profile's captioner (captioning.model, dtype, batch_size,
    max_new_tokens, threads; cfg.device) over `images` synthetic paintings; min_new_tokens 0 = let answers end."""
    import tempfile

    from artcap_lib.captioning.captioner import resolve_dtype
    from artcap_lib.provenance import environment
    from artcap_lib.runtime import resolve_device, use_threads
    unknown = set(configs) - set(CONFIGS)
    if unknown:                                               # before a full-size model is materialised
        raise ValueError(f"unknown decoder configuration(s) {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    c = cfg.captioning
    use_threads(c.threads)
    device = resolve_device(cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        location, _ = bench_model(cfg, paths, tmp)
        model, processor = load_for_bench(location, resolve_dtype(c.dtype, device), device)
    size = processor.image_processor.crop_size["height"]
    result = compare_decoders(model, processor, bench_images(images, size, cfg.seed), c.batch_size, c.max_new_tokens,
                              min_new_tokens or None, prompt=c.prompt, configs=configs)
    result.update(model=c.model, threads=torch.get_num_threads(), environment=environment())
    return result
