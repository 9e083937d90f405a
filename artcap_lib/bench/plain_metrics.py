"""The baseline of `artcap bench metrics --synthetic`: Experiment 1's metrics computed by calling the libraries
directly, the straightforward way, one after the other in one process (what `CaptionScorer` is measured against).

- paper backend, as the authors' `calculate_captioning_metrics.py` calls it: `Rouge().get_scores(cands, refs)`,
  torcheval's `BLEUScore(n_gram=4)` reset/update/compute per pair, NLTK METEOR per pair with NLTK's own WordNet
  (HF `evaluate`'s meteor: `single_meteor_score(word_tokenize(ref), word_tokenize(pred))`; `evaluate` itself is
  not installed, and without NLTK's `punkt_tab` the same untrained-Punkt tokenizer as ours is used);
- coco backend, as pycocoevalcap's `COCOEvalCap.evaluate` does it: `PTBTokenizer` on the references and on the
  candidates, then `Bleu(4)`, `Meteor()`, `Rouge()`, `Cider()` each `compute_score(gts, res)`.
Columns are named as `CaptionScorer`'s, so the two can be compared value for value.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def plain_paper(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    from nltk.translate.meteor_score import single_meteor_score
    from rouge import Rouge
    from torcheval.metrics import BLEUScore
    from artcap_lib.textmetrics.paper import meteor_word_tokenizer
    out = {}
    rows = Rouge().get_scores(list(candidates), list(references))
    for n, key in (("1", "rouge-1"), ("2", "rouge-2"), ("L", "rouge-l")):
        for k in ("p", "r", "f"):
            out[f"rouge{n}_{k}"] = np.array([row[key][k] for row in rows], dtype=np.float64)
    metric, bleu = BLEUScore(n_gram=4), []
    for c, r in zip(candidates, references):
        if len(c.split()) < 4:   # torcheval refuses it; ours scores it 0 (see paper.bleu4_scores)
            bleu.append(0.0)
            continue
        metric.reset()
        metric.update([c], [[r]])
        bleu.append(float(metric.compute()))
    out["bleu4"] = np.array(bleu)
    try:
        from nltk import word_tokenize
        word_tokenize("A test.")
    except LookupError:                       # no punkt_tab: the fallback our backend uses too
        word_tokenize = meteor_word_tokenizer(untimed=False)[0]   # NLTK's objects as they come
    out["meteor"] = np.array([single_meteor_score(word_tokenize(r), word_tokenize(c), alpha=0.9, beta=3, gamma=0.5)
                              for c, r in zip(candidates, references)])
    return out


def plain_coco(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    keys = [f"{i:08d}" for i in range(len(references))]    # sorted order = input order
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": r}] for k, r in zip(keys, references)})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in zip(keys, candidates)})
    out = {}
    _, bleu = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"coco_bleu{n + 1}"] = np.asarray(bleu[n], dtype=np.float64)
    meteor = Meteor()
    out["coco_meteor"] = np.asarray(meteor.compute_score(gts, res)[1], dtype=np.float64)
    meteor.meteor_p.stdin.close()             # let Java end, so its CPU time is counted as a finished child's
    meteor.meteor_p.wait()
    meteor.__class__ = type("ClosedMeteor", (), {"__del__": lambda self: None})
    out["coco_rougeL"] = np.asarray(Rouge().compute_score(gts, res)[1], dtype=np.float64)
    out["coco_cider"] = np.asarray(Cider().compute_score(gts, res)[1], dtype=np.float64)
    return out


def plain_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    return {**plain_paper(candidates, references), **plain_coco(candidates, references)}
