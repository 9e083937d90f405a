"""Pocket replicas of captioner families beyond LLaVA-1.5: each family's published layout, tiny random weights.

`Captioner` claims any image-text-to-text checkpoint; these prove it per family. Each builder writes a Hugging Face
directory whose config, processor settings, special tokens and prompt format follow the hub model it names (the
values below are those published files'), with hidden sizes, layer counts and vocabularies shrunk, images made
small enough for a CPU test, and random seeded weights. `FAMILIES[family].deviations` says what was shrunk.

    build_family_replica("qwen2-vl", out_dir)  -> out_dir (loadable by Captioner.from_pretrained)

    llava-next  llava-hf/llava-v1.6-mistral-7b-hf  anyres tiling (image_grid_pinpoints): the image-token count
                                                   depends on the aspect ratio; Mistral's [INST] format
    qwen2-vl    Qwen/Qwen2-VL-2B-Instruct          dynamic resolution (min/max pixels, 14 px patches merged 2x2),
                                                   M-RoPE positions; ChatML with a default system turn
    idefics3    HuggingFaceTB/SmolVLM-256M-Instruct image splitting into a grid of tiles + a global image, pixel
                                                   shuffle (scale_factor); "User:<image>...<end_of_utterance>"
    paligemma   google/paligemma-3b-mix-224        no chat template: a task prefix ("caption en"), the processor
                                                   puts the image tokens and BOS in front; the answer = new tokens

Tokenizers are byte-level BPEs trained here with the family's special tokens by name (ids are not the published
ones: the vocabularies are a few hundred tokens). Everything is local: HF_HUB_OFFLINE=1 suffices.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from artcap_lib.files import write_json

SEED = 0
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
HALF = [0.5, 0.5, 0.5]


@dataclass(frozen=True)
class Family:
    builder: Callable[[Path, int], Path]
    hub_id: str                         # the published model whose layout the replica follows
    prompt: str                         # what captioning sends (the profile's captioning.prompt for it)
    answer_marker: str                  # captioning.answer_marker ("" = the new tokens are the answer)
    deviations: tuple[str, ...] = field(default=())


def _corpus() -> list[str]:
    from artcap_lib.standins.random_models import tokenizer_corpus
    return tokenizer_corpus(200)


def _tokenizer(special: list[str], *, bos: str | None, eos: str, pad: str, chat_template: str | None,
               extra: dict[str, str] | None = None, prepend_bos: bool = False, vocab_size: int = 600):
    """A byte-level BPE over the demo corpus with `special` tokens first (ids 0..)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if prepend_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[
            (bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   extra_special_tokens=extra or {}, padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"], chat_template=chat_template)


def _save(out: Path, model, parts: dict, chat_template: str | None, family: str) -> Path:
    """Weights + config, then each processor part as the hub stores it (its own files), the chat template as
    chat_template.jinja, and the processor's own config."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for part in parts.values():
        if part is not None:
            part.save_pretrained(out)
    if chat_template:
        (out / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    write_json(out / "replica.json", {"family": family, "imitates": FAMILIES[family].hub_id, "seed": SEED,
                                       "deviations": list(FAMILIES[family].deviations)})
    return out


def _tiny_text(vocab: int, tok, **extra) -> dict:
    return dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra)


# ------------------------------------------------------------------------------------------------ LLaVA-NeXT
# llava-hf/llava-v1.6-mistral-7b-hf: Mistral's [INST] turns; CLIP ViT-L/14 at 336 px tiles (24 x 24 patches),
# anyres pinpoints below, feature layer -2, "default" strategy (CLS dropped), <image> = 32000.
NEXT_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' }}"
                 "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
                 "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
                 "{{ ' [/INST]' }}{% else %}{% for item in message['content'] if item['type'] == 'text' %}"
                 "{{ ' ' + item['text'] + eos_token }}{% endfor %}{% endif %}{% endfor %}")
NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
NEXT_SCALE = 6                          # 336 px -> 56 px tiles, every pinpoint / 6 (CPU-sized)


def build_llava_next(out: Path, seed: int = SEED) -> Path:
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessorPil, LlavaNextProcessor, MistralConfig)
    tile = 336 // NEXT_SCALE
    tok = _tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"], bos="<s>", eos="</s>", pad="<pad>",
                     chat_template=NEXT_TEMPLATE, extra={"image_token": "<image>"}, prepend_bos=True)
    pinpoints = [[h // NEXT_SCALE, w // NEXT_SCALE] for h, w in NEXT_PINPOINTS]
    images = LlavaNextImageProcessorPil(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                                        image_grid_pinpoints=pinpoints, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                        do_pad=True)
    processor = LlavaNextProcessor(image_processor=images, tokenizer=tok, patch_size=14,
                                   vision_feature_select_strategy="default", chat_template=NEXT_TEMPLATE,
                                   num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=tile, patch_size=14, projection_dim=32)
    config = LlavaNextConfig(vision_config=vision, text_config=MistralConfig(**_tiny_text(len(tok), tok)),
                             image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
                             vision_feature_layer=-2, vision_feature_select_strategy="default",
                             projector_hidden_act="gelu", tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    return _save(out, model, {"processor": processor}, None, "llava-next")


# ------------------------------------------------------------------------------------------------ Qwen2-VL
# Qwen/Qwen2-VL-2B-Instruct: ChatML, a default system turn, the image as <|vision_start|><|image_pad|><|vision_end|>
# (the processor expands <|image_pad|> to grid_t*grid_h*grid_w / merge^2 tokens); 14 px patches, temporal patch 2,
# merge 2, min_pixels 56*56 = 3136; M-RoPE sections [16, 24, 24] of 128-dim heads (here [2, 3, 3] of 16).
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}{% elif item['type'] == 'text' %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_MAX_PIXELS = 112 * 112            # published 12845056 (3584 x 3584): at most 16 merged image tokens here


def build_qwen2_vl(out: Path, seed: int = SEED) -> Path:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from artcap_lib.captioning.processors import image_only
    tok = _tokenizer(QWEN_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=QWEN_TEMPLATE)
    images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=QWEN_MAX_PIXELS, patch_size=14,
                                      temporal_patch_size=2, merge_size=2, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    # built without a video processor: that part cannot exist without torchvision (captioning.processors)
    processor = image_only(Qwen2VLProcessor)(image_processor=images, tokenizer=tok, video_processor=None,
                                             chat_template=QWEN_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2VLConfig(
        text_config=_tiny_text(len(tok), tok, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                               rope_theta=1000000.0, tie_word_embeddings=True),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, ids["<|endoftext|>"]]   # as the hub's
    _save(out, model, {"image_processor": images, "tokenizer": tok}, QWEN_TEMPLATE, "qwen2-vl")
    for name in ("preprocessor_config.json", "tokenizer_config.json"):      # as the hub's files name it
        path = out / name
        path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")),
                                    "processor_class": "Qwen2VLProcessor"}, indent=2), encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------ Idefics3 (SmolVLM)
# HuggingFaceTB/SmolVLM-256M-Instruct (model_type idefics3): SigLIP tiles of 512 px, 16 px patches, pixel shuffle
# scale_factor 4 -> image_seq_len 64 tokens per tile; splitting up to longest_edge 2048 (a 4 x 4 grid + the global
# image); prompt "<|im_start|>User:<image>Caption this image<end_of_utterance>\nAssistant:".
IDEFICS_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
IDEFICS_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                   "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
IDEFICS_TILE = 64                      # published 512 (CPU-sized: 16 patches of 16 px, shuffled 2x2 -> 4 tokens)


def build_idefics3(out: Path, seed: int = SEED) -> Path:
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil,
                              Idefics3Processor, LlamaConfig)
    tok = _tokenizer(IDEFICS_SPECIAL, bos="<|im_start|>", eos="<end_of_utterance>", pad="<|endoftext|>",
                     chat_template=IDEFICS_TEMPLATE,
                     extra={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                            "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"})
    images = Idefics3ImageProcessorPil(do_image_splitting=True, size={"longest_edge": 2 * IDEFICS_TILE},
                                       max_image_size={"longest_edge": IDEFICS_TILE}, image_mean=HALF,
                                       image_std=HALF, resample=1)
    processor = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=(IDEFICS_TILE // 16 // 2) ** 2,
                                  chat_template=IDEFICS_TEMPLATE)
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=IDEFICS_TILE, patch_size=16),
        text_config=LlamaConfig(**_tiny_text(len(tok), tok)), scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return _save(out, model, {"processor": processor}, None, "idefics3")


# ------------------------------------------------------------------------------------------------ PaliGemma
# google/paligemma-3b-mix-224: no chat template; the processor writes <image> x 256 (224 px / 14 px patches),
# then <bos>, the prefix ("caption en") and "\n"; Gemma's ids <pad> 0, <eos> 1, <bos> 2, <image> 257152.
PALI_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
PALI_IMAGE = 56                         # published 224 (CPU-sized: 4 x 4 = 16 image tokens of 14 px patches)


def build_paligemma(out: Path, seed: int = SEED) -> Path:
    from transformers import (GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
                              SiglipImageProcessorPil, SiglipVisionConfig)
    tok = _tokenizer(PALI_SPECIAL, bos="<bos>", eos="<eos>", pad="<pad>", chat_template=None,
                     extra={"image_token": "<image>"})
    tokens = (PALI_IMAGE // 14) ** 2
    images = SiglipImageProcessorPil(size={"height": PALI_IMAGE, "width": PALI_IMAGE}, image_mean=HALF,
                                     image_std=HALF, resample=3)
    images.image_seq_length = tokens
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=tok)
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=PALI_IMAGE, patch_size=14,
                                         projection_dim=64),
        text_config=GemmaConfig(**_tiny_text(len(tok), tok, head_dim=16)),
        image_token_index=tok.convert_tokens_to_ids("<image>"), projection_dim=64, hidden_size=64)
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return _save(out, model, {"processor": processor}, None, "paligemma")


FAMILIES: dict[str, Family] = {
    "llava-next": Family(build_llava_next, "llava-hf/llava-v1.6-mistral-7b-hf", "Caption this image", "[/INST]",
                         ("56 px tiles and pinpoints / 6 (published 336 px)", "Mistral 2 layers x 64")),
    "qwen2-vl": Family(build_qwen2_vl, "Qwen/Qwen2-VL-2B-Instruct", "Caption this image", "",
                       ("max_pixels 112*112 (published 12845056)", "Qwen2 2 layers x 64, M-RoPE [2, 3, 3]")),
    "idefics3": Family(build_idefics3, "HuggingFaceTB/SmolVLM-256M-Instruct", "Caption this image", "",
                       ("64 px tiles, scale_factor 2, image_seq_len 4 (published 512 px, 4, 64)",
                        "Llama 2 layers x 64")),
    "paligemma": Family(build_paligemma, "google/paligemma-3b-mix-224", "caption en", "",
                        ("56 px images, 16 image tokens (published 224 px, 256)", "Gemma 2 layers x 64")),
}


def build_family_replica(family: str, out_dir: str | Path, seed: int = SEED) -> Path:
    if family not in FAMILIES:
        raise KeyError(f"no captioner family {family!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[family].builder(Path(out_dir), seed)
