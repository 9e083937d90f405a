"""Experiment 1's scorer: both metric backends ("paper": `paper` + `bertscore`; "coco": `coco`) over the pairs of
MLLM caption (candidate) and human caption (reference), per image, and over the shuffled control.

Expensive resources are loaded once per `CaptionScorer`: the BERTScore model, and the METEOR 1.5 Java process with
its paraphrase table (~8 s). The backends are independent and run concurrently.
"""
from __future__ import annotations

import shutil
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from artcap_lib.progress import Bar
from artcap_lib.textmetrics.bertscore import BERTSCORE_COLUMNS, PAPER_BERTSCORE_MODEL, BertScore
from artcap_lib.textmetrics.coco import COCO_COLUMNS, GuardedMeteor, coco_scores, ptb_tokenize, spice_status
from artcap_lib.textmetrics.paper import (ROUGE_COLUMNS, _meteor_resources, bleu4_scores, meteor_nltk_scores,
                                          meteor_word_tokenizer, rouge_scores)


PAPER_COLUMNS = ROUGE_COLUMNS + ["bleu4", "meteor"] + BERTSCORE_COLUMNS
BACKENDS = ("paper", "coco")


class MetricInputError(ValueError):
    """Pairs that cannot be scored (empty text, mismatched lengths); names the ids."""


# ---------------------------------------------------------------------------------------------------------
# inputs

def check_pairs(ids: Sequence[str], references: Sequence, candidates: Sequence[str], where: str = "pairs"):
    """Every pair must have a non-blank reference (each of them, where an image has several) and candidate: the
    `rouge` package and METEOR 1.5 fail on empty text deep inside, and a 0 would silently pull the mean down."""
    if not (len(ids) == len(references) == len(candidates)):
        raise MetricInputError(f"{where}: {len(ids)} ids, {len(references)} references, {len(candidates)} candidates")
    if len(ids) == 0:
        raise MetricInputError(f"{where}: no pairs to score")
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)   # not ids.count per id: n^2
    if duplicates:
        raise MetricInputError(f"{where}: duplicate ids {', '.join(duplicates[:10])}")
    for field_name, texts in (("reference", references), ("candidate", candidates)):
        empty = [i for i, t in zip(ids, texts) if not _filled(t, several=field_name == "reference")]
        if empty:
            more = f" (and {len(empty) - 10} more)" if len(empty) > 10 else ""
            raise MetricInputError(f"{where}: empty {field_name} for id(s) {', '.join(map(str, empty[:10]))}{more}")


def _filled(text, several: bool) -> bool:
    if several and isinstance(text, (list, tuple)):
        return bool(text) and all(_filled(t, False) for t in text)
    return isinstance(text, str) and bool(text.strip())


def reference_lists(references: Sequence) -> list[list[str]]:
    """Each image's references as a list (a single text is a list of one)."""
    return [[r] if isinstance(r, str) else list(r) for r in references]


def _best_of(groups: list[list[str]], candidates: list[str], per_pair, pick: str | None = None) -> dict:
    """A per-pair metric over several references: every (candidate, reference) pair scored, then per image the
    best one. `pick` names the column whose best reference every column reports (ROUGE: the F1's reference, so P,
    R and F stay one reference's, as rouge-score's multi-reference form does); without it each column's maximum
    (NLTK's `meteor_score`, and bert-score's multi-reference form, which maximises P, R and F separately)."""
    flat_c = [c for c, g in zip(candidates, groups) for _ in g]
    flat_r = [r for g in groups for r in g]
    scores = per_pair(flat_c, flat_r)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    out = {}
    for column, values in scores.items():
        out[column] = np.empty(len(groups))
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            best = lo + int(np.argmax(scores[pick][lo:hi])) if pick else None
            out[column][k] = values[best] if pick else values[lo:hi].max()
    return out


# ---------------------------------------------------------------------------------------------------------
# the scorer: both backends, real pairs and the shuffled control, concurrently

