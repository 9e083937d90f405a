"""`artcap bench ...`: speed measurements of the real pipeline (images/s, tokens/s), never timed tests.

Each benchmark prints its figures and, with --json PATH, writes them as JSON (scripts/gpu_check.sh gathers them)."""
from __future__ import annotations


def add_cli(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: captioning, metrics, training speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # each capability adds its benchmark below: _add_<what>(bsub)
    _add_retrieval(bsub)
    _add_metrics(bsub)


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

    from .files import write_json
    from .retrieval_eval import retrieval_metrics

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

    from . import reference
    from .caption_metrics import BertScore, CaptionScorer
    from .files import write_json

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
