"""Parity of our "paper" backend with the authors' stored per-image scores (`metrics/LlamaCaptioner.tsv`).

Their table holds, per train image, the human caption, the LLaVA caption and 14 scores. Two facts to know:
- its `rouge-*-p` columns hold ROUGE *recall* and `rouge-*-r` hold *precision* (the `rouge` package returns
  r, p, f; their code zipped that with the names p, r, f1). `AUTHORS_COLUMNS` maps our correctly named
  columns onto theirs, swap included.
- its caption columns had newlines replaced by spaces when written; scores were computed on the original
  texts, so parity is checked on our pipeline's texts (LLaVA captions from their caption files), joined by id.
"""
from __future__ import annotations

import numpy as np

from artcap_lib.textmetrics.bertscore import PAPER_BERTSCORE_MODEL

AUTHORS_COLUMNS = {   # ours -> theirs
    **{f"rouge{n}_p": f"rouge-{m}-r" for n, m in (("1", "1"), ("2", "2"), ("L", "l"))},
    **{f"rouge{n}_r": f"rouge-{m}-p" for n, m in (("1", "1"), ("2", "2"), ("L", "l"))},
    **{f"rouge{n}_f": f"rouge-{m}-f1" for n, m in (("1", "1"), ("2", "2"), ("L", "l"))},
    "bleu4": "bleu_precision",
    "meteor": "meteor_score",
    "bertscore_p": f"{PAPER_BERTSCORE_MODEL}-bertscore-p",
    "bertscore_r": f"{PAPER_BERTSCORE_MODEL}-bertscore-r",
    "bertscore_f": f"{PAPER_BERTSCORE_MODEL}-bertscore-f1",
}
EXACT = 1e-6   # "exact": the stored values are float32/float64 prints; 1e-6 is far below any real difference
METEOR_TARGETS = {"fraction_exact": 0.90, "mean_abs_diff": 5e-4}   # with the untrained Punkt (see module doc)


def authors_scores() -> "pd.DataFrame":
    """The authors' per-image scores, indexed by id, under OUR column names (P/R swap undone)."""
    import pandas as pd
    from artcap_lib import reference
    rows = reference.experiment1_rows()
    frame = pd.DataFrame(rows).set_index("id")
    return pd.DataFrame({ours: frame[theirs].astype(np.float64) for ours, theirs in AUTHORS_COLUMNS.items()},
                        index=pd.Index(frame.index.astype(str), name="id"))


def parity_table(ours: "pd.DataFrame", theirs: "pd.DataFrame", bertscore: dict | None) -> dict:
    """Per metric: ours vs theirs mean, max |diff|, fraction of rows within EXACT, over the shared ids.

    BERTScore is compared only when ours used the paper's model (distilbert-base-uncased, layer 5)."""
    shared = ours.index.intersection(theirs.index)
    out = {"n_rows": int(len(shared)), "n_ours": int(len(ours)), "n_theirs": int(len(theirs)),
           "tolerance": EXACT, "metrics": {}}
    if bertscore is None:
        out["bertscore"] = "skipped: BERTScore was not computed"
    elif not bertscore.get("is_paper_model"):
        out["bertscore"] = (f"skipped: computed with {bertscore['model']}, not the paper's "
                            f"{PAPER_BERTSCORE_MODEL} (set metrics.bertscore_model to it, hub id or local dir)")
    else:
        out["bertscore"] = "checked"
    for column in AUTHORS_COLUMNS:
        if column not in ours.columns or (column.startswith("bertscore") and out["bertscore"] != "checked"):
            continue
        a = ours.loc[shared, column].to_numpy(np.float64)
        b = theirs.loc[shared, column].to_numpy(np.float64)
        diff = np.abs(a - b)
        out["metrics"][column] = {"ours_mean": float(a.mean()), "theirs_mean": float(b.mean()),
                                  "mean_diff": float(a.mean() - b.mean()), "max_abs_diff": float(diff.max()),
                                  "fraction_exact": float((diff < EXACT).mean())}
    return out


def parity_frame(parity: dict) -> "pd.DataFrame":
    """The parity block as a table (one row per metric) for display."""
    import pandas as pd
    return pd.DataFrame(parity["metrics"]).T.rename_axis("metric")
