"""The captioner: batched == one at a time, resume after a crash or a kill, failures, OOM split, 2-process shards.

All on a small pocket LLaVA trained for a few steps (so it says something image-dependent), loaded from disk
through the same `from_pretrained` path as llava-hf/llava-1.5-7b-hf."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from artcap_lib.captioning.store import read_captions, read_failures, read_records
from artcap_lib.captioning.captioner import Captioner, Decoding, caption_collection, collection_items, load_image
from artcap_lib.cli import main as artcap
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.standins.pocket_llava import PocketSpec, train_pocket_llava

SMALL = PocketSpec(image_size=32, patch_size=8, vision_hidden=32, vision_layers=1, text_hidden=48, text_layers=1,
                   heads=2, vocab_size=300)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    out = tmp_path_factory.mktemp("caption-demo")
    return generate_collection(out, DemoSizes(train=6, val=2, test=6, pretrain=64), image_size=48, seed=3)


@pytest.fixture(scope="session")
def pocket_dir(collection, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "pocket-llava"
    train_pocket_llava(collection["pretrain_pool"], collection["scenes"], out, steps=40, batch_size=16, lr=3e-3,
                       spec=SMALL)
    return out


@pytest.fixture
def captioner(pocket_dir):
    return Captioner.from_pretrained(pocket_dir, dtype="float32", decoding=Decoding(max_new_tokens=24))


def caption_args(collection, pocket_dir, out, *extra):
    return ["caption", "--artworks", str(collection["artworks"]), "--model", str(pocket_dir), "--out", str(out),
            "--dtype", "float32", "--device", "cpu", "--max-new-tokens", "24", "--threads", "1", *extra]


def test_paper_prompt_goes_through_the_chat_template(captioner):
    assert captioner.chat_prompt() == "USER: <image>\nCaption this image ASSISTANT:"
    assert captioner.answer(*[captioner.tokenizer("USER: x ASSISTANT:")["input_ids"],
                              captioner.tokenizer(" The image features", add_special_tokens=False)["input_ids"]]) \
        == "The image features"


def test_batched_equals_one_at_a_time_token_for_token(captioner, collection):
    items = collection_items(collection["artworks"])[:6]
    images = [load_image(p) for _, p in items]
    # two prompts of different lengths: the batch must be padded, and padding must not change any token
    prompts = ["Caption this image", "Describe this painting briefly"] * 3
    batch = captioner.prepare(images, prompts)
    assert (batch["attention_mask"] == 0).any(), "the test batch should need padding"
    batched, _ = captioner.generate_ids(batch)
    alone = [captioner.generate_ids(captioner.prepare([im], [p]))[0][0] for im, p in zip(images, prompts)]
    assert batched == alone
    assert len({tuple(ids) for ids in alone}) > 1, "the model should say different things for different images"

    captioner.tokenizer.padding_side = "right"       # the trap the left padding avoids
    right, _ = captioner.generate_ids(captioner.prepare(images, prompts))
    assert right != alone


def test_cli_resumes_after_a_crash_without_duplicates(collection, pocket_dir, tmp_path, monkeypatch):
    out = tmp_path / "captions" / "pocket.jsonl"
    calls = {"n": 0}
    real = Captioner.caption

    def crash_on_third_batch(self, images, inputs=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected crash")
        return real(self, images, inputs)

    monkeypatch.setattr(Captioner, "caption", crash_on_third_batch)
    with pytest.raises(RuntimeError, match="injected crash"):
        artcap(caption_args(collection, pocket_dir, out, "--batch-size", "2"))
    first = read_records(out)
    assert len(first) == 4
    monkeypatch.setattr(Captioner, "caption", real)
    assert artcap(caption_args(collection, pocket_dir, out, "--batch-size", "2")) == 0
    records = read_records(out)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(i for i, _ in collection_items(collection["artworks"])) and len(set(ids)) == len(ids)
    assert records[:4] == first                         # nothing rewritten
    r = records[-1]
    assert r["model"] == str(pocket_dir) and r["prompt"] == "Caption this image" and r["new_tokens"] > 0
    assert r["decoding"]["do_sample"] is False and r["decoding"]["max_new_tokens"] == 24 and r["seconds"] > 0


def test_cli_with_a_profile_captions_the_run_exactly_as_step_02(collection, pocket_dir, tmp_path):
    import shutil

    from artcap_lib.captioning.step import run as run_captioning
    from artcap_lib.config import RunPaths, load_profile
    for run in ("cli", "step"):
        shutil.copytree(collection["artworks"].parent, tmp_path / run / "data")
    settings = {"captioning.model": str(pocket_dir), "captioning.max_new_tokens": 24, "captioning.batch_size": 4}
    assert artcap(["caption", "--profile", "demo", "--run-dir", str(tmp_path / "cli"),
                   *[f"--set={k}={v}" for k, v in settings.items()]]) == 0
    cfg = load_profile("demo", {"run_dir": str(tmp_path / "step"), **settings})
    run_captioning(cfg, RunPaths.for_profile(cfg), progress=False)
    by_cli, by_step = (tmp_path / "cli" / "captions", tmp_path / "step" / "captions")
    assert read_captions(by_cli / "pocket-llava.jsonl") == read_captions(by_step / "pocket-llava.jsonl")
    assert len(read_captions(by_cli / "pocket-llava.jsonl")) == len(collection_items(collection["artworks"]))
    figures = json.loads((by_cli / "pocket-llava_run.json").read_text())
    assert (figures["dtype"], figures["device"], figures["engine"]) == ("float32", "cpu", "generate")


def test_cli_killed_midway_then_rerun_gives_a_complete_file(collection, pocket_dir, tmp_path):
    out = tmp_path / "pocket.jsonl"
    cmd = [sys.executable, "-m", "artcap_lib.cli", *caption_args(collection, pocket_dir, out, "--batch-size", "1")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run should have been killed mid-way"
    n_all = len(collection_items(collection["artworks"]))
    with open(out, "a") as fh:                          # and as if the kill had torn the line being written
        fh.write('{"id": "10')
    assert len(read_captions(out)) < n_all
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == n_all == len(set(ids)) and out.read_text().endswith("\n")


def test_unreadable_image_is_a_failure_line_not_a_crash(collection, pocket_dir, captioner, tmp_path):
    items = collection_items(collection["artworks"])[:4]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    items[1] = (items[1][0], broken)
    items.append(("9999", tmp_path / "missing.jpg"))
    out = tmp_path / "c.jsonl"
    summary = caption_collection(captioner, items, out, batch_size=2)
    assert summary["captioned"] == 3 and summary["failed"] == 2
    failures = read_failures(out)
    assert set(failures) == {items[1][0], "9999"}
    assert "UnidentifiedImageError" in failures[items[1][0]] and "FileNotFoundError" in failures["9999"]
    assert caption_collection(captioner, items, out, batch_size=2)["already_done"] == 5
    assert caption_collection(captioner, items, out, batch_size=2, retry_failed=True)["failed"] == 0  # no new line
    assert len(read_records(out)) == 5


def test_out_of_memory_splits_the_batch(captioner, collection, monkeypatch):
    images = [load_image(p) for _, p in collection_items(collection["artworks"])[:5]]
    expected = captioner.caption(images)
    real = Captioner.generate_ids

    def small_memory(self, inputs):
        if inputs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, inputs)

    monkeypatch.setattr(Captioner, "generate_ids", small_memory)
    assert captioner.caption(images) == expected
    assert captioner.oom_splits >= 1 and captioner.max_rows <= 2


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_processes_shard_and_merge(collection, pocket_dir, tmp_path):
    out = tmp_path / "captions" / "pocket.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "artcap_lib.cli", *caption_args(collection, pocket_dir, out, "--batch-size", "2")]
    run = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == sorted(i for i, _ in collection_items(collection["artworks"])) and len(set(ids)) == len(ids)
    assert [p.name for p in out.parent.iterdir()] == ["pocket.jsonl"]        # shards merged and removed
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["merged"] == len(ids)


@pytest.mark.parametrize("damage", ["projector removed", "extra weight"])
def test_a_checkpoint_missing_or_adding_weights_is_refused_naming_them(tmp_path, damage):
    """A model directory without its projector once loaded with random projector weights and captioned as if
    all were well; one with weights the model has no place for is suspect too."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from artcap_lib.checkpoints import IncompleteCheckpointError
    from artcap_lib.standins.random_models import resolve_model
    path = Path(shutil.copytree(resolve_model("random:llava-1.5-7b@tiny?text_hidden=64&text_layers=2",
                                              tmp_path / "m", device="cpu"), tmp_path / "damaged"))
    weights = next(path.glob("*.safetensors"))
    state = load_file(weights)
    if damage == "projector removed":
        state = {k: v for k, v in state.items() if "multi_modal_projector" not in k}
        expected = r"4 weight\(s\) missing from the checkpoint \(they would be random\), e.g. .*multi_modal_projector"
    else:
        state["surplus.weight"] = torch.zeros(2)
        expected = r"1 weight\(s\) in the checkpoint but not in the model, e.g. surplus.weight"
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(IncompleteCheckpointError, match=expected):
        Captioner.from_pretrained(path, dtype="float32")
