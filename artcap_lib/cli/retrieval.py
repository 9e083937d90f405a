"""`artcap retrieval experiment | pretrain | evaluate | compare | fuse | reference`: Experiment 2 of any registered model, and
ranx-format JSON runs and qrels (see `runs`).

    artcap retrieval experiment --profile zoo --model siglip     # notebook 05's call for one model
    torchrun --nproc_per_node 4 -m artcap_lib.cli retrieval experiment --profile paper --model clip
"""
from __future__ import annotations

import json
import sys

from artcap_lib.cli.options import add_profile_options, output_file, profile_from_args

DEFAULT_METRICS = "precision@1,mrr,recall@5,recall@10"


def add_cli(sub) -> None:
    retrieval = sub.add_parser("retrieval", help="Experiment 2 of any registered model; evaluate, compare and fuse "
                               "retrieval runs (ranx JSON format)")
    rsub = retrieval.add_subparsers(dest="retrieval_command", required=True, metavar="ACTION")

    p = rsub.add_parser("experiment", help="train what is missing and score every variant of one registered model "
                        "(notebooks 04/05)", description=__doc__)
    p.add_argument("--model", required=True, help="a registered retrieval model (retrieval.registry.MODELS)")
    p.add_argument("--variant", action="append", default=[],
                   help="a variant to train and score, repeatable (default: all of the profile's)")
    add_profile_options(p, "device", "seed", "retrieval")
    p.set_defaults(func=_experiment)

    p = rsub.add_parser("pretrain", help="locate each model's baseline; pre-train a pocket one the run lacks (what "
                        "`artcap reproduce` runs beside step 02)")
    p.add_argument("--model", action="append", default=[],
                   help="a registered retrieval model, repeatable (default: the profile's retrieval.models)")
    add_profile_options(p, "device", "seed", "retrieval")
    p.set_defaults(func=_pretrain)

    p = rsub.add_parser("evaluate", help="mean metrics of one run (ties: in the order the run file lists them)")
    p.add_argument("--run", required=True, help="run JSON {query_id: {doc_id: score}}")
    p.add_argument("--qrels", required=True, help="qrels JSON {query_id: {doc_id: relevance}}")
    p.add_argument("--metrics", default=DEFAULT_METRICS, help=f"comma-separated (default {DEFAULT_METRICS}); "
                   "precision@k, recall@k, hit_rate@k, mrr, mrr@k")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    add_profile_options(p)
    p.set_defaults(func=_evaluate)

    p = rsub.add_parser("compare", help="paired t-test and randomisation test between runs, bootstrap CIs")
    p.add_argument("--qrels", required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN.json",
                   help="a run to compare (give two or more); every pair is tested")
    p.add_argument("--metrics", default=DEFAULT_METRICS)
    p.add_argument("--json", action="store_true")
    add_profile_options(p, "retrieval.randomisation", "retrieval.bootstrap", "seed")
    p.set_defaults(func=_compare)

    p = rsub.add_parser("fuse", help="fuse runs with ranx (default: RRF over min-max normalised scores)")
    p.add_argument("--run", action="append", required=True, metavar="RUN.json", help="a run to fuse (two or more)")
    p.add_argument("--out", required=True, type=output_file, help="fused run JSON")
    p.add_argument("--method", default="rrf", help="a ranx fusion method (rrf, comb_sum, ...)")
    p.add_argument("--norm", default="min-max", help="a ranx normalisation (min-max, max, sum, zmuv, rank, ...)")
    add_profile_options(p)
    p.set_defaults(func=_fuse)

    p = rsub.add_parser("reference", help="Experiment 2 from the authors' stored runs -> "
                        "<run dir>/retrieval/reference_results.json")
    add_profile_options(p, "retrieval", "seed", "run_dir", default_profile="reference")
    p.set_defaults(func=_reference)


def _experiment(args) -> int:
    from artcap_lib.cli.options import writing_run
    from artcap_lib.retrieval import displays, experiment, registry
    from artcap_lib.runtime import distributed_rank
    if args.model not in registry.MODELS:
        return _fail("experiment", KeyError(f"unknown model {args.model!r} (known: {', '.join(registry.MODELS)})"))
    cfg, paths = writing_run(args, f"artcap retrieval experiment --model {args.model}")
    out = experiment.run(cfg, paths, args.model, args.variant or None)
    if distributed_rank()[0] == 0:
        print("\n".join(displays.headlines(out)))
    return 0


