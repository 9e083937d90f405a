"""`artcap bench ...`: speed measurements of the real pipeline (images/s, tokens/s), never timed tests.

Each benchmark prints its figures and, with --json PATH, writes them as JSON (scripts/gpu_check.sh gathers them)."""
from __future__ import annotations


def add_cli(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: captioning, metrics, training speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    # each capability adds its benchmark below: _add_<what>(bsub)
    _add_retrieval(bsub)


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
