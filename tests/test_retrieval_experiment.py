"""The Experiment-2 runner over the model protocol, on a third model added as one module (tests/twotower.py) plus
one registry line: files, reuse, one scoring process under torchrun, the report and the training benchmark."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from artcap_lib.config import RunPaths, captioners, load_profile
from artcap_lib.data.artpedia import ordered_ids
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.files import read_json
from artcap_lib.retrieval import displays, experiment, registry, runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = Path(__file__).parent
ENTRY = registry.Entry("twotower:TwoTower", "two-tower", "test")     # the one line a new model adds
# (registered after the profile class is built: the model runs on its Settings' defaults)


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(registry.MODELS, "twotower", ENTRY)


def make_run(root: Path, overrides: dict | None = None):
    """A tiny demo collection (16/8/8 images, a 32-image pool) with synthetic captions."""
    cfg = load_profile("demo", {"run_dir": str(root), "figures_dir": str(root / "figures"), "retrieval.bootstrap": 20,
                                "retrieval.randomisation": 50, "retrieval.models": ["blip", "twotower"],
                                **(overrides or {})})
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=16, val=8, test=8, pretrain=32), image_size=16, seed=0)
    artworks = read_json(paths.artworks)
    paths.captions.mkdir(parents=True)
    for spec in captioners(cfg):
        with open(paths.caption_file(spec.name), "w") as fh:
            for art_id, entry in artworks.items():
                fh.write(json.dumps({"id": art_id, "caption": f"{spec.prompt}: {entry['title'].lower()}."}) + "\n")
    return cfg, paths


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(registry.MODELS, "twotower", ENTRY)
    cfg, paths = make_run(tmp_path_factory.mktemp("run"))
    out = experiment.run(cfg, paths, "twotower", progress=None)
    yield cfg, paths, out
    mp.undo()


def test_ordered_ids_numeric_when_every_id_is_an_integer():
    assert ordered_ids(["23", "3", "2", "100"]) == ["2", "3", "23", "100"]
    assert ordered_ids(["b", "a10", "a9"]) == ["a10", "a9", "b"]
    assert ordered_ids(["10", "x", "9"]) == ["10", "9", "x"]          # one non-integer: string order for all
    assert ordered_ids(["01", "1", "0"]) == ["0", "01", "1"]


def test_every_variant_is_trained_scored_and_summarised(finished):
    cfg, paths, out = finished
    assert out["source"] == runs.SOURCE == "artcap" and out["title"] == "two-tower"
    assert paths.pocket_model("pocket-twotower").is_dir() and paths.pocket_history("pocket-twotower").is_file()
    for variant in ("human", "synthetic"):
        record = read_json(paths.fine_tune_record("twotower", variant))
        assert record["epochs_run"] == 3 and record["monitor"] == "val_loss" and record["settings"]["lr"] == 0.05
        assert (paths.variant_model("twotower", variant) / "weights.pt").is_file()
        assert not (paths.training_dir("twotower", variant) / "checkpoint.pt").exists()      # keep_checkpoint off
    for kind in (None, "cosine"):                        # the main kind in the model's folder, the other in its own
        results = read_json(paths.retrieval_results("twotower", kind))
        assert set(results["query_sets"]["artpedia"]["variants"]) == {"baseline", "human", "synthetic"}
        run = runs.load_run(runs.run_path(paths.score_dir("twotower", kind), "human", "artpedia"))
        test_ids = ordered_ids(i for i, a in read_json(paths.artworks).items() if a["split"] == "test")
        assert list(run) == test_ids and all(len(docs) == 8 for docs in run.values())
    assert read_json(paths.retrieval_results("twotower", "cosine"))["model"] == "twotower (cosine)"
    s = out["summary"]
    assert s["n"] == {"train": 16, "val": 8, "test": 8} and s["chance_recall@1"] == 1 / 8
    assert s["baseline"] == str(paths.pocket_model("pocket-twotower"))
    assert set(s["test_metrics"]) == {"dot", "cosine"} and set(s["image_to_text"]) == {"baseline", "human", "synthetic"}
    # the summary's test metrics are those of the runs written (retrieval_eval's ties = the runs' ties)
    main = out["results"]["query_sets"]["artpedia"]["variants"]
    for variant, per_set in s["test_metrics"]["dot"].items():
        assert per_set["artpedia"]["mrr"] == pytest.approx(main[variant]["metrics"]["mrr"])
    truncation = read_json(paths.truncation("twotower"))
    assert set(truncation["training"]) == {"human", cfg.captioning.name}
    assert truncation["training"]["human"]["captions"] == 16 and truncation["queries"]["artpedia"]["captions"] == 8
    assert set(out["histories"]) == {experiment.POCKET_HISTORY, "human", "synthetic"}


def test_displays_and_figures_serve_any_model(finished):
    cfg, paths, out = finished
    from artcap_lib.report import figures
    assert "8 test images with dot product scores" in displays.describe(out)
    assert len(displays.results_table(out["results"])) == 3 and len(displays.chance_table(out)) == 3
    kinds = displays.score_kinds_table(out)
    assert {"dot product mrr", "cosine mrr"} <= set(kinds.columns)
    assert set(displays.truncation_table(out)["use"]) == {"training", "queries"}
    assert len(displays.significance_table(out["results"])) == 6          # 3 pairs x P@1, MRR
    examples = displays.retrieval_examples(cfg, paths, "twotower", "human", n=2, k=3)
    assert len(examples) == 2 and all(len(e["hits"]) == 3 and e["hits"][0]["image"].is_file() for e in examples)
    figures.retrieval_examples(examples, title="human")
    fig = figures.training_curves({"twotower": out["histories"]})
    assert len(fig.axes) == 3                     # one loss, no parts: loss, validation, learning rate
    assert displays.headlines(out)[0] == "two-tower (ours):"


def test_a_finished_run_is_reused_not_retrained(finished, monkeypatch):
    cfg, paths, out = finished
    before = paths.fine_tune_record("twotower", "human").stat().st_mtime_ns
    import twotower

    def fail(*args, **kwargs):
        raise AssertionError("a finished fine-tune or pocket pre-training ran again")
    monkeypatch.setattr(twotower.TwoTower, "fine_tune", fail)
    monkeypatch.setattr(twotower.TwoTower, "pretrain_pocket", fail)
    again = experiment.run(cfg, paths, "twotower", variants=["human"], progress=None)
    assert paths.fine_tune_record("twotower", "human").stat().st_mtime_ns == before
    assert again["summary"]["fine_tunes"]["human"] == out["summary"]["fine_tunes"]["human"]
    assert again["summary"]["variants"] == ["human"]
    with pytest.raises(ValueError, match="unknown variant"):
        experiment.run(cfg, paths, "twotower", variants=["llava"], progress=None)


def test_the_report_reads_every_model_of_the_profile(finished):
    cfg, paths, out = finished
    from artcap_lib.report import inputs as report_inputs
    inputs = report_inputs.RunInputs()
    report_inputs._collect_experiment2(cfg, paths, inputs)
    report_inputs._collect_histories(cfg, paths, inputs)
    assert inputs.experiment2["twotower"] == out["results"]
    assert set(inputs.histories["twotower"]) == {"human", "synthetic"}
    assert any("step 04, BLIP" in m for m in inputs.missing)            # BLIP has not run in this directory


def test_the_training_benchmark_times_any_model():
    from artcap_lib.bench.train import benchmark_training
    out = benchmark_training("twotower", batch_size=4, steps=2, warmup=1, device="cpu")
    assert out["model"] == "twotower" and out["batch_size"] == 4 and out["images_per_second"] > 0
    assert out["source"] == "two-tower (untrained)" and out["steps"] == 2


SETTINGS_SCRIPT = """
import argparse, sys
sys.path.insert(0, {tests!r})
from twotower_settings import Settings
from artcap_lib.retrieval import registry
# the one line a model with settings adds to registry.MODELS (here before the profile class is built, as there)
registry.MODELS["twotower"] = registry.Entry("twotower:TwoTower", "two-tower", "test", Settings)
from artcap_lib.config import ProfileError, load_profile, values
from artcap_lib.cli.options import add_profile_options
cfg = load_profile("demo", {{"twotower.epochs": 2}})
print("epochs", cfg.twotower.epochs, "lr", cfg.twotower.lr, "listed", "twotower.max_words" in values(cfg))
try:
    load_profile("demo", {{"twotower.lr": 0}})
