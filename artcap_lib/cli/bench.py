"""`artcap bench ...`: speed measurements of the real pipeline (images/s, tokens/s), never timed tests.

Each benchmark prints its figures and, with --json PATH, writes them as JSON (scripts/gpu_check.sh gathers them)."""
from __future__ import annotations


def add_cli(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: captioning, metrics, training speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # each capability adds its benchmark below: _add_<what>(bsub)
    _add_retrieval(bsub)
    _add_metrics(bsub)
    _add_caption(bsub)
    _add_train(bsub)
    _add_decode(bsub)


def _add_retrieval(bsub) -> None:
    p = bsub.add_parser("retrieval", help="retrieval_metrics over a random score matrix: seconds and peak memory")
    p.add_argument("--queries", type=int, default=25_000, help="rows (e.g. 5 captions x 5k images, COCO-size)")
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--relevant", type=int, default=1, help="relevant items per query")
    p.add_argument("--json", default="", metavar="PATH")
    p.set_defaults(func=_bench_retrieval)


def _bench_retrieval(args) -> int:
    import time
    import tracemalloc

    import numpy as np

    from artcap_lib.files import write_json
    from artcap_lib.retrieval.metrics import retrieval_metrics

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((args.queries, args.items), dtype=np.float32)
    relevant = [set(rng.choice(args.items, size=args.relevant, replace=False).tolist()) for _ in range(args.queries)]
    tracemalloc.start()                      # numpy reports its buffers to tracemalloc: the metric's own peak
    start = time.perf_counter()
    retrieval_metrics(scores, relevant, depth=100)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {"benchmark": "retrieval_metrics", "queries": args.queries, "items": args.items,
           "relevant": args.relevant, "seconds": seconds, "peak_extra_mib": peak / 2**20,
           "matrix_mib": scores.nbytes / 2**20}
    print(f"retrieval_metrics {args.queries} x {args.items} ({args.relevant} relevant/query): {seconds:.2f} s, "
          f"peak {peak / 2**20:.0f} MiB beyond the {scores.nbytes / 2**20:.0f} MiB matrix")
    if args.json:
        write_json(args.json, out)
    return 0


def _add_metrics(bsub) -> None:
    p = bsub.add_parser("metrics", help="caption metrics on the authors' 2,173 train pairs: wall and CPU seconds")
    p.add_argument("--pairs", type=int, default=0, help="score only the first N pairs (0 = all)")
    p.add_argument("--bertscore-model", default="minilm", help="hub id, local dir or 'minilm'; 'none' to skip")
    p.add_argument("--json", default="", metavar="PATH")
    p.set_defaults(func=_bench_metrics)


def _bench_metrics(args) -> int:
    """Both backends without BERTScore/SPICE (target < 40 s on 2 cores, resources loaded inside the timing),
    then BERTScore through CaptionScorer's path vs one plain `bert_score.score` call (target <= 1.1x)."""
    import os
    import resource
    import time

    from artcap_lib import reference
    from artcap_lib.textmetrics.bertscore import BertScore
    from artcap_lib.textmetrics.scorer import CaptionScorer
    from artcap_lib.files import write_json

    def cpu_seconds():
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    rows = reference.experiment1_rows()[: args.pairs or None]
    captions = reference.llava_captions(["train"])
    ids = [r["id"] for r in rows]
    refs, cands = [r["True_caption"] for r in rows], [captions[i] for i in ids]
    out = {"pairs": len(ids), "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
    start, cpu = time.perf_counter(), cpu_seconds()
    with CaptionScorer(("paper", "coco"), bertscore_model=None) as scorer:
        result = scorer.score(ids, refs, cands)
    out["lexical_wall_s"] = round(time.perf_counter() - start, 2)   # includes WordNet and METEOR 1.5 loading
    out["lexical_cpu_s"] = round(cpu_seconds() - cpu, 2)           # this process + finished children
    out["lexical_parts_s"] = result.seconds
    print(f"paper (ROUGE, BLEU, METEOR) + coco (PTB, BLEU, METEOR 1.5, ROUGE-L, CIDEr-D) on {len(ids)} pairs: "
          f"{out['lexical_wall_s']} s wall, {out['lexical_cpu_s']} s CPU (target < 40 s wall on 2 free cores); "
          f"load average {out['load_average'][0]:.1f}")
    if args.bertscore_model.lower() != "none":
        import bert_score
        ours = BertScore(args.bertscore_model)   # resolves the alias; its load is timed below with the score
        model_path, layers = ours.settings.model_path, ours.settings.num_layers
        del ours
        start = time.perf_counter()
        bert_score.score(cands, refs, model_type=model_path, num_layers=layers, lang="en", batch_size=64)
        out["bertscore_plain_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        BertScore(args.bertscore_model).score(cands, refs)
        out["bertscore_ours_s"] = round(time.perf_counter() - start, 2)
        out["bertscore_ratio"] = round(out["bertscore_ours_s"] / out["bertscore_plain_s"], 3)
        print(f"BERTScore ({args.bertscore_model}): ours {out['bertscore_ours_s']} s vs plain bert_score.score "
              f"{out['bertscore_plain_s']} s = {out['bertscore_ratio']}x (target <= 1.1x)")
    if args.json:
        write_json(args.json, out)
    return 0


def _add_caption(bsub) -> None:
    p = bsub.add_parser("caption", help="captioning: images/s, tokens/s (prefill, decode), vs one-at-a-time generate")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", default=None, help="hub id or local directory (e.g. RUN/models/pocket-llava)")
    which.add_argument("--random-init", default=None, metavar="ARCH",
                       help="full-size architecture with random weights, e.g. llava-1.5-7b (random_models specs: "
                            "llava-1.5-7b@tiny, ...); default: a freshly built, untrained pocket LLaVA")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="default: float16 on CUDA, float32 on CPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-implementation", default=None, help='KV cache for generate, e.g. "static"')
    p.add_argument("--baseline", action="store_true",
                   help="also time the baselines in the same run: one image per generate call (the authors' loop) "
                   "and the decoder comparison of --decoders (plain batched and static-cache generate vs fast)")
    p.add_argument("--engine", default="generate", choices=["generate", "fast", "fast_compiled"],
                   help="decoder of the pipeline (fast_decode: static cache, CUDA graphs with fast_compiled)")
    p.add_argument("--decoders", action="store_true", help="also compare the decoders on the same images (plain "
                   "batched generate, static-cache generate, fast, fast_compiled: `artcap bench decode`)")
    p.add_argument("--models-dir", default="papermill_runs/bench/models", help="where random models are materialised")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--json", default="", metavar="PATH")
    p.set_defaults(func=_bench_caption)


def _bench_caption(args) -> int:
    import tempfile

    import torch

    from artcap_lib.bench.caption import benchmark_captioning, synthetic_paintings
    from artcap_lib.captioning.captioner import Captioner, Decoding
    from artcap_lib.runtime import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = args.dtype or ("float16" if device.startswith("cuda") else "float32")
    random_weights = args.model is None
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_init:
            from artcap_lib.standins.random_models import resolve_model
            model = resolve_model(f"random:{args.random_init}", args.models_dir, device=device)
        elif args.model:
            model = args.model
        else:                        # the pocket architecture, untrained: the CPU smoke benchmark
            import numpy as np

            from artcap_lib.data.demo import random_scene
            from artcap_lib.standins.pocket_llava import assistant_caption, build_pocket_llava
            rng = np.random.default_rng(0)
            net, processor = build_pocket_llava([assistant_caption(random_scene(rng)) for _ in range(200)])
            model = f"{tmp}/pocket-llava"
            net.save_pretrained(model)
            processor.save_pretrained(model)
        decoding = Decoding(max_new_tokens=args.max_new_tokens, cache_implementation=args.cache_implementation,
                            min_new_tokens=args.max_new_tokens if random_weights else None)
        captioner = Captioner.from_pretrained(model, dtype=dtype, device=device, decoding=decoding, engine=args.engine,
                                              model_name=args.model or args.random_init or "pocket-llava (untrained)")
        size = captioner.processor.image_processor.crop_size["height"]
        items = synthetic_paintings(tmp + "/images", args.images, size)
        result = benchmark_captioning(captioner, items, args.batch_size, baseline=args.baseline)
        if args.decoders or args.baseline:
            from artcap_lib.bench.decode import compare_decoders
            from artcap_lib.captioning.captioner import load_image
            result["decoders"] = compare_decoders(
                getattr(captioner.model, "_model", captioner.model), captioner.processor,
                [load_image(p) for _, p in items], args.batch_size, args.max_new_tokens,
                decoding.min_new_tokens, prompt=captioner.prompt)
    result = {"benchmark": "caption", "model": captioner.model_name, "device": device, "dtype": dtype, "engine": args.engine,
              "random_weights": random_weights, "threads": torch.get_num_threads(), **result}
    print(f"captioning {result['model']} on {device} ({dtype}), {result['images']} images, batch {args.batch_size}, "
          f"{result['new_tokens_per_image']:.0f} new tokens/image:")
    print(f"  batched pipeline: {result['images_per_second']:.2f} images/s, {result['tokens_per_second']:.1f} tokens/s "
          f"generated; prefill {result['prefill_tokens_per_second']:.0f} tokens/s "
          f"({result['prompt_tokens_per_image']:.0f} prompt tokens/image), decode "
          f"{result['decode_tokens_per_second']:.1f} tokens/s")
    if args.baseline:
        print(f"  one image per generate: {result['baseline_images_per_second']:.2f} images/s "
              f"-> batched is {result['speedup']:.1f}x")
    for key, value in result.get("decoders", {}).items():
        if key.startswith("ratio_"):
            print(f"  {key}: {value:.2f}x")
    _write_or_print(result, args.json, digits=3)
    return 0


# `artcap bench train --model M`: M -> artcap_lib module whose bench_train(args) returns the result dict
TRAIN_BENCHMARKS = {"longclip": "cli.longclip", "blip": "cli.blip"}


def _add_train(bsub) -> None:
    p = bsub.add_parser("train", help="fine-tuning throughput of a retrieval model (images/s, peak GPU memory)")
    p.add_argument("--model", required=True, choices=sorted(TRAIN_BENCHMARKS))
    p.add_argument("--arch", default="", help="longclip: a random: spec (default random:longclip-L, full-size with "
                   "random weights), pocket (the demo's, untrained), or a model directory / longclip-*.pt; blip: L (ViT-L, random "
                   "weights; default), pocket, or a model directory / hub id")
    p.add_argument("--tokenizer", default="", help="longclip with a longclip-*.pt: a CLIP tokenizer directory or hub id")
    p.add_argument("--batch-size", type=int, default=0, help="per step; 0 = the paper's (Long-CLIP 40, BLIP 16)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--tokens", type=int, default=0, help="caption length in tokens; 0 = the model's default "
                   "(Long-CLIP: 96, about a joined Artpedia caption)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--preset", default="paper", help="optimiser preset (Long-CLIP: paper | adamw)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--json", default="", metavar="PATH")
    p.set_defaults(func=_bench_train)


def _bench_train(args) -> int:
    import importlib

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = importlib.import_module(f"artcap_lib.{TRAIN_BENCHMARKS[args.model]}").bench_train(args)
    print(f"training {result['model']} ({result['source']}) on {result['device']}, {result['precision']}, batch "
          f"{result['batch_size']}: {result['images_per_second']:.2f} images/s, {result['seconds_per_step']:.3f} s/step"
          + (f", peak {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""))
    _write_or_print(result, args.json, digits=4)
    return 0


def _add_decode(bsub) -> None:
    p = bsub.add_parser("decode", help="captioning decoders side by side (plain generate, static-cache generate, "
                        "fast_decode eager / CUDA graphs): images/s, ratios, token agreement with plain generate")
    p.add_argument("--model", default="random:llava-1.5-7b@tiny",
                   help="hub id, local directory or random: spec (GPU: random:llava-1.5-7b)")
    p.add_argument("--images", type=int, default=24, help="the first batch is the warm-up, the rest are timed")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--min-new-tokens", type=int, default=0, help="force the answer length (0 = let it end)")
    p.add_argument("--configs", default="generate,generate_static,fast,fast_compiled",
                   help="comma-separated subset of generate,generate_static,fast,fast_compiled")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--models-dir", default="papermill_runs/bench/models", help="where random: models are written")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--json", default="", metavar="PATH")
    p.set_defaults(func=_bench_decode)


def _bench_decode(args) -> int:
    from artcap_lib.bench.decode import bench_decode
    return bench_decode(args)


def _write_or_print(result: dict, path: str, digits: int) -> None:
    """The full result as JSON into `path`, or, without one, a rounded one-line summary on stdout."""
    import json

    from artcap_lib.files import write_json
    if path:
        write_json(path, result)
    else:
        print(json.dumps({k: round(v, digits) if isinstance(v, float) else v for k, v in result.items()}))