def _paper_lexical(kind: str, candidates: list[str], references: list) -> dict[str, np.ndarray]:
    """One worker process's share of the paper backend (pure Python, so it needs its own process to overlap).
    References are texts (one per image, the authors' case: their calls exactly) or lists of texts."""
    if all(isinstance(r, str) for r in references):
        if kind == "meteor":
            return {"meteor": meteor_nltk_scores(candidates, references)}
        out = rouge_scores(candidates, references)
        out["bleu4"] = bleu4_scores(candidates, references)
        return out
    groups = reference_lists(references)
    if kind == "meteor":
        return _best_of(groups, candidates, lambda c, r: {"meteor": meteor_nltk_scores(c, r)})
    out = {}
    for n in ("1", "2", "L"):
        out.update(_best_of(groups, candidates, lambda c, r, n=n: {k: v for k, v in rouge_scores(c, r).items()
                                                                   if k.startswith(f"rouge{n}_")},
                            pick=f"rouge{n}_f"))
    out["bleu4"] = bleu4_scores(candidates, groups)         # torcheval's BLEU pools clipped counts over them
    return {k: out[k] for k in ROUGE_COLUMNS + ["bleu4"]}


def _warm_worker(kind: str) -> None:
    """Process initializer: load what the worker's metric needs (WordNet takes seconds) before work arrives."""
    if kind == "meteor":
        _meteor_resources()
        meteor_word_tokenizer()
    else:
        import rouge, torcheval.metrics.functional  # noqa: F401


@dataclass
class ScoreResult:
    per_image: "pd.DataFrame"               # index id, one column per metric
    control: "pd.DataFrame | None"          # same columns, candidates shuffled across images
    corpus: dict[str, float]                # coco corpus-level BLEU/METEOR (+ control_ prefixed)
    bertscore: dict | None                  # model, label, num_layers, hash, is_paper_model
    spice: dict                             # spice_status(...), "status" "ok" when it ran
    meteor_punkt: str                       # which Punkt model split METEOR's sentences
    seconds: dict[str, float] = field(default_factory=dict)


