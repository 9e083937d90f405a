"""`artcap bench ...`: speed measurements of the real pipeline (images/s, tokens/s), never timed tests.

Each benchmark prints its figures and, with --json PATH, writes them as JSON (scripts/gpu_check.sh gathers them)."""
from __future__ import annotations

from artcap_lib.cli.options import add_profile_options, profile_from_args


def add_cli(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: captioning, metrics, training speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # each capability adds its benchmark below: _add_<what>(bsub)
    _add_retrieval(bsub)
    _add_metrics(bsub)
    _add_caption(bsub)
    _add_train(bsub)
    _add_decode(bsub)
    _add_report(bsub)


def _add_retrieval(bsub) -> None:
    p = bsub.add_parser("retrieval", help="retrieval_metrics over a random score matrix (or, with --dim, streamed top-k from "
                       "embeddings vs a plain matmul + topk): seconds and peak memory")
    p.add_argument("--queries", type=int, default=25_000, help="rows (e.g. 5 captions x 5k images, COCO-size)")
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--relevant", type=int, default=1, help="relevant items per query")
    p.add_argument("--dim", type=int, default=0, help="embeddings mode: streamed exact top-k + ranks from D-dim "
                   "embeddings (no score matrix) against a plain chunked matmul + torch.topk, each in its own process")
    p.add_argument("--threads", type=int, default=2, help="torch threads (embeddings mode)")
    p.add_argument("--budget-mib", type=int, default=0, help="chunk memory budget (embeddings mode; 0 = default)")
    p.add_argument("--json", default="", metavar="PATH")
    add_profile_options(p, "retrieval.run_depth", "seed")
    p.set_defaults(func=_bench_retrieval)


def _bench_retrieval_scale(args, cfg) -> int:
    from artcap_lib.bench.retrieval import benchmark_scale
    from artcap_lib.files import write_json

    def report(phase, r):
        if phase == "plain":
            print(f"  plain matmul + topk:     {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB", flush=True)
        elif phase == "streamed":
            print(f"  streamed top-k + ranks:  {r['topk_seconds']:8.2f} s\n"
                  f"  + metrics + run JSON:    {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB   "
                  f"(run {r['run_mib']:.0f} MiB written in {r['write_run_seconds']:.1f} s; "
                  f"{r['beyond_depth']:.1%} of ranks beyond depth)", flush=True)
        else:
            print(f"  evaluate the run:        {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB   "
                  f"(read {r['load_run_seconds']:.1f} s, per-query metrics {r['per_query_seconds']:.1f} s, "
                  f"bootstrap + paired tests {r['statistics_seconds']:.1f} s)", flush=True)

    from artcap_lib.retrieval.topk import DEFAULT_BUDGET, chunk_rows
    budget = (args.budget_mib << 20) or DEFAULT_BUDGET
    print(f"{args.queries} x {args.items}, dim {args.dim}, depth {cfg.retrieval.run_depth}, {args.threads} threads, "
          f"{chunk_rows(args.items, budget)} queries a chunk (a dense matrix: "
          f"{args.queries * args.items * 4 / 2**30:.1f} GiB)", flush=True)
    out = benchmark_scale(args.queries, args.items, args.dim, cfg.retrieval.run_depth, cfg.seed, args.threads,
                          budget, report)
    print(f"  ratio to plain: top-k + ranks {out['ratio_topk']:.2f}x, with metrics and the run file "
          f"{out['ratio']:.2f}x; metrics {out['streamed']['metrics']}")
    if args.json:
        write_json(args.json, out)
    return 0


def _bench_retrieval(args) -> int:
    import time
    import tracemalloc

    import numpy as np

    from artcap_lib.files import write_json
    from artcap_lib.retrieval.metrics import retrieval_metrics

    cfg, _ = profile_from_args(args)
    if args.dim:
        return _bench_retrieval_scale(args, cfg)
    rng = np.random.default_rng(cfg.seed)
    scores = rng.standard_normal((args.queries, args.items), dtype=np.float32)
    relevant = [set(rng.choice(args.items, size=args.relevant, replace=False).tolist()) for _ in range(args.queries)]
    tracemalloc.start()                      # numpy reports its buffers to tracemalloc: the metric's own peak
    start = time.perf_counter()
    retrieval_metrics(scores, relevant, depth=cfg.retrieval.run_depth)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {"benchmark": "retrieval_metrics", "queries": args.queries, "items": args.items,
           "relevant": args.relevant, "depth": cfg.retrieval.run_depth, "seconds": seconds, "peak_extra_mib": peak / 2**20,
           "matrix_mib": scores.nbytes / 2**20}
    print(f"retrieval_metrics {args.queries} x {args.items} ({args.relevant} relevant/query): {seconds:.2f} s, "
          f"peak {peak / 2**20:.0f} MiB beyond the {scores.nbytes / 2**20:.0f} MiB matrix")
    if args.json:
        write_json(args.json, out)
    return 0


def _add_metrics(bsub) -> None:
    p = bsub.add_parser("metrics", help="caption metrics on the authors' 2,173 train pairs: wall and CPU seconds; "
                        "--synthetic N: N synthetic pairs, ours vs the plain libraries")
    p.add_argument("--pairs", type=int, default=0, help="score only the first N pairs (0 = all)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="instead: N synthetic pairs (word-bigram chains over the authors' captions), both backends "
                   "without BERTScore, ours vs the plain library calls: CPU and wall seconds, peak RSS, ratio, and "
                   "whether every score is identical")
    p.add_argument("--no-plain", action="store_true", help="with --synthetic: ours only")
    p.add_argument("--seed", type=int, default=0, help="with --synthetic: which pairs")
    p.add_argument("--json", default="", metavar="PATH")
    add_profile_options(p, "metrics.bertscore_model")       # 'none': no BERTScore part
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

    if args.synthetic:
        return _bench_metrics_synthetic(args)
    bertscore_model = profile_from_args(args)[0].metrics.bertscore_model
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
    if bertscore_model.lower() != "none":
        import bert_score
        ours = BertScore(bertscore_model)   # resolves the alias; its load is timed below with the score
        model_path, layers = ours.settings.model_path, ours.settings.num_layers
        del ours
        start = time.perf_counter()
        bert_score.score(cands, refs, model_type=model_path, num_layers=layers, lang="en", batch_size=64)
        out["bertscore_plain_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        BertScore(bertscore_model).score(cands, refs)
        out["bertscore_ours_s"] = round(time.perf_counter() - start, 2)
        out["bertscore_ratio"] = round(out["bertscore_ours_s"] / out["bertscore_plain_s"], 3)
        print(f"BERTScore ({bertscore_model}): ours {out['bertscore_ours_s']} s vs plain bert_score.score "
              f"{out['bertscore_plain_s']} s = {out['bertscore_ratio']}x (target <= 1.1x)")
    if args.json:
        write_json(args.json, out)
    return 0


def _bench_metrics_synthetic(args) -> int:
    from artcap_lib.bench.metrics_scale import bench_synthetic
    result = bench_synthetic(args.synthetic, args.seed, plain=not args.no_plain)
    for side in ("ours", "plain"):
        if side in result:
            r = result[side]
            print(f"{side:5s} {result['pairs']} pairs: {r['cpu_s']} s CPU (with Java and workers), {r['wall_s']} s wall, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB (largest helper {r['helper_peak_rss_mib']:.0f} MiB)")
    if "cpu_ratio" in result:
        print(f"ours / plain: {result['cpu_ratio']}x CPU, {result['wall_ratio']}x wall; every score identical: "
              f"{result['identical']}; load average {result['load_average_before'][0]:.1f} -> "
              f"{result['load_average_after'][0]:.1f} (BERTScore off in synthetic mode)")
    _write_or_print(result, args.json, digits=4)
    return 0


# the captioning fields a captioning benchmark runs with (the rest of the section does not apply)
CAPTIONER = ("captioning.model", "captioning.prompt", "captioning.max_new_tokens", "captioning.dtype",
             "captioning.batch_size", "captioning.cache_implementation", "captioning.threads", "device", "run_dir")


def _add_caption(bsub) -> None:
    p = bsub.add_parser("caption", help="captioning: images/s, tokens/s (prefill, decode), vs one-at-a-time generate",
                        description="The profile's captioner over synthetic paintings. --model: a hub id, a directory, "
                        "random:<arch> (full-size, random weights, under the run's models/; e.g. random:llava-1.5-7b "
                        "or random:llava-1.5-7b@tiny) or pocket-llava (the run's, else a fresh untrained one).")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--baseline", action="store_true",
                   help="also time the baselines in the same run: one image per generate call (the authors' loop) "
                   "and the decoder comparison of --decoders (plain batched and static-cache generate vs fast)")
    p.add_argument("--decoders", action="store_true", help="also compare the decoders on the same images (plain "
                   "batched generate, static-cache generate, fast, fast_compiled: `artcap bench decode`)")
    p.add_argument("--json", default="", metavar="PATH")
    add_profile_options(p, *CAPTIONER, "captioning.engine")
    p.set_defaults(func=_bench_caption)


def _bench_caption(args) -> int:
    from artcap_lib.bench.caption import bench_caption
    cfg, paths = profile_from_args(args)
    result = bench_caption(cfg, paths, args.images, baseline=args.baseline, decoders=args.decoders)
    print(f"captioning {result['model']} on {result['device']} ({result['dtype']}), {result['images']} images, batch "
          f"{result['batch_size']}, {result['new_tokens_per_image']:.0f} new tokens/image:")
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


def _add_train(bsub) -> None:
    from artcap_lib.retrieval import registry     # every registered retrieval model; bench.train times its step
    p = bsub.add_parser("train", help="fine-tuning throughput of a retrieval model (images/s, peak GPU memory)")
    p.add_argument("--model", required=True, choices=registry.names())
    p.add_argument("--arch", default="", help="what to train: L (default; the paper's architecture with random "
                   "weights: Long-CLIP-L, BLIP ViT-L), pocket (the demo's, untrained), a random: spec, or a model "
                   "directory / hub id / longclip-*.pt")
    p.add_argument("--tokenizer", default="", help="longclip with a longclip-*.pt: a CLIP tokenizer directory or hub id")
    p.add_argument("--batch-size", type=int, default=0, help="per step; 0 = the paper's (Long-CLIP 40, BLIP 16)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--tokens", type=int, default=0, help="caption length in tokens; 0 = the model's default "
                   "(Long-CLIP: 96, about a joined Artpedia caption)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--preset", default="stored",
                   help="Long-CLIP's recipe: stored (the paper profile's) | committed | adamw")
    p.add_argument("--queue-size", type=int, default=2048, help="BLIP: feature queue length")
    p.add_argument("--no-grad-checkpointing", action="store_true", help="BLIP: without ViT activation checkpointing")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--json", default="", metavar="PATH")
    # the device, and the run directory whose models/ holds materialised random: models (bench: shared by runs)
    add_profile_options(p, "device", "run_dir", default_profile="bench")
    p.set_defaults(func=_bench_train)


def _bench_train(args) -> int:
    import torch

    from artcap_lib.bench.train import benchmark_training
    from artcap_lib.retrieval.protocol import BenchOptions

    cfg, paths = profile_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = BenchOptions(tokenizer=args.tokenizer, preset=args.preset, queue_size=args.queue_size,
                           grad_checkpointing=not args.no_grad_checkpointing, models_dir=paths.models)
    result = benchmark_training(args.model, args.arch, batch_size=args.batch_size, steps=args.steps,
                                warmup=args.warmup, tokens=args.tokens, device=cfg.device, precision=args.precision,
                                options=options)
    print(f"training {result['model']} ({result['source']}) on {result['device']}, {result['precision']}, batch "
          f"{result['batch_size']}: {result['images_per_second']:.2f} images/s, {result['seconds_per_step']:.3f} s/step"
          + (f", peak {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""))
    _write_or_print(result, args.json, digits=4)
    return 0


def _add_decode(bsub) -> None:
    configs = "generate,generate_static,fast,fast_compiled"     # = bench.decode.CONFIGS (torch not imported here)
    p = bsub.add_parser("decode", help="captioning decoders side by side (plain generate, static-cache generate, "
                        "fast_decode eager / CUDA graphs): images/s, ratios, token agreement with plain generate",
                        description="The profile's captioner (e.g. --model random:llava-1.5-7b on a GPU, "
                        "random:llava-1.5-7b@tiny on a CPU) decoding the same prepared batches each way.")
    p.add_argument("--images", type=int, default=24, help="the first batch is the warm-up, the rest are timed")
    p.add_argument("--min-new-tokens", type=int, default=0, help="force the answer length (0 = let it end)")
    p.add_argument("--configs", default=configs, help=f"comma-separated subset of {configs}")
    p.add_argument("--json", default="", metavar="PATH")
    add_profile_options(p, *CAPTIONER)
    p.set_defaults(func=_bench_decode)


def _bench_decode(args) -> int:
    import json
    import sys

    from artcap_lib.bench.decode import bench_decode
    from artcap_lib.files import write_json
    cfg, paths = profile_from_args(args)
    try:
        result = bench_decode(cfg, paths, args.images, args.min_new_tokens,
                              [c for c in args.configs.split(",") if c])
    except ValueError as err:                 # an unknown --configs name, found before any model is loaded
        print(f"artcap bench decode: {err}", file=sys.stderr)
        return 2
    for key in sorted(k for k in result if k.startswith("ratio_")):
        print(f"{key}: {result[key]:.2f}")
    if args.json:
        write_json(args.json, result)
    else:
        print(json.dumps(result["configs"], indent=1))
    return 0


def _write_or_print(result: dict, path: str, digits: int) -> None:
    """The full result as JSON into `path`, or, without one, a rounded one-line summary on stdout."""
    import json

    from artcap_lib.files import write_json
    if path:
        write_json(path, result)
    else:
        print(json.dumps({k: round(v, digits) if isinstance(v, float) else v for k, v in result.items()}))


def _add_report(bsub) -> None:
    p = bsub.add_parser("report", help="a run of N paintings x N queries through what notebooks 04-06 do with its "
                        "files (summarise the runs, tables and figures, the explorer and its page): seconds and "
                        "peak memory",
                        description="Writes a synthetic run directory of N test paintings (images, captions, "
                        "Experiment 1 tables, streamed retrieval runs of BLIP and Long-CLIP) under --out, then "
                        "times each phase in its own process. The figures and the page stay there to look at.")
    p.add_argument("--paintings", type=int, default=10_000, help="test paintings = queries (one caption each)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the run and its figures are written")
    p.add_argument("--no-images", action="store_true", help="paintings without image files")
    p.add_argument("--phases", default="build,summarise,report,explore", help="comma-separated, in this order")
    p.add_argument("--json", default="", metavar="PATH")
    add_profile_options(p, "seed", default_profile="collection")
    p.set_defaults(func=_bench_report)


def _bench_report(args) -> int:
    from pathlib import Path

    from artcap_lib.bench.report_scale import benchmark
    from artcap_lib.cli.options import profile_overrides
    from artcap_lib.files import write_json
    cfg, _ = profile_from_args(args)          # a bad profile or --set fails here, before any phase starts

    def report(phase, r):
        extra = {"build": lambda: ", ".join(f"{k} {v:.1f} s" for k, v in r["parts"].items()),
                 "summarise": lambda: "both models' results.json",
                 "report": lambda: f"{len(r['figure_kib'])} figure files, largest "
                                   f"{max(r['figure_kib'].values(), default=0):.0f} KiB",
                 "explore": lambda: f"load {r['load_seconds']:.1f} s, {r['rows']} rows, page {r['page_mib']:.1f} MiB"}
        print(f"  {phase:<10} {r['seconds']:8.1f} s   peak RSS {r['peak_rss_mib']:6.0f} MiB   ({extra[phase]()})",
              flush=True)

    print(f"{args.paintings} paintings x {args.paintings} queries -> {args.out}", flush=True)
    out = benchmark(Path(args.out).resolve(), args.paintings, cfg.seed, not args.no_images,
                    [p for p in args.phases.split(",") if p], report, args.profile, profile_overrides(args))
    if args.json:
        write_json(args.json, out)
    return 0
