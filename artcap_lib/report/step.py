"""Notebook 06's step: from one run directory, the paper's tables and figures, `results.json` and a README.

Reads what steps 01-05 wrote (never their notebooks' outputs; `inputs`) and writes:

    <figures>/tables/table1_experiment1.{tex,md}    Table 1 (`tables`)
    <figures>/tables/table2_experiment2.{tex,md}    Table 2 (`tables`)
    <figures>/tables/captioner_comparison.{tex,md}  runs with several captioners: Experiment 1 and 2 per captioner
                                                    (`comparison`)
    <figures>/<figure>.{png,pdf}                    see run_figures.FIGURES
    <figures>/README.md                             the run in one page (`readme`)
    <run>/results.json                              every number in the tables (full precision) + provenance
                                                    (`results`)

Where the authors' values are known (the reference profile; the paper profile with the reference artefacts at
hand) each table cell shows ours beside theirs, "ours (authors')". A step that has not run, or a profile that has
no such step, is not an error here: the table or figure is left out and `missing` says which step makes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from artcap_lib.files import atomic_write_text, write_json
from artcap_lib.report import comparison
from artcap_lib.report.inputs import RunInputs, collect
from artcap_lib.report.readme import readme
from artcap_lib.report.results import results_json
from artcap_lib.report.run_figures import captioner_records, make_figures
from artcap_lib.report.tables import (table1, table1_notes, table1_records, table2, table2_notes, table2_parity,
                                      table2_records, write_table)


@dataclass
class Report:
    inputs: RunInputs
    table1: pd.DataFrame | None                 # as shown (strings)
    table2: pd.DataFrame | None
    parity: pd.DataFrame                        # Table 2: max |ours - authors'| per model, query set, metric
    tables: dict[str, list[Path]]
    figures: dict[str, list[Path]]
    results: dict[str, Any]                     # = results.json
    captioners: pd.DataFrame | None = None      # the captioner comparison (runs with several captioners)


def run(cfg, paths) -> Report:
    """Collect the run's results, write both tables, every figure, results.json and the README."""
    decimals, test, alpha = cfg.report.decimals, cfg.report.significance_test, cfg.report.alpha
    if test not in ("ttest", "randomisation"):
        raise ValueError(f"report.significance_test must be ttest or randomisation, got {test!r}")
    inputs = collect(cfg, paths)
    tables: dict[str, list[Path]] = {}
    records1 = table1_records(inputs.experiment1) if inputs.experiment1 else []
    shown1 = table1(records1, decimals) if records1 else None
    if shown1 is not None:
        tables["table1_experiment1"] = write_table(
            "table1_experiment1", shown1, shown1,
            "Table 1: Experiment 1, similarity of synthetic and human captions", table1_notes(inputs.experiment1),
            paths.tables)
    records2 = table2_records(inputs, test, alpha)
    shown2 = table2(records2, decimals) if records2 else None
    if shown2 is not None:
        tables["table2_experiment2"] = write_table(
            "table2_experiment2", shown2, table2(records2, decimals, latex=True),
            "Table 2: Experiment 2, text-to-image retrieval after fine-tuning on human or synthetic captions",
            table2_notes(inputs, test, alpha), paths.tables)
    recs = captioner_records(cfg, inputs)
    shown3 = None
    if len(inputs.captioners) > 1 and any(r["experiment1"] or r["experiment2"] for r in recs):
        shown3 = comparison.table(recs, decimals, alpha)
        tables["captioner_comparison"] = write_table(
            "captioner_comparison", shown3, shown3,
            "Captioners compared: Experiment 1 and Experiment 2 per captioner", comparison.notes(recs, alpha),
            paths.tables)
    made = make_figures(cfg, paths, inputs)
    results = results_json(cfg, paths, inputs, records1, records2, tables, made, recs)
    write_json(paths.root / "results.json", results)
    atomic_write_text(paths.figures / "README.md", readme(results, shown1, shown2, shown3))
    return Report(inputs, shown1, shown2, table2_parity(inputs), tables, made, results, shown3)
