"""Replicas of captioner families: each family's published hub layout, tiny random weights.

`Captioner` claims any image-text-to-text checkpoint; these prove it per family. Each builder writes a Hugging Face
directory in the file layout the hub serves (`_hub_files`: config.json, generation_config.json,
preprocessor_config.json, a flat processor_config.json where the published model has one, tokenizer files,
chat_template.json or .jinja) whose settings, special tokens and prompt format follow the hub model it names (the
values below are those published files'), with hidden sizes, layer counts and vocabularies shrunk, images made
small enough for a CPU test, and random seeded weights. `FAMILIES[family].deviations` says what was shrunk.

    build_family_replica("gemma3", out_dir)  -> out_dir (loadable by Captioner.from_pretrained)

Families: LLaVA-1.5 (the paper's replica, `standins.replicas`), LLaVA-NeXT, LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL,
InternVL, Idefics3 (SmolVLM), Gemma 3, Llama 3.2 Vision (Mllama), PaliGemma, BLIP-2 and Florence-2; each builder's
comment names what is particular to it. Tokenizers are byte-level BPEs trained here with the family's special tokens
by name (ids are not the published ones: the vocabularies are a few hundred tokens). Everything is local:
HF_HUB_OFFLINE=1 suffices.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from artcap_lib import imaging
from artcap_lib.files import write_json

SEED = 0
CLIP_MEAN, CLIP_STD = list(imaging.CLIP_MEAN), list(imaging.CLIP_STD)   # lists, as the hub's processor files hold it
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


def _hub_files(out: Path, model, processor, *, chat_template: str | None, template_file: str | None,
               family: str, processor_config: bool = True, generation: dict | None = None) -> Path:
    """Write the checkpoint in the file layout the hub serves: config.json + model.safetensors (+
    generation_config.json), the image processor's preprocessor_config.json and the tokenizer's files each on their
    own with `processor_class`, the processor's own settings in processor_config.json (where the published model has
    one: `processor_config=False` otherwise, e.g. PaliGemma), and the chat template in chat_template.json
    ({"chat_template": ...}, the older repositories) or chat_template.jinja. Not the nested processor_config.json
    that today's `save_pretrained` writes: the published files are what a user downloads."""
    out.mkdir(parents=True, exist_ok=True)
    for key, value in (generation or {}).items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(out)
    name = type(processor).__name__
    processor.tokenizer.save_pretrained(out)
    images = processor.image_processor.to_dict()
    images.pop("processor_class", None)
    write_json(out / "preprocessor_config.json", {**images, "processor_class": name})
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config.pop("chat_template", None)
    write_json(out / "tokenizer_config.json", {**tokenizer_config, "processor_class": name})
    (out / "chat_template.jinja").unlink(missing_ok=True)      # the tokenizer's, if it wrote one
    if processor_config:
        settings = {k: v for k, v in processor.to_dict().items()
                    if k not in type(processor).get_attributes() and k not in ("chat_template", "processor_class")}
        write_json(out / "processor_config.json", {**settings, "processor_class": name})
    if chat_template and template_file == "json":
        write_json(out / "chat_template.json", {"chat_template": chat_template})
    elif chat_template:
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
    return _hub_files(out, model, processor, chat_template=NEXT_TEMPLATE, template_file="json", family="llava-next")


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


