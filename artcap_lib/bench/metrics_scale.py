"""`artcap bench metrics --synthetic N`: Experiment 1's two backends (no BERTScore: at 100k pairs it is a model
forward pass per text, a GPU job of its own) on N synthetic pairs, ours (`CaptionScorer`) against the plain
libraries (`plain_metrics`), in the same command on the same pairs.

Each side runs in a forked child, so each starts from the same state and its figures are its own: CPU seconds are
the child's and every process it waited for (its worker processes, the Java tokenizer and METEOR 1.5), wall
seconds, and peak resident memory of the Python process and of its largest helper. The two sides' scores are
compared value for value: the speed-ups must not move a single score.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import time

import numpy as np

from artcap_lib.bench.synthetic_captions import synthetic_pairs


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ours(ids, references, candidates) -> dict[str, np.ndarray]:
    from artcap_lib.textmetrics.scorer import CaptionScorer
    with CaptionScorer(("paper", "coco"), bertscore_model=None) as scorer:
        frame = scorer.score(ids, references, candidates).per_image
    return {c: frame[c].to_numpy() for c in frame.columns}


def _plain(ids, references, candidates) -> dict[str, np.ndarray]:
    from artcap_lib.bench.plain_metrics import plain_scores
    return plain_scores(candidates, references)


def _child(side, pairs, conn) -> None:
    start = time.perf_counter()
    scores = {"ours": _ours, "plain": _plain}[side](*pairs)
    wall = time.perf_counter() - start
    own, helpers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    conn.send({"scores": scores, "wall_s": wall, "peak_rss_mib": own.ru_maxrss / 1024,
               "helper_peak_rss_mib": helpers.ru_maxrss / 1024})
    conn.close()


def run_side(side: str, pairs) -> dict:
    """One side in a forked child: its scores, wall, CPU (child + its waited-for descendants), peak RSS."""
    context = multiprocessing.get_context("fork")   # the pairs are inherited, not pickled
    receive, send = context.Pipe(duplex=False)
    cpu = _children_cpu()
    child = context.Process(target=_child, args=(side, pairs, send))
    child.start()
    send.close()
    result = receive.recv()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the {side} side of the metrics benchmark failed (exit code {child.exitcode})")
    result["cpu_s"] = _children_cpu() - cpu
    return result


def compare(ours: dict[str, np.ndarray], plain: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per shared column: how many values differ at all, and the largest difference."""
    out = {}
    for column in plain:
        a, b = ours[column], plain[column]
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        out[column] = {"n_different": int((~same).sum()), "max_abs_diff": float(np.nanmax(np.abs(a - b)))}
    return out


def bench_synthetic(n: int, seed: int = 0, plain: bool = True) -> dict:
    start = time.perf_counter()
    pairs = synthetic_pairs(n, seed)
    out = {"benchmark": "metrics_synthetic", "pairs": n, "seed": seed, "bertscore": "off (synthetic mode)",
           "generate_s": round(time.perf_counter() - start, 2), "cpu_count": os.cpu_count(),
           "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    sides = {"ours": run_side("ours", pairs)}
    if plain:
        sides["plain"] = run_side("plain", pairs)
    for side, result in sides.items():
        out[side] = {k: round(v, 2) for k, v in result.items() if k != "scores"}
    if plain:
        out["cpu_ratio"] = round(sides["ours"]["cpu_s"] / sides["plain"]["cpu_s"], 3)
        out["wall_ratio"] = round(sides["ours"]["wall_s"] / sides["plain"]["wall_s"], 3)
        out["scores"] = compare(sides["ours"]["scores"], sides["plain"]["scores"])
        out["identical"] = all(v["n_different"] == 0 for v in out["scores"].values())
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out
