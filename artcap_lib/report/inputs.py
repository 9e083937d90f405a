"""What notebook 06 reads from a run directory, collected once (`collect`) into `RunInputs` for the tables,
figures, results.json and README. An input a step has not written is no error: `missing` says which step makes it."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from artcap_lib.files import read_json


@dataclass
class RunInputs:
    """Everything notebook 06 reads from a run directory; absent inputs are None/empty and listed in `missing`."""
    experiment1: dict | None = None                       # metrics/summary.json (the first captioner's)
    per_image: pd.DataFrame | None = None                 # metrics/per_image.parquet
    control: pd.DataFrame | None = None                   # metrics/control_per_image.parquet (shuffled pairs)
    experiment2: dict[str, dict] = field(default_factory=dict)   # model -> results (runs' schema)
    authors2: dict[str, dict] = field(default_factory=dict)      # model -> results of the authors' stored runs
    histories: dict[str, dict[str, dict]] = field(default_factory=dict)   # model -> variant -> history.json
    manifest: dict = field(default_factory=dict)          # the run's manifest.json
    captioners: list[dict] = field(default_factory=list)  # [{name, model, prompt, variant}], the profile's order
    captioner_summaries: dict[str, dict] = field(default_factory=dict)   # name -> its Experiment 1 summary.json
    captioner_per_image: dict[str, pd.DataFrame] = field(default_factory=dict)   # name -> its per_image table
    missing: list[str] = field(default_factory=list)      # what is absent, and which step writes it


def collect(cfg, paths) -> RunInputs:
    inputs = RunInputs()
    inputs.manifest = read_json(paths.manifest) if paths.manifest.is_file() else {}
    _collect_experiment1(paths, inputs)
    _collect_captioners(cfg, paths, inputs)
    _collect_experiment2(cfg, paths, inputs)
    _collect_histories(cfg, paths, inputs)
    return inputs


def _collect_experiment1(paths, inputs: RunInputs) -> None:
    summary = paths.metrics_summary()
    if summary.is_file():
        inputs.experiment1 = read_json(summary)
    else:
        inputs.missing.append(f"Table 1: {summary} not found (step 03, caption metrics, has not run)")
    per_image = paths.metrics_per_image()
    if per_image.is_file():
        inputs.per_image = pd.read_parquet(per_image)
    else:
        inputs.missing.append(f"metric distributions: {per_image} not found (step 03, caption metrics)")
    control = paths.metrics_control()
    if control.is_file():
        inputs.control = pd.read_parquet(control)


def _collect_captioners(cfg, paths, inputs: RunInputs) -> None:
    """Every captioner of the profile, with its Experiment 1 files where step 03 wrote them."""
    from artcap_lib.config import captioner_variant, captioners
    from artcap_lib.textmetrics.step import output_dir
    for spec in captioners(cfg):
        inputs.captioners.append({"name": spec.name, "model": spec.model, "prompt": spec.prompt,
                                  "variant": captioner_variant(cfg, spec.name)})
        folder = output_dir(cfg, paths, spec.name)
        if paths.metrics_summary(folder).is_file():
            inputs.captioner_summaries[spec.name] = read_json(paths.metrics_summary(folder))
        elif len(inputs.captioners) > 1:
            inputs.missing.append(f"captioner comparison: {paths.metrics_summary(folder)} not found (step 03)")
        if paths.metrics_per_image(folder).is_file():
            inputs.captioner_per_image[spec.name] = pd.read_parquet(paths.metrics_per_image(folder))


def _collect_experiment2(cfg, paths, inputs: RunInputs) -> None:
    from artcap_lib.retrieval import registry
    if cfg.retrieval.source == "reference":
        if paths.reference_results.is_file():
            inputs.experiment2 = read_json(paths.reference_results)["models"]
        else:
            inputs.missing.append(f"Table 2: {paths.reference_results} not found (steps 04/05 import the authors' "
                                  "runs in the reference profile)")
        return
    for model in cfg.retrieval.models:
        results = paths.retrieval_results(model)
        if results.is_file():
            inputs.experiment2[model] = read_json(results)
        else:
            entry = registry.entry(model)
            inputs.missing.append(f"Table 2: {results} not found (step {entry.notebook}, {entry.title}, has not run)")
    if cfg.report.compare_with_authors and inputs.experiment2:
        inputs.authors2 = _authors_experiment2(cfg, paths, inputs.missing)


def _authors_experiment2(cfg, paths, missing: list[str]) -> dict[str, dict]:
    """The authors' runs evaluated like ours (retrieval/reference_results.json, made here when absent)."""
    if paths.reference_results.is_file():
        return read_json(paths.reference_results)["models"]
    from artcap_lib import reference
    from artcap_lib.retrieval import runs
    try:
        return runs.reference_experiment2(paths, bootstrap=cfg.retrieval.bootstrap,
                                          randomisation=cfg.retrieval.randomisation, seed=cfg.seed)["models"]
    except reference.ReferenceError as err:
        missing.append(f"authors' values in Table 2: the reference artefacts are not available ({err})")
        return {}


def _collect_histories(cfg, paths, inputs: RunInputs) -> None:
    """The shared training loop's history.json of every fine-tuned variant of every model of the run."""
    from artcap_lib.retrieval.experiment import fine_tuned_variants
    for model in cfg.retrieval.models:
        found = {variant: read_json(paths.history(model, variant)) for variant in fine_tuned_variants(cfg)
                 if paths.history(model, variant).is_file()}
        if found:
            inputs.histories[model] = found
    if not inputs.histories:
        inputs.missing.append(f"training curves: no {paths.history('<model>', '<variant>')} "
                              "(steps 04/05 fine-tune; the reference profile trains nothing)")
