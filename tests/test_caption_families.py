"""The pocket Qwen2-VL (a second trainable captioner family) through the captioning step, and a Qwen2-VL checkpoint in
the file layout the hub serves loading without torchvision. The families' replicas themselves (batched == one at a
time, answers, resume, published settings) are tests/test_captioner_families.py."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PIL import Image

from artcap_lib.captioning.captioner import Captioner, Decoding
from artcap_lib.data.rehearsal import museum_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# portrait 0.51, landscape 1.45, panorama 2.5, near-square 0.8: four different patch grids
PAINTINGS = ("36029.jpg", "36131.jpg", "37788.jpg", "37801.jpg")
QWEN_PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
               "<|vision_start|><|image_pad|><|vision_end|>Caption this image<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def paintings():
    out = []
    for name in PAINTINGS:
        with Image.open(museum_dir() / name) as im:
            out.append(im.convert("RGB"))
    return out


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    """A demo run whose captioner is the pocket Qwen2-VL, trained briefly by the captioning step on first use."""
    from artcap_lib.captioning.step import run as run_captioning
    from artcap_lib.config import RunPaths, load_profile
    from artcap_lib.data.demo import DemoSizes, generate_collection
    root = tmp_path_factory.mktemp("zoo")
    cfg = load_profile("demo", {"run_dir": str(root / "run"), "figures_dir": str(root / "fig"),
                                "captioning.name": "pocket-qwen2-vl", "captioning.model": "pocket-qwen2-vl",
                                "captioning.answer_marker": "", "captioning.pocket_steps": 40,
                                "captioning.pocket_batch_size": 8, "captioning.pocket_lr": 3e-3,
                                "captioning.max_new_tokens": 24})
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=4, val=2, test=2, pretrain=48), image_size=96, seed=0)
    summary = run_captioning(cfg, paths, progress=False)["pocket-qwen2-vl"]
    return cfg, paths, summary


def test_the_step_trains_the_pocket_qwen2_vl_and_captions_with_it(zoo_run):
    from artcap_lib.captioning.store import read_records
    cfg, paths, summary = zoo_run
    model_dir = paths.pocket_model("pocket-qwen2-vl")
    report = json.loads((model_dir / "training.json").read_text())
    losses = [entry["loss"] for entry in report["loss"]]
    assert summary["pocket_training"]["steps"] == 40 and summary["captioned"] == 8
    assert report["family"] == "qwen2-vl" and report["pretrain_images"] == 48 and report["deviations"]
    # an untrained model's loss is about ln(vocabulary); 40 steps (one log entry, their mean) learn the template
    assert losses[-1] < 0.5 * math.log(json.loads((model_dir / "config.json").read_text())["text_config"]["vocab_size"])
    # a 96 px painting at image_size 48: 8 x 8 patches of 6 px, merged 2 x 2 -> the pocket LLaVA's 16 image tokens
    assert report["image_tokens"] == 16
    tokenizer = Captioner.from_pretrained(model_dir, dtype="float32").tokenizer
    special = set(tokenizer.all_special_tokens) | {"<|image_pad|>", "<|vision_start|>", "<|im_start|>"}
    for record in read_records(paths.caption_file("pocket-qwen2-vl")):
        caption = record["caption"]
        assert caption and not any(token in caption for token in special), caption
        assert "Caption this image" not in caption and "assistant" not in caption and "system" not in caption


def test_the_pocket_qwen2_vl_is_saved_in_the_hubs_layout(zoo_run):
    _, paths, _ = zoo_run
    directory = paths.pocket_model("pocket-qwen2-vl")
    config = json.loads((directory / "config.json").read_text())
    pre = json.loads((directory / "preprocessor_config.json").read_text())
    tok = json.loads((directory / "tokenizer_config.json").read_text())
    generation = json.loads((directory / "generation_config.json").read_text())
    assert config["model_type"] == "qwen2_vl" and config["tie_word_embeddings"] is True
    assert config["vision_config"]["spatial_merge_size"] == 2 and config["vision_config"]["temporal_patch_size"] == 2
    assert pre["processor_class"] == "Qwen2VLProcessor" and pre["merge_size"] == 2 and pre["temporal_patch_size"] == 2
    assert tok["eos_token"] == "<|im_end|>" and tok["pad_token"] == "<|endoftext|>" and tok["bos_token"] is None
    added = json.loads((directory / "tokenizer.json").read_text())["added_tokens"]
    ids = {entry["content"]: entry["id"] for entry in added if entry["special"]}
    assert config["image_token_id"] == ids["<|image_pad|>"] and config["vision_start_token_id"] == ids["<|vision_start|>"]
    assert sorted(generation["eos_token_id"]) == sorted([ids["<|im_end|>"], ids["<|endoftext|>"]])
    assert "<|image_pad|>" in (directory / "chat_template.jinja").read_text()


def test_its_training_inputs_are_the_inference_prompt_then_the_answer(zoo_run):
    from artcap_lib.standins.pocket_llava import assistant_caption
    from artcap_lib.standins.pocket_qwen2_vl import encode_qwen_examples
    _, paths, _ = zoo_run
    captioner = Captioner.from_pretrained(paths.pocket_model("pocket-qwen2-vl"), dtype="float32", answer_marker="")
    assert captioner.chat_prompt() == QWEN_PROMPT
    scene = json.loads(paths.scenes.read_text())["1000"]
    with Image.open(paths.data / "images" / "1000.jpg") as im:
        image = im.convert("RGB")
    caption = assistant_caption(scene)
    examples = encode_qwen_examples(captioner.processor, [image], [caption], captioner.prompt)
    inference = captioner.prepare([image])
    width = inference["input_ids"].shape[1]
    assert torch.equal(examples["input_ids"][:, :width], inference["input_ids"])
    assert torch.equal(examples["pixel_values"].reshape(inference["pixel_values"].shape), inference["pixel_values"])
    answer = examples["labels"][0, width:]
    answer = answer[answer != -100].tolist()
    tok = captioner.tokenizer
    assert (examples["labels"][0, :width] == -100).all() and answer[-1] == tok.eos_token_id
    assert tok.decode(answer, skip_special_tokens=True) == caption         # no space before it: ChatML's answer
    types = examples["mm_token_type_ids"][0]
    assert torch.equal(types[:width], inference["mm_token_type_ids"][0]) and not types[width:].any()


def test_the_trained_pocket_qwen2_vl_captions_a_batch_as_one_at_a_time(zoo_run, paintings):
    _, paths, _ = zoo_run
    captioner = Captioner.from_pretrained(paths.pocket_model("pocket-qwen2-vl"), dtype="float32", answer_marker="",
                                          decoding=Decoding(max_new_tokens=12))
    inputs = captioner.prepare(paintings)
    assert len({int(g.prod()) for g in inputs["image_grid_thw"]}) > 1     # so the rows' prompts differ in length
    assert inputs["image_grid_thw"].dtype == torch.int64
    batched = captioner.caption(paintings)
    assert batched == [captioner.caption([image])[0] for image in paintings]
    assert all(text for text, _ in batched)


def _hub_layout(replica, out):
    """The replica's files as the hub serves Qwen/Qwen2-VL-2B-Instruct: preprocessor_config.json with min_pixels /
    max_pixels and the Qwen2VL names, chat_template.json, tokenizer_config.json naming Qwen2Tokenizer and carrying the
    template, vocab.json + merges.txt beside tokenizer.json, and no processor_config.json."""
    out.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(replica / name, out / name)
    saved = json.loads((replica / "preprocessor_config.json").read_text())
    (out / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": saved["size"]["shortest_edge"], "max_pixels": saved["size"]["longest_edge"],
        "patch_size": saved["patch_size"], "temporal_patch_size": saved["temporal_patch_size"],
        "merge_size": saved["merge_size"], "image_mean": saved["image_mean"], "image_std": saved["image_std"],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor"}))
    template = json.loads((replica / "chat_template.json").read_text())["chat_template"]
    (out / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    tok = json.loads((replica / "tokenizer_config.json").read_text())
    tok.pop("processor_class", None)
    tok.update(tokenizer_class="Qwen2Tokenizer", chat_template=template, errors="replace", split_special_tokens=False)
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    bpe = json.loads((replica / "tokenizer.json").read_text())["model"]
    (out / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return out


def test_a_qwen2_vl_checkpoint_as_the_hub_serves_it_loads_without_torchvision(tmp_path, paintings):
    from transformers import AutoProcessor

    from artcap_lib.standins.captioner_replicas import build_family_replica
    replica = build_family_replica("qwen2-vl", tmp_path / "replica")
    hub = _hub_layout(replica, tmp_path / "hub")
    with pytest.raises((ImportError, AttributeError, ValueError)):
        AutoProcessor.from_pretrained(str(hub))          # transformers alone cannot (no torchvision): the fallback can
    ours = Captioner.from_pretrained(hub, dtype="float32", answer_marker="", decoding=Decoding(max_new_tokens=6))
    theirs = Captioner.from_pretrained(replica, dtype="float32", answer_marker="", decoding=Decoding(max_new_tokens=6))
    assert type(ours.processor).__name__ == "Qwen2VLProcessor" and ours.processor.video_processor is None
    assert type(ours.tokenizer).__name__ == "Qwen2Tokenizer" and ours.processor.image_processor.merge_size == 2
    assert ours.chat_prompt() == theirs.chat_prompt() == QWEN_PROMPT
    a, b = ours.prepare(paintings), theirs.prepare(paintings)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ours.generate_ids(a) == theirs.generate_ids(b)
