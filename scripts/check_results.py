#!/usr/bin/env python3
"""Checks a run's numbers against an expected summary committed in tests/expected/ (CI's expected-results check).

    python scripts/check_results.py tests/expected/demo_results.json papermill_runs/demo/results.json
    python scripts/check_results.py EXPECTED RUN_DIR              # the same: results.json is found in RUN_DIR
    python scripts/check_results.py EXPECTED RESULTS --exact      # same machine: every number to 1e-9
    python scripts/check_results.py EXPECTED RESULTS --update     # deliberately rewrite the expected values

Standard library only, and independent of artcap_lib: it must judge the library, not share its bugs.

The expected file (JSON) has four parts:
  files       which numbers matter, per file of the run directory: "keep" patterns over flattened keys, and
              "records": lists of records addressed by their identifying fields instead of their position
              (experiment2.cells[model=blip,query_set=artpedia,variant=human,metric=mrr].value), so that
              reordering a list is not a change but renaming or dropping a cell is.
  tolerances  first matching rule wins: {"keys": pattern(s), "abs": a, "rel": r, "why": ...}; a number passes
              when |ours - expected| <= max(abs, rel * |expected|); numbers no rule names must be equal.
              Strings, booleans and nulls are always compared exactly.
  invariants  relations that must hold in the run whatever the expected values say (the parity with the
              authors' numbers): {"keys": pattern, "equals": v | "sibling": field | "at_least": v, "abs": a,
              "min_matches": n, "why": ...}. --update refuses to write a file whose run breaks one.
  values      {"<file>:<flattened key>": value}, written by --update.
Patterns: `*` matches any run of characters; everything else is literal (brackets included).
Fails (exit 1) on a changed value, a missing key, a number outside its tolerance, a kept number the expected
file does not know (a new metric is a change to accept with --update), and a broken invariant.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

EXACT_TOLERANCE = 1e-9   # --exact: refactoring may reorder a float sum, nothing more


def compile_pattern(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)) + r"\Z")


def _patterns(spec) -> list[re.Pattern]:
    return [compile_pattern(p) for p in ([spec] if isinstance(spec, str) else spec)]


def flatten(value, records: dict[str, list[str]], prefix: str = "") -> dict:
    """{dotted key: scalar}; lists named in `records` are keyed by their records' identifying fields."""
    out: dict = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, records, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        fields = records.get(prefix)
        for index, item in enumerate(value):
            if fields:
                if not isinstance(item, dict) or any(f not in item for f in fields):
                    raise ValueError(f"{prefix}[{index}] lacks one of its identifying fields {fields}")
                label = ",".join(f"{f}={item[f]}" for f in fields)
                rest = {k: v for k, v in item.items() if k not in fields}
                key = f"{prefix}[{label}]"
                if any(k.startswith(key + ".") or k == key for k in out):
                    raise ValueError(f"two records of {prefix} are both {label}")
                out.update(flatten(rest, records, key))
            else:
                out.update(flatten(item, records, f"{prefix}[{index}]"))
    else:
        out[prefix] = value
    return out


def collect(expected: dict, run_dir: Path) -> tuple[dict, list[str]]:
    """The run's kept numbers as {"file:key": value}, and the problems met reading them."""
    values, problems = {}, []
    for name, spec in expected["files"].items():
        path = run_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: cannot read {path}: {exc}")
            continue
        try:
            flat = flatten(data, spec.get("records", {}))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        keep = _patterns(spec["keep"])
        values.update({f"{name}:{k}": v for k, v in flat.items() if any(p.match(k) for p in keep)})
    return values, problems


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def tolerance_for(key: str, rules: list[dict]) -> tuple[float, float, dict | None]:
    for rule in rules:
        if any(p.match(key) for p in _patterns(rule["keys"])):
            return float(rule.get("abs", 0.0)), float(rule.get("rel", 0.0)), rule
    return 0.0, 0.0, None


def within(ours, expected, abs_tol: float, rel_tol: float) -> bool:
    if _is_number(ours) and _is_number(expected):
        if isinstance(ours, float) and isinstance(expected, float) and math.isnan(ours) and math.isnan(expected):
            return True
        return abs(ours - expected) <= max(abs_tol, rel_tol * abs(expected))
    return type(ours) is type(expected) and ours == expected


