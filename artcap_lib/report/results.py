"""`results.json` of a run: every number of the tables (full precision), the captioner comparison, which models
ran, what was made and what is missing, with the run's provenance (commit, device, packages, notebooks)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from artcap_lib.report.inputs import RunInputs

SCHEMA = "artcap.report.results/1"


def results_json(cfg, paths, inputs: RunInputs, records1, records2, tables, made, captioner_recs=()) -> dict[str, Any]:
    from artcap_lib.retrieval import registry
    from artcap_lib.provenance import environment
    now = environment()
    manifest = inputs.manifest
    summary = inputs.experiment1 or {}
    return {
        "schema": SCHEMA,
        "profile": cfg.profile,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(paths.root), "figures_dir": str(paths.figures),
        "git": manifest.get("git") or now["git"],
        "device": manifest.get("device") or now["device"],
        "notebooks": manifest.get("notebooks", {}),
        "lock": manifest.get("lock") or now["lock"],
        "departures_from_sources": manifest.get("departures_from_sources", {}),
        "experiment1": {"split": summary.get("split"), "captioner": summary.get("captioner"),
                        "n_pairs": summary.get("n_pairs"), "bertscore": summary.get("bertscore"),
                        "spice": summary.get("spice"), "metrics": records1} if records1 else None,
        "experiment2": {"significance_test": cfg.report.significance_test, "alpha": cfg.report.alpha,
                        "source": next(iter(inputs.experiment2.values()), {}).get("source"),
                        "cells": records2} if records2 else None,
        "captioners": list(captioner_recs),
        "retrieval_models": [{"name": m, "title": registry.entry(m).title, "notebook": registry.entry(m).notebook,
                              "has_results": m in inputs.experiment2} for m in cfg.retrieval.models],
        "tables": {k: [str(p) for p in v] for k, v in tables.items()},
        "figures": {k: [str(p) for p in v] for k, v in made.items()},
        "missing": inputs.missing,
    }
