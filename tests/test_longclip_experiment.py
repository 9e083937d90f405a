"""Experiment 2 with Long-CLIP end to end on a micro demo collection: files written, reuse, CLI conversions."""
from __future__ import annotations

import json

import pytest

from artcap_lib import cli
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.retrieval import displays, experiment, runs
from artcap_lib.retrieval.longclip import model as longclip
from artcap_lib.model_names import POCKET_LONGCLIP


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """A micro demo run (16/8/8 images, 48-image pool) with synthetic captions, through the runner once."""
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
    out = experiment.run(cfg, paths, "longclip", progress=None)
    return cfg, paths, out


def test_every_variant_is_trained_scored_and_summarised(micro_run):
    cfg, paths, out = micro_run
    summary = out["summary"]
    results = json.loads(paths.retrieval_results("longclip").read_text())
    assert set(results["query_sets"]) == {"artpedia"} and summary["missing_query_sets"] == []
    assert set(results["query_sets"]["artpedia"]["variants"]) == {"baseline", "human", "synthetic"}
    assert json.loads(paths.retrieval_results("longclip", "cosine").read_text())["query_sets"]["artpedia"][
        "n_queries"] == 8
    for variant in ("human", "synthetic"):
        assert (paths.variant_model("longclip", variant) / "config.json").is_file()
        assert not (paths.training_dir("longclip", variant) / "checkpoint.pt").exists()    # keep_checkpoint false
        history = json.loads(paths.history("longclip", variant).read_text())
        assert [e["epoch"] for e in history["epochs"]][0] == 0 and history["finished"]
        assert summary["fine_tunes"][variant]["truncation"]["train"]["captions"] == 16
    assert out["truncation"]["training"]["human"]["captions"] == 16
    assert out["truncation"]["queries"]["artpedia"]["max_length"] == 248
    run = runs.load_run(runs.run_path(paths.score_dir("longclip"), "baseline", "artpedia"))
    assert len(run) == 8 and all(len(docs) == 8 for docs in run.values())
    assert set(summary["image_to_text"]["human"]["artpedia"]) >= {"recall@1", "mrr"}
    assert summary["chance_recall@1"] == 1 / 8
    # one pocket layout: the model in models/<pocket>/, its pre-training beside it
    assert (paths.pocket_model(POCKET_LONGCLIP) / "config.json").is_file()
    assert paths.pocket_history(POCKET_LONGCLIP).is_file()
    assert set(out["histories"]) == {experiment.POCKET_HISTORY, "human", "synthetic"}
    assert [k["name"] for k in summary["score_kinds"]] == ["dot", "cosine"]
    assert {"raw dot product mrr", "cosine mrr"} <= set(displays.score_kinds_table(out).columns)
    assert "epoch" in displays.describe(out) and "raw dot product scores" in displays.describe(out)
    examples = displays.retrieval_examples(cfg, paths, "longclip", "human", n=2, k=3)
    assert len(examples) == 2 and all(len(e["hits"]) == 3 and e["hits"][0]["image"].is_file() for e in examples)


def test_a_finished_run_is_reused_not_retrained(micro_run):
    cfg, paths, out = micro_run
    before = paths.fine_tune_record("longclip", "human").stat().st_mtime_ns
    again = experiment.run(cfg, paths, "longclip", variants=["human"], progress=None)
    assert paths.fine_tune_record("longclip", "human").stat().st_mtime_ns == before
    assert again["summary"]["fine_tunes"]["human"] == out["summary"]["fine_tunes"]["human"]
    # scoring the reused fine-tune gives the numbers of the first run
    first = out["results"]["query_sets"]["artpedia"]["variants"]["human"]["metrics"]
    assert again["results"]["query_sets"]["artpedia"]["variants"]["human"]["metrics"] == first


def test_cli_exports_to_the_original_layout_and_converts_back(micro_run, tmp_path):
    _, paths, _ = micro_run
    model_dir = paths.variant_model("longclip", "human")
    assert cli.main(["longclip", "export", str(model_dir), str(tmp_path / "longclip-human.pt")]) == 0
    assert cli.main(["longclip", "convert", str(tmp_path / "longclip-human.pt"), str(tmp_path / "hf"),
                     "--tokenizer", str(model_dir)]) == 0
    original, converted = longclip.load_model(model_dir), longclip.load_model(tmp_path / "hf")
    for key, value in original.model.state_dict().items():
        assert (converted.model.state_dict()[key] == value).all(), key


def test_pretrain_command_makes_the_pocket_baseline_the_runner_then_finds(micro_run, tmp_path, capsys):
    """`artcap retrieval pretrain` (what `artcap reproduce` runs beside step 02) pre-trains the pocket baseline a run
    lacks, into the place the experiment looks, and then has nothing left to do."""
    cfg, paths, _ = micro_run
    root = tmp_path / "fresh"
    root.mkdir()
    for part in ("data", "captions"):
        (root / part).symlink_to(paths.root / part)
    fresh = RunPaths.for_profile(load_profile("demo", {"run_dir": str(root)}))
    overrides = ["--set", f"run_dir={root}", *(x for key, value in (("pretrain_epochs", 1), ("epochs", 2),
                 ("batch_size", 8), ("pretrain_batch_size", 16), ("eval_batch_size", 8))
                 for x in ("--set", f"longclip.{key}={value}"))]
    assert experiment.pockets_to_pretrain(cfg, fresh, "05") == ["longclip"]
    assert cli.main(["retrieval", "pretrain", "--model", "longclip", *overrides]) == 0
    assert f"longclip: baseline {fresh.pocket_model(POCKET_LONGCLIP)}" in capsys.readouterr().out
    assert (fresh.pocket_model(POCKET_LONGCLIP) / "config.json").is_file()
    assert experiment.pockets_to_pretrain(cfg, fresh, "05") == []
    # the same pre-training as the experiment's own (same seed, pool and settings): the same weights
    ours, theirs = (longclip.load_model(p.pocket_model(POCKET_LONGCLIP)).model.state_dict() for p in (fresh, paths))
    assert all((ours[k] == theirs[k]).all() for k in theirs)
    assert cli.main(["retrieval", "pretrain", "--model", "nonesuch", *overrides]) == 2


def test_cli_run_takes_the_profile_options(micro_run, capsys):
    cfg, paths, _ = micro_run
    assert cli.main(["longclip", "run", "--set", f"run_dir={paths.root}", "--set", "longclip.pretrain_epochs=1",
                     "--set", "longclip.epochs=2", "--batch-size", "8", "--pretrain-batch-size", "16",
                     "--eval-batch-size", "8", "--set", "retrieval.bootstrap=20", "--set",
                     "retrieval.randomisation=50", "--variant", "baseline"]) == 0
    printed = capsys.readouterr().out
    assert "Long-CLIP (ours):" in printed and "scoring baseline" in printed and "scoring human" not in printed