except ProfileError as exc:
    print("refused", str(exc).split(": ", 1)[1])
parser = argparse.ArgumentParser()
add_profile_options(parser, "twotower")
print("help", next(a.help for a in parser._actions if a.dest == "profile:twotower.batch_size"))
"""


def test_a_model_with_settings_is_one_registry_line_and_its_settings_module():
    done = subprocess.run([sys.executable, "-c", SETTINGS_SCRIPT.format(tests=str(TESTS))], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "epochs 2 lr 0.05 listed True",                              # a profile section, the YAML layout's key
        "refused twotower.lr: must be greater than 0, got 0.0",      # its rule, declared on its field
        "help pairs per step [twotower.batch_size]",                 # its --help, from the field's metadata
    ]


TORCHRUN_SCRIPT = """
import json, os, sys, time
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.retrieval import experiment, registry
registry.MODELS["twotower"] = registry.Entry("twotower:TwoTower", "two-tower", "test")
cfg = load_profile("demo", {overrides!r})
out = experiment.run(cfg, RunPaths.for_profile(cfg), "twotower", progress=None)
with open(os.path.join({root!r}, "rank" + os.environ["RANK"] + ".json"), "w") as fh:
    json.dump({{"returned": time.time(), "test_metrics": out["summary"]["test_metrics"]}}, fh)