class CaptionScorer:
    """Both backends with their resources loaded once; use as a context manager, call `score` any number of times.

    Work is spread so that two CPU cores stay busy: NLTK METEOR and ROUGE+BLEU each run in a worker process
    (pure Python: threads would serialise on the GIL), the coco backend's Python metrics run in a thread of
    this process while its Java METEOR 1.5 runs beside them, and BERTScore runs in another thread (torch).
    The slow loads (WordNet, the METEOR paraphrase table, the BERTScore model) start at construction.
    """

    def __init__(self, backends: Sequence[str] = BACKENDS, bertscore_model: str | None = PAPER_BERTSCORE_MODEL,
                 bertscore_num_layers: int = 0, spice_jars: str = "", device: str = "cpu",
                 bertscore_batch_size: int = 64):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        unknown = set(backends) - set(BACKENDS)
        if unknown or not backends:
            raise ValueError(f"metric backends must be among {BACKENDS}, got {list(backends)}")
        self.backends = tuple(backends)
        if "coco" in self.backends and shutil.which("java") is None:   # before any worker or Java process starts
            raise RuntimeError("the coco backend needs a Java runtime on PATH (METEOR 1.5, PTB tokenizer): "
                               "install one (e.g. apt-get install default-jre-headless) or use --backend paper")
        self.spice_jars = spice_jars
        # Worker processes first, while this process runs none of our threads: on Linux they are forked (no
        # re-import of the caller's __main__, which spawn needs guarded); elsewhere spawned.
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._workers = {}
        if "paper" in self.backends:
            for kind in ("meteor", "rouge_bleu"):
                self._workers[kind] = ProcessPoolExecutor(1, mp_context=context, initializer=_warm_worker,
                                                          initargs=(kind,))
                self._workers[kind].submit(int)   # start it (and its initializer) now, not at the first score()
        self._threads = ThreadPoolExecutor(max_workers=6, thread_name_prefix="artcap-metrics")
        self._meteor = self._threads.submit(GuardedMeteor) if "coco" in self.backends else None
        self._bert = (self._threads.submit(BertScore, bertscore_model, bertscore_num_layers, device,
                                           bertscore_batch_size)
                      if "paper" in self.backends and bertscore_model else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._meteor is not None and self._meteor.done() and self._meteor.exception() is None:
            self._meteor.result().close()
        for pool in self._workers.values():
            pool.shutdown(wait=True)
        self._threads.shutdown(wait=True)

    def score(self, ids: Sequence[str], references: Sequence, candidates: Sequence[str],
              control_permutation: Sequence[int] | None = None) -> ScoreResult:
        """Score the pairs; with `control_permutation` also the pairs (references[i], candidates[perm[i]]).
        A reference is a text or, for an image with several human captions, a list of them (each metric's
        multi-reference form: `docs` in the README, "Several human captions per image")."""
        import time
        import pandas as pd
        ids, references, candidates = list(map(str, ids)), list(references), list(candidates)
        check_pairs(ids, references, candidates)
        n = len(ids)
        control_cands = [candidates[j] for j in control_permutation] if control_permutation is not None else None
        # every metric is per pair except CIDEr's document frequencies, so real and control pairs go in one call
        all_cands = candidates + (control_cands or [])
        all_refs = references * (2 if control_cands else 1)
        seconds: dict[str, float] = {}
        start = time.perf_counter()

        def timed(name, future):
            result = future.result()
            seconds[name] = round(time.perf_counter() - start, 3)
            return result

        jobs = {kind: pool.submit(_paper_lexical, kind, all_cands, all_refs) for kind, pool in self._workers.items()}
        if self._bert is not None:
            jobs["bertscore"] = self._threads.submit(self._score_bert, all_cands, all_refs)
        if "coco" in self.backends:
            jobs["coco"] = self._threads.submit(self._score_coco, references, candidates, control_cands)
        # the jobs run side by side; the bar says which are still computing
        with Bar(len(jobs), f"scoring {n} caption pairs", unit="metric groups") as bar:
            for future in as_completed(jobs.values()):
                running = [k for k, f in jobs.items() if not f.done()]
                bar.update(note=f"computing {', '.join(running)}" if running else "")
        columns: dict[str, np.ndarray] = {}
        corpus, spice, bert_info = {}, spice_status(self.spice_jars), None
        for name, future in jobs.items():
            if name == "coco":
                coco, coco_control, corpus = timed(name, future)
                columns.update({k: np.concatenate([v, coco_control[k]]) if control_cands else v
                                for k, v in coco.items()})
                if "coco_spice" in coco:
                    spice = {**spice, "status": "ok"}
            else:
                columns.update(timed(name, future))
        if self._bert is not None:
            settings, scorer = self._bert.result().settings, self._bert.result()
            bert_info = {"model": settings.model, "label": settings.label, "num_layers": settings.num_layers,
                         "is_paper_model": settings.is_paper_model, "hash": scorer.hash}
        order = [c for c in PAPER_COLUMNS + COCO_COLUMNS if c in columns]
        index = pd.Index(ids, name="id")
        per_image = pd.DataFrame({c: columns[c][:n] for c in order}, index=index)
        control = pd.DataFrame({c: columns[c][n:] for c in order}, index=index) if control_cands else None
        seconds["total"] = round(time.perf_counter() - start, 3)
        return ScoreResult(per_image, control, corpus, bert_info, spice, meteor_word_tokenizer()[1], seconds)

    def _score_bert(self, candidates, references):
        if all(isinstance(r, str) for r in references):
            return self._bert.result().score(candidates, references)
        return _best_of(reference_lists(references), candidates, self._bert.result().score)

    def _score_coco(self, references, candidates, control_cands):
        """PTB-tokenize every text once (one Java start), then score real and control pairs as separate sets
        (CIDEr's document frequencies and corpus BLEU/METEOR belong to the set being scored), with METEOR 1.5
        working in Java meanwhile."""
        groups = reference_lists(references)
        texts = {f"r{i}.{j}": t for i, g in enumerate(groups) for j, t in enumerate(g)}
        texts.update({f"c{i}": t for i, t in enumerate(candidates)})
        tokens = ptb_tokenize(texts)
        keys = [f"{i:08d}" for i in range(len(references))]   # sorted order = input order
        gts = {k: [tokens[f"r{i}.{j}"] for j in range(len(groups[i]))] for i, k in enumerate(keys)}
        sets = {"": {k: [tokens[f"c{i}"]] for i, k in enumerate(keys)}}
        if control_cands is not None:
            position = {t: i for i, t in enumerate(candidates)}   # the control's candidates are the same texts
            sets["control_"] = {k: [tokens[f"c{position[control_cands[i]]}"]] for i, k in enumerate(keys)}
        meteor = self._meteor.result()
        meteor_jobs = {prefix: self._threads.submit(meteor.compute_score, gts, res) for prefix, res in sets.items()}
        per, corpus = {}, {}
        for prefix, res in sets.items():
            columns, values = coco_scores(gts, res, self.spice_jars)
            meteor_corpus, meteor_per = meteor_jobs[prefix].result()
            columns["coco_meteor"] = np.asarray(meteor_per, dtype=np.float64)
            values["coco_meteor"] = float(meteor_corpus)
            per[prefix] = columns
            corpus.update({prefix + k: v for k, v in values.items()})
        return per[""], per.get("control_", {}), corpus