def _pretrain(args) -> int:
    from artcap_lib.cli.options import writing_run
    from artcap_lib.retrieval import experiment, registry
    unknown = [m for m in args.model if m not in registry.MODELS]
    if unknown:
        return _fail("pretrain", KeyError(f"unknown model(s) {unknown} (known: {', '.join(registry.MODELS)})"))
    cfg, paths = writing_run(args, "artcap retrieval pretrain")
    for model, location in experiment.pretrain(cfg, paths, args.model or cfg.retrieval.models).items():
        print(f"{model}: baseline {location}")
    return 0


def _metrics(text: str) -> list[str]:
    from artcap_lib.retrieval.runs import parse_metric
    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        parse_metric(name)
    return names


def _fail(action: str, err: Exception) -> int:
    print(f"artcap retrieval {action}: {err}", file=sys.stderr)
    return 2


def _evaluate(args) -> int:
    from artcap_lib.retrieval.runs import RunError, evaluate_run, load_qrels, load_run
    try:
        means = evaluate_run(load_run(args.run), load_qrels(args.qrels), _metrics(args.metrics), where=args.run)
    except RunError as err:
        return _fail("evaluate", err)
    if args.json:
        print(json.dumps(means, indent=2))
    else:
        width = max(map(len, means))
        for name, value in means.items():
            print(f"{name:<{width}}  {value!r}")       # repr: every digit, so results can be checked exactly
    return 0


def _compare(args) -> int:
    from artcap_lib import stats as significance
    from artcap_lib.retrieval.runs import RunError, compare, load_qrels, load_run, per_query_run_metrics
    cfg, _ = profile_from_args(args)
    r = cfg.retrieval
    try:
        named = dict(_named_run(text) for text in args.run)
        if len(named) < 2:
            raise RunError("give at least two runs (--run NAME=RUN.json twice or more, distinct names)")
        metrics = _metrics(args.metrics)
        qrels = load_qrels(args.qrels)
        per_query = {name: per_query_run_metrics(load_run(path), qrels, metrics, where=path)
                     for name, path in named.items()}
        rows = compare(per_query, metrics, randomisation=r.randomisation, seed=cfg.seed)
    except RunError as err:
        return _fail("compare", err)
    cis = {name: {m: significance.bootstrap_ci(v, r.bootstrap, cfg.seed).tolist() for m, v in values.items()}
           for name, values in per_query.items()}
    if args.json:
        print(json.dumps({"ci95": cis, "significance": rows}, indent=2))
        return 0
    for name, values in per_query.items():
        print(name + ": " + ", ".join(f"{m} {v.mean():.4f} [{cis[name][m][0]:.4f}, {cis[name][m][1]:.4f}]"
                                      for m, v in values.items()))
    print(f"{'a':<12} {'b':<12} {'metric':<12} {'mean a':>8} {'mean b':>8} {'p t-test':>9} {'p random':>9}")
    for r in rows:
        print(f"{r['a']:<12} {r['b']:<12} {r['metric']:<12} {r['mean_a']:8.4f} {r['mean_b']:8.4f} "
              f"{r['p_ttest']:9.3g} {r['p_randomisation']:9.3g}")
    return 0


def _named_run(text: str) -> tuple[str, str]:
    from artcap_lib.retrieval.runs import RunError
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise RunError(f"--run {text!r}: expected NAME=RUN.json")
    return name, path


def _fuse(args) -> int:
    from artcap_lib.retrieval.runs import RunError, fuse_runs, load_run, save_run
    if len(args.run) < 2:
        return _fail("fuse", RunError("give at least two runs (--run twice or more)"))
    try:
        fused = fuse_runs([load_run(path) for path in args.run], method=args.method, norm=args.norm, names=args.run)
    except RunError as err:
        return _fail("fuse", err)
    save_run(args.out, fused)
    print(f"{len(fused)} queries fused ({args.method}, {args.norm} norm) -> {args.out}")
    return 0


def _reference(args) -> int:
    from artcap_lib.reference import ReferenceArtefactError
    from artcap_lib.retrieval.runs import reference_experiment2
    cfg, paths = profile_from_args(args)
    try:
        results = reference_experiment2(paths, cfg.retrieval.bootstrap, cfg.retrieval.randomisation, cfg.seed)
    except ReferenceArtefactError as err:
        return _fail("reference", err)
    for model, block in results["models"].items():
        for query_set, qs in block["query_sets"].items():
            for variant, entry in qs["variants"].items():
                parity = (f"  (stored means: max |diff| {entry['stored_max_abs_diff']:.1e})"
                          if "stored" in entry else "")
                print(f"{model:<9} {query_set:<9} {variant:<20} " + "  ".join(
                    f"{m} {entry['metrics'][m]:.4f}" for m in block["metrics"]) + parity)
    print(f"-> {paths.retrieval / 'reference_results.json'}")
    return 0