"""


def test_under_torchrun_one_process_scores_and_writes_the_other_waits(tmp_path):
    cfg, paths = make_run(tmp_path / "run", {"device": "cpu"})
    log = tmp_path / "score.log"
    overrides = {"run_dir": str(paths.root), "retrieval.bootstrap": 20, "retrieval.randomisation": 50,
                 "device": "cpu"}
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT.format(tests=str(TESTS), overrides=overrides,
                                                             root=str(tmp_path))))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), str(script)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TWOTOWER_LOG": str(log), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    scored = [line.split() for line in log.read_text().splitlines()]
    assert len(scored) == 3 and {rank for rank, _, _ in scored} == {"0"}    # 3 variants, scored by rank 0 only
    last_scoring_end = max(float(end) for _, _, end in scored)
    ranks = [read_json(tmp_path / f"rank{r}.json") for r in (0, 1)]
    assert ranks[1]["returned"] >= last_scoring_end                          # rank 1 waited at the barrier
    assert ranks[0]["test_metrics"] == ranks[1]["test_metrics"]              # and read what rank 0 wrote
    record = read_json(paths.fine_tune_record("twotower", "human"))
    assert record["world_size"] == 2
    assert read_json(paths.retrieval_summary("twotower"))["test_metrics"] == ranks[0]["test_metrics"]


def test_ids_that_are_not_integers_run_through_the_experiment(tmp_path):
    """Notebook 05 crashed on int('x1') for ids the schema accepts; the one id order takes any valid id."""
    cfg, paths = make_run(tmp_path / "run")
    artworks = read_json(paths.artworks)
    renamed = {f"x{art_id}": entry for art_id, entry in artworks.items()}
    paths.artworks.write_text(json.dumps(renamed))
    captions = [json.loads(line) for line in paths.caption_file(cfg.captioning.name).read_text().splitlines()]
    paths.caption_file(cfg.captioning.name).write_text(
        "".join(json.dumps({**c, "id": f"x{c['id']}"}) + "\n" for c in captions))
    out = experiment.run(cfg, paths, "twotower", progress=None)
    run = runs.load_run(paths.variant("twotower", "human") / "run_artpedia.json")
    assert list(run) == ordered_ids(run) and all(q.startswith("x") for q in run)
    assert out["results"]["query_sets"]["artpedia"]["variants"]["human"]["n_queries"] == 8


def test_each_further_captioner_gets_its_own_fine_tune_beside_human(tmp_path):
    two = {"captioning.captioners": [{"name": "first", "model": "pocket-llava"},
                                     {"name": "second", "model": "pocket-llava", "prompt": "Describe"}]}
    cfg, paths = make_run(tmp_path, two)
    out = experiment.run(cfg, paths, "twotower", progress=None)
    assert out["summary"]["variants"] == ["baseline", "human", "synthetic", "synthetic-second"]
    variants = out["results"]["query_sets"]["artpedia"]["variants"]
    assert set(variants) == {"baseline", "human", "synthetic", "synthetic-second"}
    pairs = {(t["a"], t["b"]) for t in out["results"]["query_sets"]["artpedia"]["significance"]}
    assert ("human", "synthetic-second") in pairs or ("synthetic-second", "human") in pairs
    # each fine-tune saw its own captioner's captions
    for variant, prompt in (("synthetic", "Caption this image"), ("synthetic-second", "Describe")):
        assert read_json(paths.fine_tune_record("twotower", variant))["variant"] == variant
        data = experiment.load_inputs(cfg, paths).training_data(variant)
        assert all(c.startswith(f"{prompt}: ") for c in data.captions.values())
    assert set(read_json(paths.truncation("twotower"))["training"]) == {"human", "first", "second"}
    with pytest.raises(ValueError, match="not fine-tuned in this profile"):
        experiment.fine_tune(cfg, paths, "twotower", "synthetic-third", progress=None)


def test_several_captions_per_painting_are_each_a_query_of_their_painting(tmp_path):
    """A collection with several human captions per image: every caption is a query (id#k) whose one relevant item
    is its painting, image-to-text finds a painting by any of its captions, and the explorer shows per-query ranks
    and, per painting, their mean."""
    from artcap_lib.report import explore
    cfg, paths = make_run(tmp_path / "run")
    artworks = read_json(paths.artworks)
    for n, entry in enumerate(artworks.values()):
        first = " ".join(entry["visual_sentences"])
        entry["human_captions"] = [first, f"another view: {entry['title'].lower()}"][: 1 + n % 2]
    paths.artworks.write_text(json.dumps(artworks))
    test_ids = ordered_ids(i for i, a in artworks.items() if a["split"] == "test")
    out = experiment.run(cfg, paths, "twotower", progress=None)
    captions = {i: artworks[i]["human_captions"] for i in test_ids}
    expected = {f"{i}#{k}": {i: 1} for i in test_ids for k in range(1, len(captions[i]) + 1)}
    assert runs.load_qrels(paths.score_dir("twotower") / "qrels_artpedia.json") == expected
    run = runs.load_run(paths.variant("twotower", "human") / "run_artpedia.json")
    assert set(run) == set(expected) and len(expected) > len(test_ids)
    assert out["summary"]["n_queries"] == {"artpedia": len(expected)}
    assert out["results"]["query_sets"]["artpedia"]["variants"]["human"]["n_queries"] == len(expected)

    view = explore.load(cfg, paths)
    ranks = view.query_ranks[("twotower", "human", "artpedia")]
    assert set(ranks) == set(expected)
    several = next(i for i in test_ids if len(captions[i]) == 2)
    assert view.queries_of("artpedia", several) == [f"{several}#1", f"{several}#2"]
    assert view.queries["artpedia"][f"{several}#2"] == captions[several][1]
    column = view.rank_column("twotower", "human", "artpedia")
    assert view.table.loc[several, column] == pytest.approx((ranks[f"{several}#1"] + ranks[f"{several}#2"]) / 2)
    with np.load(paths.variant("twotower", "human") / "scores_artpedia.npz") as data:
        scores, query_ids = data["scores"], list(data["query_ids"])
    row = query_ids.index(f"{several}#2")
    assert ranks[f"{several}#2"] == 1 + int((scores[row] > scores[row, test_ids.index(several)]).sum())
    # image-to-text: an image is found at the best rank of any of its captions (the hit convention)
    found = []
    for j, painting in enumerate(test_ids):
        own = [q for q, qid in enumerate(query_ids) if qid.split("#")[0] == painting]
        found.append(1 + int((scores[:, j] > scores[own, j].max()).sum()) <= 1)
    assert out["summary"]["image_to_text"]["human"]["artpedia"]["recall@1"] == pytest.approx(np.mean(found))
    # notebook 04/05's example queries: a hit is relevant when it is the query's painting (the query id is id#k)
    examples = displays.retrieval_examples(cfg, paths, "twotower", "human", n=len(expected), k=len(test_ids))
    for example in examples:
        relevant = [hit["id"] for hit in example["hits"] if hit["relevant"]]
        assert relevant == [example["query_id"].split("#")[0]], example["query_id"]
