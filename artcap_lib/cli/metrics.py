"""`artcap metrics score --pairs PAIRS.tsv --backend paper|coco [--bertscore-model M] --out OUT.csv`.

PAIRS.tsv: UTF-8, a header line naming (at least) the columns `id`, `reference`, `candidate`, then one pair per
line, fields separated by tabs. Texts hold no tab or newline but may hold quotes of any kind, so the file is read
without CSV quoting (a `"` is an ordinary character). OUT.csv: one row per id, one column per metric.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

REQUIRED = ("id", "reference", "candidate")


class PairsFileError(ValueError):
    pass


def read_pairs_tsv(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, references, candidates) from a pairs TSV; malformed lines are errors naming file and line."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise PairsFileError(f"{path}: empty file (expected a header line: id<TAB>reference<TAB>candidate)")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise PairsFileError(f"{path}: header lacks column(s) {', '.join(missing)} (found {', '.join(header)})")
    where = {c: header.index(c) for c in REQUIRED}
    ids, references, candidates = [], [], []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue   # a blank line (e.g. at the end)
        if len(row) != len(header):
            raise PairsFileError(f"{path}: line {line_number}: {len(row)} tab-separated fields, header has "
                                 f"{len(header)} (a tab inside a text?)")
        ids.append(row[where["id"]])
        references.append(row[where["reference"]])
        candidates.append(row[where["candidate"]])
    return ids, references, candidates


def add_cli(sub) -> None:
    metrics = sub.add_parser("metrics", help="caption metrics (Experiment 1): paper and coco backends")
    msub = metrics.add_subparsers(dest="metrics_command", required=True, metavar="ACTION")
    p = msub.add_parser("score", help="score caption pairs from a TSV; per-id CSV out, summary on stdout")
    p.add_argument("--pairs", required=True, help="TSV with header: id, reference, candidate")
    p.add_argument("--backend", choices=("paper", "coco"), action="append", required=True,
                   help="paper (the authors' metrics) or coco (pycocoevalcap); repeat for both")
    p.add_argument("--bertscore-model", default="distilbert-base-uncased",
                   help="paper backend: hub id or local dir; 'minilm' = offline MiniLM (not the paper's); "
                        "'none' = no BERTScore")
    p.add_argument("--bertscore-num-layers", type=int, default=0, help="0 = bert-score's default for the model")
    p.add_argument("--spice-jars", default="", help="coco backend: directory with the CoreNLP 3.6.0 jars")
    p.add_argument("--device", default="auto", help="BERTScore device: auto | cpu | cuda[:N]")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=_score)


def _score(args) -> int:
    from artcap_lib.textmetrics.scorer import CaptionScorer, MetricInputError, check_pairs
    from artcap_lib.files import atomic_write_text
    from artcap_lib.stats import bootstrap_ci
    from artcap_lib.runtime import resolve_device
    try:
        ids, references, candidates = read_pairs_tsv(args.pairs)
        check_pairs(ids, references, candidates, where=args.pairs)   # before any model or Java process starts
        model = None if args.bertscore_model.lower() == "none" else args.bertscore_model
        with CaptionScorer(tuple(dict.fromkeys(args.backend)), model, args.bertscore_num_layers, args.spice_jars,
                           resolve_device(args.device)) as scorer:
            result = scorer.score(ids, references, candidates)
    except (PairsFileError, MetricInputError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"artcap metrics score: {err}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, result.per_image.to_csv(float_format="%.10g"))
    ci = bootstrap_ci(result.per_image.to_numpy(), args.bootstrap, seed=0)
    print(f"{len(ids)} pairs from {args.pairs} -> {args.out}")
    print(f"{'metric':<14}{'mean':>10}{'95% CI':>22}{'corpus':>10}")
    for j, column in enumerate(result.per_image.columns):
        corpus = result.corpus.get(column)
        print(f"{column:<14}{result.per_image[column].mean():>10.4f}   [{ci[j, 0]:.4f}, {ci[j, 1]:.4f}]"
              f"{'' if corpus is None else f'{corpus:>10.4f}'}")
    if result.bertscore:
        print(f"BERTScore: {result.bertscore['label']}, layer {result.bertscore['num_layers']}, "
              f"hash {result.bertscore['hash']}")
    if "coco" in args.backend and result.spice["status"] != "ok":
        print(f"SPICE: skipped ({result.spice['reason']}); to enable: {result.spice['how_to_enable']}")
    if "paper" in args.backend:
        print(f"METEOR sentence splitter: {result.meteor_punkt}")
    return 0
