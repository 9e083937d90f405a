"""figures/<profile>/README.md: a run on one page (profile, date, commit, device, packages, headline numbers, the
tables, parity with the authors, the figures, what was not produced), written from its results.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from artcap_lib.report import comparison, figures
from artcap_lib.report.run_figures import FIGURES
from artcap_lib.report.tables import DAGGER, DOUBLE_DAGGER, HEADLINE_METRICS, markdown


def lock_line(lock: Mapping[str, Any] | None) -> str:
    """The run README's word on the packages: as locked, or which differ from requirements.lock."""
    if not lock or lock.get("matches") is None:
        return "no requirements.lock to compare with"
    if lock["matches"]:
        return f"as locked (requirements.lock, {lock['checked']} packages)"
    differing = ", ".join(f"{name} {d['installed'] or 'missing'} (locked {d['locked']})"
                          for name, d in sorted(lock["differing"].items()))
    return f"{len(lock['differing'])} differ from requirements.lock: {differing}"


def readme(results: Mapping[str, Any], shown1: pd.DataFrame | None, shown2: pd.DataFrame | None,
           shown3: pd.DataFrame | None = None) -> str:
    """figures/<profile>/README.md: the run on one page, for readers who would rather not run it."""
    git, device = results.get("git") or {}, results.get("device") or {}
    hardware = ", ".join(device.get("gpus") or []) or f"CPU ({device.get('cpu_count', '?')} cores)"
    wall = sum(v.get("wall_s", 0) for v in results.get("notebooks", {}).values())
    lines = [f"# artcap run: profile `{results['profile']}`", "",
             f"Generated {results['generated_at']} by notebook 06 from `{results['run_dir']}`.", "",
             f"- commit: `{git.get('commit')}`{' (with uncommitted changes)' if git.get('dirty') else ''}",
             f"- device: {hardware}; {device.get('platform', '')}, Python {device.get('python', '?')}",
             f"- notebooks run before this report: {', '.join(results.get('notebooks', {})) or 'none recorded'}"
             + (f" ({wall:.0f} s of notebook time)" if wall else ""),
             f"- packages: {lock_line(results.get('lock'))}"]
    departures = results.get("departures_from_sources") or {}
    if departures:
        lines.append("- departs from the profile's sources (`artcap profile`): " + "; ".join(
            f"`{k}` = {d['value']!r} (source: {d['source_value']!r})" for k, d in sorted(departures.items())))
    lines += ["", "## Headline numbers", ""]
    lines += headlines(results) or ["No results yet (see below)."]
    if shown1 is not None:
        lines += ["", "## Table 1: Experiment 1", "", markdown(shown1)]
    if shown2 is not None:
        with_authors = any(c["authors"] is not None for c in results["experiment2"]["cells"])
        lines += ["", "## Table 2: Experiment 2", "", markdown(shown2),
                  "", f"{DAGGER} / {DOUBLE_DAGGER}: differs from baseline / human-ft, p < "
                      f"{results['experiment2']['alpha']} ({results['experiment2']['significance_test']})"
                      + ("; (x) = the authors' value." if with_authors else ".")]
    if shown3 is not None:
        lines += ["", "## Captioners compared", "", markdown(shown3), "",
                  comparison.notes(results["captioners"]).replace("\n", "  \n")]
    lines += _parity_lines(results)
    if results["figures"]:
        lines += ["", "## Figures", ""]
        for name, files in results["figures"].items():
            png = next((Path(f).name for f in files if f.endswith(".png")), Path(files[0]).name)
            lines += [f"**{FIGURES[name]}**", "", f"![{name}]({png})", ""]
    if results["missing"]:
        lines += ["", "## Not produced in this run", ""] + [f"- {m}" for m in results["missing"]]
    return "\n".join(lines) + "\n"


def headlines(results: Mapping[str, Any]) -> list[str]:
    lines = []
    exp1 = results.get("experiment1")
    if exp1:
        by_metric = {r["metric"]: r for r in exp1["metrics"]}
        parts = [f"{r['name']} {r['mean']:.3f}" + (f" (shuffled {r['control']:.3f})" if r["control"] is not None
                                                   else "") for m in HEADLINE_METRICS if (r := by_metric.get(m))]
        lines.append(f"- Experiment 1 ({exp1['n_pairs']} {exp1['split']} pairs, {exp1['captioner']} vs human): "
                     + "; ".join(parts) + ".")
    exp2 = results.get("experiment2")
    if exp2:
        cells = {(c["model"], c["query_set"], c["variant"], c["metric"]): c for c in exp2["cells"]}
        for model, query_set in dict.fromkeys((c["model"], c["query_set"]) for c in exp2["cells"]):
            parts = []
            for variant in ("baseline", "human", "synthetic"):
                p1, mrr = cells.get((model, query_set, variant, "precision@1")), cells.get((model, query_set,
                                                                                           variant, "mrr"))
                if p1 and mrr:
                    parts.append(f"{figures.label(variant, figures.VARIANT_LABELS)} P@1 {p1['value']:.3f}"
                                 f"{p1['marks']} / MRR {mrr['value']:.3f}{mrr['marks']}")
            lines.append(f"- Experiment 2, {figures.label(model, figures.MODEL_LABELS)}, "
                         f"{figures.label(query_set, figures.QUERY_SET_LABELS)}: " + "; ".join(parts) + ".")
    return lines


def _parity_lines(results: Mapping[str, Any]) -> list[str]:
    """README lines on how close ours are to the authors' values (none where no authors' value is known)."""
    per_image = [r for r in (results.get("experiment1") or {}).get("metrics", [])
                 if r["authors"] is not None and r["authors_max_abs_diff"] is not None]
    cells = [c for c in (results.get("experiment2") or {}).get("cells", []) if c["authors"] is not None]
    if not per_image and not cells:
        return []
    lines = ["", "## Parity with the authors' values", ""]
    if per_image:
        lines += ["Experiment 1, per image against their stored scores (max |ours - theirs|, share within 1e-6):", ""]
        lines += [f"- {r['name']}: {r['authors_max_abs_diff']:.2g}, {r['authors_fraction_exact']:.1%} exact"
                  for r in per_image]
        lines += [""] if cells else []
    if cells:
        worst = max(abs(c["value"] - c["authors"]) for c in cells)
        lines.append(f"Experiment 2: {len(cells)} cells with an authors' value; largest |ours - theirs| = {worst:.2g}.")
    return lines