def _qwen_processor(processor_cls, template_in_tokenizer: bool):
    """(tokenizer, processor, special-token ids) of the Qwen2-VL layout, which Qwen2.5-VL shares; the processor is
    built without a video processor: that part cannot exist without torchvision (captioning.processors)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from artcap_lib.captioning.processors import image_only
    tok = _tokenizer(QWEN_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                     chat_template=QWEN_TEMPLATE if template_in_tokenizer else None)
    images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=QWEN_MAX_PIXELS, patch_size=14,
                                      temporal_patch_size=2, merge_size=2, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = image_only(processor_cls)(image_processor=images, tokenizer=tok, video_processor=None,
                                          chat_template=QWEN_TEMPLATE)
    return tok, processor, {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}


def build_qwen2_vl(out: Path, seed: int = SEED) -> Path:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    tok, processor, ids = _qwen_processor(Qwen2VLProcessor, template_in_tokenizer=True)
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
    # the hub's Qwen2-VL has no processor_config.json: its processor has no settings of its own
    return _hub_files(out, model, processor, chat_template=QWEN_TEMPLATE, template_file="json", family="qwen2-vl",
                      processor_config=False)


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
    return _hub_files(out, model, processor, chat_template=IDEFICS_TEMPLATE, template_file="json", family="idefics3")


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
    # no chat template and no processor_config.json: image_seq_length sits in preprocessor_config.json
    return _hub_files(out, model, processor, chat_template=None, template_file=None, family="paligemma",
                      processor_config=False)


# ------------------------------------------------------------------------------------------------ LLaVA-1.5
def build_llava(out: Path, seed: int = SEED) -> Path:
    """llava-hf/llava-1.5-7b-hf, the paper's captioner: the replica of `standins.replicas` (every published file
    field by field), with its manifest."""
    from artcap_lib.standins.replicas import build_llava as build_paper_llava
    build_paper_llava(out)
    write_json(out / "replica.json", {"family": "llava-1.5", "imitates": FAMILIES["llava-1.5"].hub_id, "seed": SEED,
                                       "deviations": list(FAMILIES["llava-1.5"].deviations)})
    return out


# ------------------------------------------------------------------------------------------------ Gemma 3
# google/gemma-3-4b-it: the template writes <bos> itself (and the tokenizer adds one: tokenising the rendered text
# again gives two); the image is <start_of_image>, which the processor expands to "\n\n<start_of_image>" +
# <image_soft_token> x image_seq_length (256) + "<end_of_image>\n\n"; SigLIP at 896 px / 14 px patches pooled to
# 16 x 16 = mm_tokens_per_image; <end_of_turn> (106) ends the answer besides <eos> (1).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")
GEMMA3_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                  "<end_of_image>", "<image_soft_token>"]
GEMMA3_IMAGE = 56                       # published 896 (CPU-sized: 4 x 4 patches of 14 px pooled to 2 x 2 tokens)


def build_gemma3(out: Path, seed: int = SEED) -> Path:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
    tok = _tokenizer(GEMMA3_SPECIAL, bos="<bos>", eos="<eos>", pad="<pad>", chat_template=None, prepend_bos=True,
                     extra={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                            "eoi_token": "<end_of_image>"})
    tokens = 4
    images = Gemma3ImageProcessorPil(size={"height": GEMMA3_IMAGE, "width": GEMMA3_IMAGE}, image_mean=HALF,
                                     image_std=HALF, resample=2, do_pan_and_scan=None)
    processor = Gemma3Processor(image_processor=images, tokenizer=tok, image_seq_length=tokens,
                                chat_template=GEMMA3_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in GEMMA3_SPECIAL}
    config = Gemma3Config(
        text_config=_tiny_text(len(tok), tok, head_dim=16, sliding_window=64, query_pre_attn_scalar=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=GEMMA3_IMAGE, patch_size=14, vision_use_head=False),
        mm_tokens_per_image=tokens, boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"])
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=GEMMA3_TEMPLATE, template_file="json", family="gemma3",
                      generation={"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                                  "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]]})


# ------------------------------------------------------------------------------------------------ Llama 3.2 Vision
# meta-llama/Llama-3.2-11B-Vision-Instruct (Mllama): the template writes <|begin_of_text|> itself, puts no system turn
# before an image (and refuses one), and renders the image as <|image|>, which the processor keeps as one token; the
# model attends to the image through cross-attention layers; tiles of 560 px, up to 4 per image (aspect-ratio ids);
# <|eot_id|> ends the answer. The template's tool-calling branches are left out (captioning sends no tools).
MLLAMA_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n"
    "{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n"
    "{#- Find out if there are any images #}\n{% set image_ns = namespace(has_images=false) %}\n"
    "{%- for message in messages %}\n    {%- for content in message['content'] %}\n"
    "        {%- if content['type'] == 'image' %}\n            {%- set image_ns.has_images = true %}\n"
    "        {%- endif %}\n    {%- endfor %}\n{%- endfor %}\n"
    "{#- Error out if there are images and system message #}\n"
    "{%- if image_ns.has_images and not system_message == \"\" %}\n"
    "    {{- raise_exception(\"Prompting with images is incompatible with system messages.\") }}\n{%- endif %}\n"
    "{#- System message if there are no images #}\n{%- if not image_ns.has_images %}\n"
    "    {{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "    {{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "    {{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n    {{- system_message }}\n    {{- \"<|eot_id|>\" }}\n"
    "{%- endif %}\n{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "    {%- if message['content'] is string %}\n        {{- message['content'] }}\n    {%- else %}\n"
    "        {%- for content in message['content'] %}\n            {%- if content['type'] == 'image' %}\n"
    "                {{- '<|image|>' }}\n            {%- elif content['type'] == 'text' %}\n"
    "                {{- content['text'] }}\n            {%- endif %}\n        {%- endfor %}\n    {%- endif %}\n"
    "    {{- '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n")
MLLAMA_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>"]
MLLAMA_TILE = 28                        # published 560 (CPU-sized: 2 x 2 patches of 14 px per tile)


def build_mllama(out: Path, seed: int = SEED) -> Path:
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
    tok = _tokenizer(MLLAMA_SPECIAL, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>",
                     chat_template=None, prepend_bos=True)
    images = MllamaImageProcessorPil(size={"height": MLLAMA_TILE, "width": MLLAMA_TILE}, max_image_tiles=4,
                                     image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=2)
    processor = MllamaProcessor(image_processor=images, tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in MLLAMA_SPECIAL}
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                  image_size=MLLAMA_TILE, patch_size=14, max_num_tiles=4, intermediate_layers_indices=[0],
                  vision_output_dim=64)
    text = _tiny_text(len(tok), tok, cross_attention_layers=[1])
    text.pop("max_position_embeddings")
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=ids["<|image|>"])
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    # the hub's generation_config.json: <|end_of_text|>, <|eom_id|>, <|eot_id|> all end a turn
    return _hub_files(out, model, processor, chat_template=MLLAMA_TEMPLATE, template_file="json", family="mllama",
                      processor_config=False,
                      generation={"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                                  "eos_token_id": [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]})


# ------------------------------------------------------------------------------------------------ LLaVA-OneVision
# llava-hf/llava-onevision-qwen2-0.5b-ov-hf: processor_config.json carries num_image_tokens (729 = 27 x 27 SigLIP
# patches at 384 px), vision_feature_select_strategy "full" and vision_aspect_ratio "anyres_max_9", which the
# processor needs to count image tokens (anyres tiles, unpadded to the image's aspect ratio); the processor has a
# video part (no torchvision: captioning.processors); Qwen2 ChatML without a system turn, the image right after
# "<|im_start|>user ".
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
ONEVISION_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
ONEVISION_TILE = 28                     # published 384 (CPU-sized: 2 x 2 patches of 14 px)


def build_llava_onevision(out: Path, seed: int = SEED) -> Path:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    from artcap_lib.captioning.processors import image_only
    tok = _tokenizer(ONEVISION_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=None,
                     extra={"image_token": "<image>", "video_token": "<video>"})
    tile = ONEVISION_TILE
    # the published pinpoints are multiples of 384 from 1 x 1 to 6 x 6 tiles; here 1..3 tiles a side
    pinpoints = [[tile * h, tile * w] for h in range(1, 4) for w in range(1, 4)]
    images = LlavaOnevisionImageProcessorPil(size={"height": tile, "width": tile}, image_grid_pinpoints=pinpoints,
                                             image_mean=HALF, image_std=HALF, resample=3, do_pad=True)
    tokens = (tile // 14) ** 2
    processor = image_only(LlavaOnevisionProcessor)(
        image_processor=images, tokenizer=tok, video_processor=None, num_image_tokens=tokens,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=ONEVISION_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ONEVISION_SPECIAL}
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=tile, patch_size=14),
        text_config=dict(model_type="qwen2", **_tiny_text(len(tok), tok, tie_word_embeddings=True)),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_layer=-1,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=pinpoints,
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=ONEVISION_TEMPLATE, template_file="json",
                      family="llava-onevision", generation={"pad_token_id": tok.pad_token_id,
                                                            "eos_token_id": tok.eos_token_id})


# ------------------------------------------------------------------------------------------------ Qwen2.5-VL
# Qwen/Qwen2.5-VL-3B-Instruct: Qwen2-VL's prompt format, image processor and token layout; the vision tower adds
# window attention (window_size 112, full attention in fullatt_block_indexes) and an out_hidden_size merger.
def build_qwen2_5_vl(out: Path, seed: int = SEED) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    tok, processor, ids = _qwen_processor(Qwen2_5_VLProcessor, template_in_tokenizer=False)
    config = Qwen2_5_VLConfig(
        text_config=_tiny_text(len(tok), tok, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                               rope_theta=1000000.0, tie_word_embeddings=True),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[1], in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=QWEN_TEMPLATE, template_file="json", family="qwen2.5-vl",
                      processor_config=False,
                      generation={"pad_token_id": tok.pad_token_id,
                                  "eos_token_id": [tok.eos_token_id, ids["<|endoftext|>"]]})


# ------------------------------------------------------------------------------------------------ InternVL
# OpenGVLab/InternVL3-1B-hf: the template renders the image as <IMG_CONTEXT>, which the processor expands to
# <img> + <IMG_CONTEXT> x image_seq_length (256) per tile + </img>; tiles of 448 px cropped to the aspect ratio
# (crop_to_patches, up to 12, plus a thumbnail); pixel shuffle (downsample_ratio 0.5); Qwen2 ChatML; a video part.
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}")
INTERNVL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
INTERNVL_TILE = 56                      # published 448 (CPU-sized: 4 x 4 patches of 14 px -> 2 x 2 tokens)


def build_internvl(out: Path, seed: int = SEED) -> Path:
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from artcap_lib.captioning.processors import image_only
    tok = _tokenizer(INTERNVL_SPECIAL, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=None,
                     extra={"start_image_token": "<img>", "end_image_token": "</img>",
                            "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    tile = INTERNVL_TILE
    images = GotOcr2ImageProcessorPil(size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1,
                                      max_patches=12, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                                      resample=3)
    tokens = (tile // 14 // 2) ** 2
    processor = image_only(InternVLProcessor)(image_processor=images, tokenizer=tok, video_processor=None,
                                              image_seq_length=tokens, chat_template=INTERNVL_TEMPLATE)
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=[tile, tile], patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", **_tiny_text(len(tok), tok)),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5, vision_feature_layer=-1,
        vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=INTERNVL_TEMPLATE, template_file="jinja",
                      family="internvl", generation={"pad_token_id": tok.pad_token_id,
                                                     "eos_token_id": tok.eos_token_id})


# ------------------------------------------------------------------------------------------------ BLIP-2
# Salesforce/blip2-opt-2.7b: no chat template; processor_config.json's num_query_tokens (32) <image> tokens go before
# the text's BOS ("</s>", OPT's), where the Q-Former's outputs are put; the tokenizer has <image> as an added token
# but no named image_token (so the processor makes its own AddedToken). The prompt is a prefix: "" for a plain
# caption, "a painting of", or "Question: ... Answer:".
BLIP2_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]
BLIP2_IMAGE = 28                        # published 224 (CPU-sized: 2 x 2 patches of 14 px)


def build_blip2(out: Path, seed: int = SEED) -> Path:
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, OPTConfig
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    tok = _tokenizer(BLIP2_SPECIAL, bos="</s>", eos="</s>", pad="<pad>", chat_template=None, prepend_bos=True)
    images = BlipImageProcessorPil(size={"height": BLIP2_IMAGE, "width": BLIP2_IMAGE}, image_mean=CLIP_MEAN,
                                   image_std=CLIP_STD, resample=3, do_convert_rgb=True)
    queries = 4
    processor = Blip2Processor(image_processor=images, tokenizer=tok, num_query_tokens=queries)
    text = OPTConfig(vocab_size=len(tok), hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                     word_embed_proj_dim=64, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=BLIP2_IMAGE, patch_size=14),
        qformer_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            encoder_hidden_size=32, vocab_size=64),
        text_config=text.to_dict(), num_query_tokens=queries, image_token_index=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=None, template_file=None, family="blip-2",
                      generation={"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                                  "eos_token_id": tok.eos_token_id})


# ------------------------------------------------------------------------------------------------ Florence-2
# florence-community/Florence-2-base (transformers' own Florence2): an encoder-decoder (DaViT vision tower, BART);
# the prompt is a task token ("<CAPTION>"), which the processor turns into its question ("What does the image
# describe?") behind <image> x image_seq_length (577 at 768 px) and BOS; generate returns decoder tokens only;
# location tokens <loc_0>..<loc_999> (here 0..9) for the other tasks.
FLORENCE_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<image>"] + [f"<loc_{i}>" for i in range(10)]
FLORENCE_IMAGE = 64                     # published 768 (CPU-sized: strides 4 x 2 -> 8 x 8 features + 1)


def build_florence2(out: Path, seed: int = SEED) -> Path:
    from transformers import BartConfig, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    tok = _tokenizer(FLORENCE_SPECIAL, bos="<s>", eos="</s>", pad="<pad>", chat_template=None,
                     extra={"image_token": "<image>"})
    images = CLIPImageProcessorPil(size={"height": FLORENCE_IMAGE, "width": FLORENCE_IMAGE}, do_center_crop=False,
                                   crop_size={"height": FLORENCE_IMAGE, "width": FLORENCE_IMAGE},
                                   image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample=3)
    images.image_seq_length = (FLORENCE_IMAGE // 8) ** 2 + 1
    # processor_config.json's post_processor_config: how each task's answer is parsed (pure text for captions)
    parsing = {"ocr": {"pattern": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"
                                  r"<loc_(\d+)><loc_(\d+)>", "area_threshold": 0.0},
               "phrase_grounding": {"banned_grounding_tokens": ["the image"]}, "pure_text": {},
               "description_with_bboxes": {}, "description_with_polygons": {}, "polygons": {}, "bboxes": {},
               "description_with_bboxes_or_polygons": {}}
    processor = Florence2Processor(image_processor=images, tokenizer=tok, post_processor_config=parsing)
    text = BartConfig(vocab_size=len(tok), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                      decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=tok.bos_token_id)
    vision = dict(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                  patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[1, 2], num_groups=[1, 2], window_size=4,
                  projection_dim=64)
    config = Florence2Config(text_config=text.to_dict(), vision_config=vision,
                             image_token_id=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config)
    return _hub_files(out, model, processor, chat_template=None, template_file=None, family="florence-2",
                      generation={"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                                  "eos_token_id": tok.eos_token_id, "decoder_start_token_id": tok.eos_token_id})


FAMILIES: dict[str, Family] = {
    "llava-1.5": Family(build_llava, "llava-hf/llava-1.5-7b-hf", "Caption this image", "ASSISTANT:",
                        ("standins.replicas' LLaVA-1.5 replica: Llama 2 layers x 32, Llama's id layout with a "
                         "byte-level vocabulary",)),
    "llava-next": Family(build_llava_next, "llava-hf/llava-v1.6-mistral-7b-hf", "Caption this image", "[/INST]",
                         ("56 px tiles and pinpoints / 6 (published 336 px)", "Mistral 2 layers x 64")),
    "qwen2-vl": Family(build_qwen2_vl, "Qwen/Qwen2-VL-2B-Instruct", "Caption this image", "",
                       ("max_pixels 112*112 (published 12845056)", "Qwen2 2 layers x 64, M-RoPE [2, 3, 3]")),
    "idefics3": Family(build_idefics3, "HuggingFaceTB/SmolVLM-256M-Instruct", "Caption this image", "",
                       ("64 px tiles, scale_factor 2, image_seq_len 4 (published 512 px, 4, 64)",
                        "Llama 2 layers x 64")),
    "paligemma": Family(build_paligemma, "google/paligemma-3b-mix-224", "caption en", "",
                        ("56 px images, 16 image tokens (published 224 px, 256)", "Gemma 2 layers x 64")),
    "gemma3": Family(build_gemma3, "google/gemma-3-4b-it", "Caption this image", "",
                     ("56 px images, 4 image tokens (published 896 px, 256)", "Gemma 3 2 layers x 64",
                      "tokenizer_class PreTrainedTokenizerFast (published GemmaTokenizer): a byte-level BPE")),
    "mllama": Family(build_mllama, "meta-llama/Llama-3.2-11B-Vision-Instruct", "Caption this image", "",
                     ("28 px tiles (published 560)", "vision 2 + 1 global layers x 32, text 2 layers x 64 with "
                      "cross-attention at layer 1", "the template's tool-calling branches left out")),
    "llava-onevision": Family(build_llava_onevision, "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
                              "Caption this image", "",
                              ("28 px tiles, num_image_tokens 4, pinpoints up to 3 x 3 tiles (published 384 px, "
                               "729, 6 x 6)", "Qwen2 2 layers x 64")),
    "qwen2.5-vl": Family(build_qwen2_5_vl, "Qwen/Qwen2.5-VL-3B-Instruct", "Caption this image", "",
                         ("max_pixels 112*112 (published 12845056)", "vision 2 layers x 32, window attention",
                          "Qwen2 2 layers x 64, M-RoPE [2, 3, 3]")),
    "internvl": Family(build_internvl, "OpenGVLab/InternVL3-1B-hf", "Caption this image", "",
                       ("56 px tiles, image_seq_length 4 (published 448 px, 256)", "Qwen2 2 layers x 64")),
    "blip-2": Family(build_blip2, "Salesforce/blip2-opt-2.7b", "a painting of", "",
                     ("28 px images, 4 query tokens (published 224 px, 32)", "OPT 2 layers x 64, Q-Former 2 x 32")),
    "florence-2": Family(build_florence2, "florence-community/Florence-2-base", "<CAPTION>", "",
                         ("64 px images, 65 image tokens (published 768 px, 577)",
                          "DaViT 2 stages x 16/32, BART 2+2 layers x 64", "10 location tokens (published 1000)")),
}


def build_family_replica(family: str, out_dir: str | Path, seed: int = SEED) -> Path:
    if family not in FAMILIES:
        raise KeyError(f"no captioner family {family!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[family].builder(Path(out_dir), seed)