def compare(expected_values: dict, actual: dict, rules: list[dict], exact: bool = False) -> list[str]:
    failures = []
    for key, want in expected_values.items():
        if key not in actual:
            failures.append(f"MISSING  {key}: expected {want!r}, the run has no such key")
            continue
        got = actual[key]
        if exact:
            abs_tol, rel_tol, rule = EXACT_TOLERANCE, EXACT_TOLERANCE, None
        else:
            abs_tol, rel_tol, rule = tolerance_for(key, rules)
        if not within(got, want, abs_tol, rel_tol):
            if _is_number(got) and _is_number(want):
                allowed = max(abs_tol, rel_tol * abs(want))
                failures.append(f"CHANGED  {key}: {got!r} vs expected {want!r} (|diff| {abs(got - want):.3g} > "
                                f"allowed {allowed:.3g}{', rule ' + repr(rule['keys']) if rule else ''})")
            else:
                failures.append(f"CHANGED  {key}: {got!r} vs expected {want!r}")
    for key in sorted(set(actual) - set(expected_values)):
        failures.append(f"NEW      {key} = {actual[key]!r}: not in the expected file (accept it with --update)")
    return failures


def check_invariants(invariants: list[dict], actual: dict) -> list[str]:
    failures = []
    for inv in invariants:
        patterns = _patterns(inv["keys"])
        keys = [k for k in actual if any(p.match(k) for p in patterns)]
        if len(keys) < inv.get("min_matches", 1):
            failures.append(f"INVARIANT {inv['keys']!r}: matches {len(keys)} key(s), needs {inv.get('min_matches', 1)}")
        tol = float(inv.get("abs", 0.0))
        for key in keys:
            got = actual[key]
            if "sibling" in inv:
                other = key.rsplit(".", 1)[0] + "." + inv["sibling"]
                if other not in actual:
                    failures.append(f"INVARIANT {key}: no {other} to compare with (keep it in 'files')")
                    continue
                want = actual[other]
                ok = within(got, want, tol, 0.0) and _is_number(want)
                label = f"{other} = {want!r}"
            elif "at_least" in inv:
                want = inv["at_least"]
                ok = _is_number(got) and got >= want
                label = f"at least {want!r}"
            else:
                want = inv["equals"]
                ok = within(got, want, tol, 0.0)
                label = f"{want!r}"
            if not ok:
                failures.append(f"INVARIANT {key} = {got!r}, must be {label}"
                                f"{f' (within {tol:g})' if tol else ''}: {inv.get('why', '')}")
    return failures


def run_dir_of(results: Path) -> Path:
    return results if results.is_dir() else results.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("expected", type=Path, help="tests/expected/<profile>_results.json")
    parser.add_argument("results", type=Path, help="the run's results.json, or its run directory")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true",
                      help="rewrite the expected values from this run (tolerances and invariants are kept)")
    mode.add_argument("--exact", action="store_true",
                      help=f"ignore the cross-machine tolerances: every number to {EXACT_TOLERANCE:g} "
                           "(on the machine that wrote the expected file: a refactoring's acceptance check)")
    args = parser.parse_args(argv)

    try:
        expected = json.loads(args.expected.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"check_results: cannot read {args.expected}: {exc}", file=sys.stderr)
        return 2
    run_dir = run_dir_of(args.results)
    actual, problems = collect(expected, run_dir)
    invariant_failures = check_invariants(expected.get("invariants", []), actual)

    if args.update:
        if problems or invariant_failures:
            print("\n".join(problems + invariant_failures))
            print(f"check_results: NOT updating {args.expected}: the run above is broken", file=sys.stderr)
            return 1
        old = expected.get("values", {})
        changed = [k for k in actual if k in old and not within(actual[k], old[k], 0.0, 0.0)]
        print(f"check_results: {args.expected}: {len(changed)} changed, {len(set(actual) - set(old))} new, "
              f"{len(set(old) - set(actual))} dropped of {len(actual)} values")
        for key in changed:
            print(f"  {key}: {old[key]!r} -> {actual[key]!r}")
        expected["values"] = dict(sorted(actual.items()))
        args.expected.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0

    failures = problems + compare(expected.get("values", {}), actual, expected.get("tolerances", []),
                                  exact=args.exact) + invariant_failures
    for line in failures:
        print(line)
    verdict = "FAIL" if failures else "ok"
    print(f"check_results: {verdict}: {len(expected.get('values', {}))} expected values, "
          f"{len(expected.get('invariants', []))} invariants, {len(failures)} problem(s) "
          f"({run_dir} vs {args.expected}{', --exact' if args.exact else ''})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
