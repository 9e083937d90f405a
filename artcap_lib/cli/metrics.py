"""`artcap metrics score --pairs PAIRS.tsv --out OUT.csv [--backend paper|coco ...] [--bertscore-model M]`.

PAIRS.tsv: UTF-8, a header line naming (at least) the columns `id`, `reference`, `candidate`, then one pair per
line, fields separated by tabs. Texts hold no tab or newline but may hold quotes of any kind, so the file is read
without CSV quoting (a `"` is an ordinary character). OUT.csv: one row per id, one column per metric.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from artcap_lib.cli.options import add_profile_options, input_path, output_file, profile_from_args

REQUIRED = ("id", "reference", "candidate")


class PairsFileError(ValueError):
    pass


def read_pairs_tsv(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, references, candidates) from a pairs TSV; malformed lines are errors naming file and line."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise PairsFileError(f"{path}: line {line}: not UTF-8 (byte {exc.start}: "
                             f"{raw[exc.start:exc.start + 1]!r})") from None
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
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
    p = msub.add_parser("score", help="score caption pairs from a TSV; per-id CSV out, summary on stdout",
                        description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--pairs", required=True, type=input_path, help="TSV with header: id, reference, candidate")
    p.add_argument("--out", required=True, type=output_file, help="output CSV")
    add_profile_options(p, "metrics.backends", "metrics.bertscore_model", "metrics.bertscore_num_layers",
                        "metrics.spice_jars", "metrics.bootstrap", "device", "seed",
                        flag_names={"metrics.backends": "--backend"})
    p.set_defaults(func=_score)


def _score(args) -> int:
    from artcap_lib.textmetrics.scorer import CaptionScorer, MetricInputError, check_pairs
    from artcap_lib.files import atomic_write_text
    from artcap_lib.stats import bootstrap_ci
    from artcap_lib.runtime import resolve_device
    cfg, _ = profile_from_args(args)
    m = cfg.metrics
    backends = tuple(dict.fromkeys(m.backends))
    try:
        ids, references, candidates = read_pairs_tsv(args.pairs)
        check_pairs(ids, references, candidates, where=args.pairs)   # before any model or Java process starts
        model = None if m.bertscore_model.lower() == "none" else m.bertscore_model
        with CaptionScorer(backends, model, m.bertscore_num_layers, m.spice_jars,
                           resolve_device(cfg.device)) as scorer:
            result = scorer.score(ids, references, candidates)
    except (PairsFileError, MetricInputError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"artcap metrics score: {err}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, result.per_image.to_csv(float_format="%.10g"))
    ci = bootstrap_ci(result.per_image.to_numpy(), m.bootstrap, seed=cfg.seed)
    print(f"{len(ids)} pairs from {args.pairs} -> {args.out}")
    print(f"{'metric':<14}{'mean':>10}{'95% CI':>22}{'corpus':>10}")
    for j, column in enumerate(result.per_image.columns):
        corpus = result.corpus.get(column)
        print(f"{column:<14}{result.per_image[column].mean():>10.4f}   [{ci[j, 0]:.4f}, {ci[j, 1]:.4f}]"
              f"{'' if corpus is None else f'{corpus:>10.4f}'}")
    if result.bertscore:
        print(f"BERTScore: {result.bertscore['label']}, layer {result.bertscore['num_layers']}, "
              f"hash {result.bertscore['hash']}")
    if "coco" in backends and result.spice["status"] != "ok":
        print(f"SPICE: skipped ({result.spice['reason']}); to enable: {result.spice['how_to_enable']}")
    if "paper" in backends:
        print(f"METEOR sentence splitter: {result.meteor_punkt}")
    return 0
