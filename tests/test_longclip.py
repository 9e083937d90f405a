"""Long-CLIP: pocket tokenizer, loading paths, the InfoNCE objective (and the stored preset's loss under DDP),
presets' optimisers, fine-tune resume."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artcap_lib.retrieval.longclip import model as longclip
from artcap_lib.retrieval.longclip import convert as longclip_convert
from artcap_lib.retrieval.longclip import stored_loss
from artcap_lib.retrieval import checkpoint, distributed
from artcap_lib.retrieval.protocol import FineTuneDirs
from artcap_lib.standins.pocket_longclip import EOT, SOT, PocketSpec, build_pocket_longclip, train_clip_tokenizer

CORPUS = ["A large red circle sits on the left of the canvas.", "The ground is a warm cream colour.",
          "There is also a small blue star at the top.", "A green house stands in the centre."] * 5
# head width 64, as in every OpenAI/Long-CLIP checkpoint (the original layout does not record the head count)
SPEC = PocketSpec(image_size=16, patch_size=8, vision_hidden=64, vision_layers=1, text_hidden=64, text_layers=1,
                  heads=1, projection_dim=16, vocab_size=600)


@pytest.fixture(scope="module")
def pocket_dir(tmp_path_factory) -> Path:
    """A saved, untrained tiny pocket Long-CLIP (HF format), shared by this module's tests."""
    out = tmp_path_factory.mktemp("pocket") / "model"
    longclip.LongClip(*build_pocket_longclip(CORPUS, SPEC), source="test").save(out)
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[list[Path], list[str]]:
    """16 small coloured pictures with a caption naming the colour and the place of a square."""
    folder = tmp_path_factory.mktemp("pictures")
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 30), "yellow": (230, 210, 30)}
    files, captions = [], []
    for i, (name, rgb) in enumerate(list(colours.items()) * 4):
        img = Image.new("RGB", (24, 24), (240, 240, 230))
        left = (i // 4) * 5
        img.paste(Image.new("RGB", (8, 8), rgb), (left, 8))
        files.append(folder / f"{i}.png")
        img.save(files[-1])
        captions.append(f"A {name} square, {left} pixels from the left.")
    return files, captions


def test_pocket_tokenizer_follows_clip_conventions(tmp_path):
    tok = train_clip_tokenizer(CORPUS, 600)
    ids = tok("A RED Circle!")["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids(SOT) and ids[-1] == tok.convert_tokens_to_ids(EOT)
    assert tok.convert_tokens_to_ids(EOT) == len(tok) - 1 and tok.pad_token == EOT    # as openai/clip-* tokenizers
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["a</w>", "red</w>", "circle</w>"]  # lower-cased, word ends
    unseen = tok("zebra Ünïcode 1650")["input_ids"]                                   # bytes, never <unk>
    assert tok.unk_token_id not in unseen[1:-1] and tok.decode(unseen, skip_special_tokens=True) == "zebra ünïcode 1 6 5 0"
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again).__name__ == "CLIPTokenizer" and again("zebra Ünïcode 1650")["input_ids"] == unseen


def test_token_truncation_counts_the_cut(pocket_dir):
    bundle = longclip.load_model(pocket_dir)
    long_caption = " ".join(["red"] * 300)               # 300 words -> 302 tokens with SOT/EOT
    stats = longclip.token_truncation(bundle.tokenizer, ["a red circle", long_caption], 248)
    assert stats["captions"] == 2 and stats["captions_cut"] == 1
    assert stats["tokens_cut"] == 302 - 248 and stats["longest"] == 302
    batch = longclip.Collate(bundle.tokenizer)([{"pixel_values": torch.zeros(3, 16, 16), "caption": c}
                                               for c in ["a red circle", long_caption]])
    assert batch["input_ids"].shape == (2, 248) and batch["input_ids"][1, -1] == bundle.tokenizer.eos_token_id


def test_loading_paths_hf_dir_original_checkpoint_and_77_positions(pocket_dir, tmp_path):
    bundle = longclip.load_model(pocket_dir)
    assert bundle.model.config.text_config.max_position_embeddings == 248 and bundle.note == ""
    # the original layout, with the tokenizer given separately (a .pt carries none)
    longclip_convert.save_openai_checkpoint(bundle.model, tmp_path / "longclip-pocket.pt")
    with pytest.raises(ValueError, match="no tokenizer"):
        longclip.load_model(tmp_path / "longclip-pocket.pt")
    converted = longclip.load_model(str(tmp_path / "longclip-pocket.pt"), tokenizer=str(pocket_dir))
    assert "converted" in converted.note
    assert converted.image_processor.crop_size == {"height": 16, "width": 16}
    ids = bundle.tokenizer(["a red circle"], return_tensors="pt")["input_ids"]
    torch.testing.assert_close(longclip._embeds(converted.model.get_text_features(input_ids=ids)),
                               longclip._embeds(bundle.model.get_text_features(input_ids=ids)))
    # a 77-position CLIP directory is stretched on load, unless asked not to
    short = longclip_convert.stretch_clip_model(bundle.model)     # any model: only the config's count matters here
    short.config.text_config.max_position_embeddings = 77
    from transformers import CLIPModel
    clip77 = CLIPModel(short.config)
    clip77.save_pretrained(tmp_path / "clip77")
    bundle.tokenizer.save_pretrained(tmp_path / "clip77")
    bundle.image_processor.save_pretrained(tmp_path / "clip77")
    stretched = longclip.load_model(tmp_path / "clip77")
    assert stretched.model.config.text_config.max_position_embeddings == 248 and "stretched" in stretched.note
    assert stretched.tokenizer.model_max_length == 248
    kept = longclip.load_model(tmp_path / "clip77", stretch_77=False)
    assert kept.model.config.text_config.max_position_embeddings == 77 and "77" in kept.note


def _batch(bundle, files, captions):
    dataset = longclip.ImageTextDataset(files, captions, bundle.image_processor)
    return longclip.Collate(bundle.tokenizer)([dataset[i] for i in range(len(dataset))])


def test_contrastive_step_is_the_symmetric_infonce(pocket_dir, pictures):
    bundle = longclip.load_model(pocket_dir)
    batch = _batch(bundle, pictures[0][:6], pictures[1][:6])
    out = longclip.contrastive_step(bundle.model, batch)
    image = longclip._embeds(bundle.model.get_image_features(pixel_values=batch["pixel_values"]))
    text = longclip._embeds(bundle.model.get_text_features(input_ids=batch["input_ids"],
                                                           attention_mask=batch["attention_mask"]))
    image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    logits = bundle.model.logit_scale.exp() * image @ text.T
    target = torch.arange(6)
    manual = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(out["loss"], manual)
    out["loss"].backward()
    assert bundle.model.logit_scale.grad is not None and bundle.model.logit_scale.grad != 0   # learnable temperature
    with torch.no_grad():                      # the scale is capped at 100 (CLIP's rule)
        bundle.model.logit_scale.fill_(10.0)
    assert math.isclose(float(longclip.contrastive_step(bundle.model, batch)["logit_scale"]), 100.0, rel_tol=1e-5)


def test_scores_dot_and_cosine():
    text, image = torch.tensor([[3.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(longclip.score_matrix(text, image, "dot"), torch.tensor([[3.0, 0.0], [1.0, 2.0]]))
    torch.testing.assert_close(longclip.score_matrix(text, image, "cosine"),
                               torch.tensor([[1.0, 0.0], [2 ** -0.5, 2 ** -0.5]]))
    with pytest.raises(ValueError, match="unknown score"):
        longclip.score_matrix(text, image, "l2")


@pytest.mark.parametrize("preset", ["stored", "committed"])
def test_the_authors_presets_are_adabelief_onecycle_and_adamw_spares_gains(pocket_dir, preset):
    from adabelief_pytorch import AdaBelief
    model = longclip.load_model(pocket_dir).model
    opt = longclip.make_optimizer(preset, 5e-7, 1e-3)(model)
    assert isinstance(opt, AdaBelief) and opt.defaults["betas"] == (0.9, 0.995) and opt.defaults["eps"] == 1e-16
    assert opt.defaults["weight_decay"] == 1e-3 and not opt.weight_decouple and opt.rectify
    sched = longclip.make_scheduler(preset, 5e-7, 0.1)(opt, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    assert max(lrs) == pytest.approx(5e-7) and int(np.argmax(lrs)) in (9, 10) and lrs[-1] < 1e-9
    adamw = longclip.make_optimizer("adamw", 1e-4, 0.2)(model)
    decayed, spared = adamw.param_groups
    assert decayed["weight_decay"] == 0.2 and spared["weight_decay"] == 0.0
    assert any(p is model.logit_scale for p in spared["params"]) and all(p.ndim >= 2 for p in decayed["params"])
    with pytest.raises(ValueError, match="unknown preset 'sgd'"):
        longclip.make_optimizer("sgd", 1e-4, 0.0)


KILLED_FINE_TUNE = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from artcap_lib.retrieval.longclip import model as longclip
import test_longclip as t
real_step = longclip.contrastive_step
calls = {{"n": 0}}
def step(model, batch, **options):
    calls["n"] += torch.is_grad_enabled()
    if calls["n"] == 3 + 2:            # 3 training batches per epoch: die in the middle of epoch 2
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(model, batch, **options)
longclip.contrastive_step = step
t.fine_tune_pictures({pocket!r}, {out!r})
"""


def fine_tune_pictures(pocket_dir, out_dir):
    files, captions = _pictures_from_env()
    bundle = longclip.load_model(pocket_dir)
    settings = longclip.FineTuneSettings(preset="adamw", epochs=3, batch_size=4, lr=1e-3, patience=None, seed=0)
    out_dir = Path(out_dir)
    summary = longclip.fine_tune(bundle, (files[:12], captions[:12]), (files[12:], captions[12:]), settings,
                                 FineTuneDirs(out_dir / "model", out_dir / "training"), progress=None)
    return bundle, summary


def _pictures_from_env():
    """(not a test on its own) the pictures fixture's files, rebuilt for the subprocess, deterministic."""
    folder = Path(os.environ.get("LONGCLIP_TEST_PICTURES", ""))
    return sorted(folder.glob("*.png"), key=lambda p: int(p.stem)), [
        line for line in (folder / "captions.txt").read_text().splitlines()]


def test_fine_tune_resumes_after_a_kill_and_matches_an_uninterrupted_run(pocket_dir, pictures, tmp_path, monkeypatch):
    files, captions = pictures
    (files[0].parent / "captions.txt").write_text("\n".join(captions))
    monkeypatch.setenv("LONGCLIP_TEST_PICTURES", str(files[0].parent))
    script = KILLED_FINE_TUNE.format(tests=str(Path(__file__).parent), pocket=str(pocket_dir),
                                     out=str(tmp_path / "killed"))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / "killed" / "model").exists()
    assert torch.load(tmp_path / "killed" / "training" / checkpoint.CHECKPOINT, weights_only=True)["epoch"] == 1

    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # as the killed run: other thread counts sum in other orders (1e-5 apart)
    try:
        resumed, summary = fine_tune_pictures(pocket_dir, tmp_path / "killed")
        straight, _ = fine_tune_pictures(pocket_dir, tmp_path / "straight")
    finally:
        torch.set_num_threads(threads)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    assert summary["truncation"]["train"]["captions"] == 12
    assert [e["epoch"] for e in checkpoint.read_history(tmp_path / "killed" / "training")["epochs"]] == [0, 1, 2, 3]
    assert (tmp_path / "killed" / "model" / "config.json").is_file()
    # a finished fine-tune returns at once (the loop's checkpoint says so) with the kept epoch's weights
    again, summary_again = fine_tune_pictures(pocket_dir, tmp_path / "killed")
    assert summary_again == summary
    torch.testing.assert_close(again.model.logit_scale, resumed.model.logit_scale)


def _ddp_gradients(rank: int, world_size: int, port: int, pocket_dir: str, files, captions, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = distributed.setup_distributed("cpu")
    bundle = longclip.load_model(pocket_dir)
    ddp = torch.nn.parallel.DistributedDataParallel(bundle.model)
    half = len(files) // world_size
    batch = _batch(bundle, files[rank * half:(rank + 1) * half], captions[rank * half:(rank + 1) * half])
    grads = {}
    for name, step in STEPS.items():
        bundle.model.zero_grad(set_to_none=True)
        step(ddp, batch)["loss"].backward()
        grads[name] = {n: p.grad.clone() for n, p in bundle.model.named_parameters() if p.grad is not None}
    if dist.is_main:
        torch.save(grads, out)
    import torch.distributed as tdist
    tdist.destroy_process_group()


# InfoNCE (committed, adamw) and the authors' February loss (stored, whose every process computes the global loss)
STEPS = {"infonce": longclip.contrastive_step, "stored": stored_loss.training_step}


def test_under_ddp_the_gathered_loss_gives_the_single_process_gradient(pocket_dir, pictures, tmp_path):
    import socket
    files, captions = pictures
    files, captions = files[:8], captions[:8]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "ddp_grads.pt")
    torch.multiprocessing.spawn(_ddp_gradients, args=(2, port, str(pocket_dir), files, captions, out), nprocs=2)
    bundle = longclip.load_model(pocket_dir)
    ddp_grads = torch.load(out, weights_only=True)
    for step_name, step in STEPS.items():
        bundle.model.zero_grad(set_to_none=True)
        step(bundle.model, _batch(bundle, files, captions))["loss"].backward()
        compared = 0
        for name, p in bundle.model.named_parameters():
            if p.grad is not None and p.grad.abs().max() > 0:
                torch.testing.assert_close(ddp_grads[step_name][name], p.grad, rtol=1e-4, atol=1e-6,
                                           msg=f"{step_name}: {name}")
                compared += 1
        assert compared > 10, step_name


def _ddp_fine_tune(rank: int, world_size: int, port: int, pocket_dir: str, files, captions, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = distributed.setup_distributed("cpu")
    _fine_tune(pocket_dir, files, captions, out, batch_size=4 // world_size, dist=dist)
    import torch.distributed as tdist
    tdist.destroy_process_group()


def _fine_tune(pocket_dir, files, captions, out, batch_size, dist=None):
    bundle = longclip.load_model(pocket_dir)
    settings = longclip.FineTuneSettings(preset="committed", epochs=2, batch_size=batch_size, lr=1e-3, patience=None,
                                         seed=0)
    out = Path(out)
    return longclip.fine_tune(bundle, (files[:12], captions[:12]), (files[12:], captions[12:]), settings,
                              FineTuneDirs(out / "model", out / "training"), dist=dist, progress=None)


def test_a_fine_tune_on_two_processes_equals_one_process_with_their_global_batch(pocket_dir, pictures, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU) with 2 images per process = one process with 4: the sampler's
    shards of a step are the one process's batch, and the InfoNCE sees the gathered features of both. The authors'
    committed recipe (AdaBelief + OneCycle, their reshuffled validation), 2 epochs; equal to float32 rounding (rtol
    1e-4, atol 1e-5)."""
    import socket
    files, captions = pictures
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_fine_tune, args=(2, port, str(pocket_dir), files, captions,
                                                       str(tmp_path / "two")), nprocs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fine_tune(pocket_dir, files, captions, tmp_path / "one", batch_size=4)
    finally:
        torch.set_num_threads(threads)
    history = {n: checkpoint.read_history(tmp_path / n / "training") for n in ("one", "two")}
    assert history["two"]["world_size"] == 2 and history["one"]["world_size"] == 1
    for a, b in zip(history["one"]["epochs"], history["two"]["epochs"]):
        assert a.get("val_loss") == pytest.approx(b.get("val_loss"), rel=1e-4)
    from safetensors.torch import load_file
    one, two = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("one", "two"))
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    start = load_file(Path(pocket_dir) / "model.safetensors")
    moved = max(float((one[n] - start[n]).abs().max()) for n in one if n in start)
    assert moved > 1e-3                         # the fine-tune did move the weights: the equality is not trivial
