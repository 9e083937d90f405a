"""Experiment 2 with Long-CLIP end to end on a micro demo collection: files written, reuse, CLI conversions."""
from __future__ import annotations

import json

import pytest

from artcap_lib import cli
from artcap_lib.retrieval.longclip import model as longclip
from artcap_lib.retrieval.longclip import experiment as longclip_experiment
from artcap_lib.retrieval import runs
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.config import RunPaths
from artcap_lib.config import load_profile


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """A micro demo run (16/8/8 images, 48-image pool) with synthetic captions, through run_experiment once."""
    root = tmp_path_factory.mktemp("run")
    cfg = load_profile("demo", {"run_dir": str(root), "longclip.pretrain_epochs": 1, "longclip.epochs": 2,
                                "longclip.batch_size": 8, "longclip.pretrain_batch_size": 16,
                                "longclip.eval_batch_size": 8, "metrics.bootstrap": 20,
                                "retrieval.bootstrap": 20, "retrieval.randomisation": 50})
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=16, val=8, test=8, pretrain=48), image_size=32, seed=0)
    artworks = json.loads(paths.artworks.read_text())
    paths.captions.mkdir(parents=True)
    with open(paths.caption_file(cfg.captioning.name), "w") as fh:
        for art_id, entry in artworks.items():
            fh.write(json.dumps({"id": art_id, "caption": f"The image features {entry['title'].lower()}.",
                                 "model": "test", "prompt": "", "decoding": "greedy", "new_tokens": 0,
                                 "seconds": 0.0}) + "\n")
    summary = longclip_experiment.run_experiment(cfg, paths, progress=None)
    return cfg, paths, summary


def test_every_variant_is_trained_scored_and_summarised(micro_run):
    cfg, paths, summary = micro_run
    out = longclip_experiment.model_dir(paths)
    results = json.loads((out / "results.json").read_text())
    assert set(results["query_sets"]) == {"artpedia"} and summary["missing_query_sets"] == []
    assert set(results["query_sets"]["artpedia"]["variants"]) == {"baseline", "human", "synthetic"}
    assert json.loads((out / "cosine" / "results.json").read_text())["query_sets"]["artpedia"]["n_queries"] == 8
    for variant in ("human", "synthetic"):
        assert (out / variant / "model" / "config.json").is_file()
        assert not (out / variant / "training" / "checkpoint.pt").exists()    # keep_checkpoint false
        history = json.loads((out / variant / "training" / "history.json").read_text())
        assert [e["epoch"] for e in history["epochs"]][0] == 0 and history["finished"]
        assert summary["fine_tunes"][variant]["truncation"]["train"]["captions"] == 16
    run = runs.load_run(out / "baseline" / "run_artpedia.json")
    assert len(run) == 8 and all(len(docs) == 8 for docs in run.values())
    assert set(summary["image_to_text"]["human"]["artpedia"]) >= {"recall@1", "mrr"}
    assert summary["chance_recall@1"] == 1 / 8 and (paths.models / "pocket-longclip" / "model").is_dir()
    histories = longclip_experiment.load_histories(paths)
    assert set(histories) == {"pocket pre-training", "human", "synthetic"}
    examples = longclip_experiment.retrieval_examples(cfg, paths, "human", n=2, k=3)
    assert len(examples) == 2 and all(len(e["hits"]) == 3 and e["hits"][0]["image"].is_file() for e in examples)


def test_a_finished_run_is_reused_not_retrained(micro_run):
    cfg, paths, summary = micro_run
    before = (longclip_experiment.model_dir(paths) / "human" / "fine_tune.json").stat().st_mtime_ns
    again = longclip_experiment.run_experiment(cfg, paths, variants=["human"], progress=None)
    assert (longclip_experiment.model_dir(paths) / "human" / "fine_tune.json").stat().st_mtime_ns == before
    assert again["fine_tunes"]["human"] == summary["fine_tunes"]["human"]
    with pytest.raises(ValueError, match="unknown Long-CLIP variant"):
        longclip_experiment.run_experiment(cfg, paths, variants=["llava"], progress=None)


def test_cli_exports_to_the_original_layout_and_converts_back(micro_run, tmp_path):
    _, paths, _ = micro_run
    model_dir = longclip_experiment.model_dir(paths) / "human" / "model"
    assert cli.main(["longclip", "export", str(model_dir), str(tmp_path / "longclip-human.pt")]) == 0
    assert cli.main(["longclip", "convert", str(tmp_path / "longclip-human.pt"), str(tmp_path / "hf"),
                     "--tokenizer", str(model_dir)]) == 0
    original, converted = longclip.load_model(model_dir), longclip.load_model(tmp_path / "hf")
    for key, value in original.model.state_dict().items():
        assert (converted.model.state_dict()[key] == value).all(), key
