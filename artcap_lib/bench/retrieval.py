"""Scale of Experiment 2's scoring (`artcap bench retrieval --dim D`): exact top-k and ranks streamed from
embeddings (`retrieval.topk`) against a plain chunked matrix product + torch.topk over the same data.

A third phase times what summarise_model then does with the run (read it back, per-query metrics, bootstrap
CIs and paired tests against a second system).

Synthetic unit-norm embeddings: item j random, query q = its planted item (q mod items) plus noise, so most
relevant items land in the top 100 and some beyond it (where the rank has to be counted). Each phase runs in a
fresh spawned process, so its peak memory (RSS high-water, getrusage ru_maxrss: the embeddings included) is its
own and the two phases do not lift each other's.
"""
from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

NOISE = 5.0          # query = planted item + NOISE * unit noise / sqrt(dim): cosine ~0.2 to its item, so at 100k
                     # items many relevant ranks fall beyond 100 (where they must be counted)


def embeddings(queries: int, items: int, dim: int, seed: int):
    """(query embeddings, item embeddings, planted item of each query), unit norm, float32."""
    import torch
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(items, dim, generator=g), dim=1)
    planted = torch.arange(queries) % items
    q = x[planted] + NOISE * torch.randn(queries, dim, generator=g) / dim ** 0.5
    return torch.nn.functional.normalize(q, dim=1), x, planted.numpy()


def _evaluate(run_file: Path, queries: int, seed: int) -> dict[str, Any]:
    """summarise_model's work on one query set of two systems: the run read back, per-query metrics, bootstrap
    CIs (1000) and paired tests (10,000 randomisations) against the same values shuffled over queries."""
    import numpy as np

    from artcap_lib.retrieval import runs
    out: dict[str, Any] = {"phase": "evaluate"}
    t0 = time.perf_counter()
    run = runs.load_run(run_file)
    out["load_run_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_query = runs.per_query_run_metrics(run, runs.identity_qrels(str(i) for i in range(queries)))
    out["per_query_seconds"] = time.perf_counter() - t0
    del run
    rng = np.random.default_rng(seed)
    other = {m: rng.permutation(v) for m, v in per_query.items()}
    t0 = time.perf_counter()
    runs.evaluate_per_query({"streamed": per_query, "shuffled": other}, queries, 1000, 10_000, seed)
    out["statistics_seconds"] = time.perf_counter() - t0
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out


def _phase(args: tuple) -> dict[str, Any]:
    phase, queries, items, dim, depth, seed, threads, budget, folder = args
    import numpy as np
    import torch

    from artcap_lib.retrieval import metrics, runs, topk
    torch.set_num_threads(threads)
    if phase == "evaluate":
        out = _evaluate(Path(folder) / "run.json", queries, seed)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out
    q, x, planted = embeddings(queries, items, dim, seed)
    out: dict[str, Any] = {"phase": phase}
    start = time.perf_counter()
    if phase == "plain":
        # the floor: chunked matrix product and torch.topk, nothing else (same chunks as the streamed path)
        rows = topk.chunk_rows(items, budget)
        xt = x.T.contiguous()
        for s in range(0, queries, rows):
            torch.topk(q[s:s + rows] @ xt, min(depth, items), dim=1)
    else:
        top = topk.stream_topk(q, x, [{int(p)} for p in planted], depth=depth, budget=budget)
        out["topk_seconds"] = time.perf_counter() - start
        summary = metrics.summarise_ranks(metrics.metrics_from_ranks(top.ranks, depth=depth))
        t0 = time.perf_counter()
        ids = [str(i) for i in range(max(queries, items))]
        runs.write_topk_run(Path(folder) / "run.json", top, ids[:queries], ids[:items])
        out["write_run_seconds"] = time.perf_counter() - t0
        out["run_mib"] = (Path(folder) / "run.json").stat().st_size / 2**20
        out["metrics"] = summary
        out["beyond_depth"] = float(np.mean(top.ranks > depth))
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux
    return out


def benchmark_scale(queries: int, items: int, dim: int, depth: int = 100, seed: int = 0, threads: int = 2,
                    budget: int | None = None, report=None) -> dict[str, Any]:
    """The phases (plain, streamed, evaluate), each in its own process; the ratio streamed / plain of their
    seconds. report(phase, figures) is called as each phase ends."""
    from artcap_lib.retrieval import topk
    budget = budget or topk.DEFAULT_BUDGET
    ctx = multiprocessing.get_context("spawn")
    result: dict[str, Any] = {"benchmark": "retrieval_scale", "queries": queries, "items": items, "dim": dim,
                              "depth": depth, "threads": threads, "budget_mib": budget / 2**20,
                              "chunk_rows": topk.chunk_rows(items, budget),
                              "dense_matrix_gib": queries * items * 4 / 2**30, "peak": "RSS high-water (ru_maxrss)"}
    with tempfile.TemporaryDirectory() as folder:
        for phase in ("plain", "streamed", "evaluate"):
            with ctx.Pool(1) as pool:
                result[phase] = pool.apply(_phase, ((phase, queries, items, dim, depth, seed, threads, budget,
                                                     folder),))
            if report:
                report(phase, result[phase])
    plain = result["plain"]["seconds"]
    result["ratio_topk"] = result["streamed"]["topk_seconds"] / plain        # top-k + ranks vs the floor
    result["ratio"] = result["streamed"]["seconds"] / plain                 # + metrics + writing the run
    return result
