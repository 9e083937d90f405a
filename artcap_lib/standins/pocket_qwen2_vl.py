"""The zoo's pocket Qwen2-VL: a captioner of a second architecture family, trained on the demo's pool like the
pocket LLaVA.

Qwen2-VL differs from LLaVA in everything the captioning path has to get right: a ChatML prompt with a default
system turn, the image as `<|vision_start|><|image_pad|><|vision_end|>` expanded by the processor to one token per
2 x 2 block of patches, pixel values as a flat list of patches with `image_grid_thw` saying whose they are, and M-RoPE
positions computed from `mm_token_type_ids`. This pocket model keeps all of that from Qwen/Qwen2-VL-2B-Instruct
(spatial merge 2, temporal patch 2, the chat template, the special tokens by name, <|im_end|> as EOS and
<|endoftext|> as padding, tied embeddings, rope theta 1e6) and shrinks the rest to the pocket LLaVA's sizes
(`DEVIATIONS`). Its patches are half the pocket LLaVA's, so that after the 2 x 2 merge each image token covers what
one pocket LLaVA token covers (12 px of a 48 px image: 16 image tokens).

It learns the pocket LLaVA's targets (`pocket_llava.assistant_caption`) with the loss on the answer only, the
prompt rendered by its own chat template exactly as at inference, and is saved in the hub's file layout (image
processor, tokenizer and chat template files, `processor_class` Qwen2VLProcessor), so `Captioner.from_pretrained`
loads it through `captioning.processors.load_processor` as it would load the published checkpoint. The answer is
the decoded new tokens (`answer_marker: ""`).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from artcap_lib.files import write_json
from artcap_lib.standins.pocket_llava import PocketSpec

HUB_ID = "Qwen/Qwen2-VL-2B-Instruct"
MERGE = 2                  # published spatial_merge_size / merge_size
TEMPORAL_PATCH = 2         # published temporal_patch_size: a still image is its frame twice
# the published 2B's [16, 24, 24] (temporal, height, width) rotary sections of its 128-dim heads, in proportion for
# the pocket's 32-dim heads (the sections add up to half the head dimension)
MROPE_SECTION = [4, 6, 6]
DEVIATIONS = (
    "patch_size = PocketSpec.patch_size / 2 = 6 px (published 14); min_pixels (2 * 6 * 2)^2, max_pixels image_size^2 "
    "(published 56*56 and 12845056)",
    "vision tower 3 layers x 96, 4 heads, mlp_ratio 2 (published 32 x 1280, 16 heads, 4); merger to 128",
    "Qwen2 decoder 2 layers x 128, 4 heads, 2 KV heads (published 28 x 1536, 12 and 2); M-RoPE sections [4, 6, 6] "
    "(published [16, 24, 24])",
    "a byte-level BPE of 600 tokens trained on the pool's captions: special tokens by name, ids 0-7 (published 151643-)",
)


def qwen_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE trained on `texts` with Qwen2-VL's special tokens: no BOS (Qwen prepends none), <|im_end|>
    ends a turn and is EOS, <|endoftext|> pads, ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from artcap_lib.standins.captioner_replicas import QWEN_SPECIAL, QWEN_TEMPLATE
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"], chat_template=QWEN_TEMPLATE)


def qwen_processor(tokenizer, image_size: int, patch_size: int):
    """Qwen2-VL's processor without its video part (that needs torchvision; captioning never passes videos)."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from artcap_lib.captioning.processors import image_only
    from artcap_lib.standins.captioner_replicas import CLIP_MEAN, CLIP_STD, QWEN_TEMPLATE
    factor = patch_size * MERGE          # smart_resize rounds both sides to multiples of this
    if image_size % factor:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size * merge = {factor}")
    # max_pixels = image_size^2: a square painting becomes image_size a side, as the pocket LLaVA's does; min_pixels
    # = 2 x 2 merged tokens, the published 56 * 56 in the pocket's units
    images = Qwen2VLImageProcessorPil(min_pixels=(2 * factor) ** 2, max_pixels=image_size ** 2, patch_size=patch_size,
                                      temporal_patch_size=TEMPORAL_PATCH, merge_size=MERGE, image_mean=CLIP_MEAN,
                                      image_std=CLIP_STD)
    return image_only(Qwen2VLProcessor)(image_processor=images, tokenizer=tokenizer, video_processor=None,
                                        chat_template=QWEN_TEMPLATE)


def qwen_config(tokenizer, spec: PocketSpec, patch_size: int):
    from transformers import Qwen2VLConfig
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = dict(vocab_size=len(tokenizer), hidden_size=spec.text_hidden, intermediate_size=spec.text_hidden * 3,
                num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads // 2,
                max_position_embeddings=spec.max_positions, rope_theta=1000000.0,
                rope_scaling={"type": "mrope", "mrope_section": MROPE_SECTION},
                # the published config names <|endoftext|> as bos_token_id although the tokenizer prepends nothing
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    vision = dict(depth=spec.vision_layers, embed_dim=spec.vision_hidden, hidden_size=spec.text_hidden,
                  num_heads=spec.heads, mlp_ratio=2, patch_size=patch_size, spatial_merge_size=MERGE,
                  temporal_patch_size=TEMPORAL_PATCH, in_channels=3)
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)


def conversation_text(prompt: str) -> str:
    """The rendered prompt without its special tokens: the words the tokenizer must know besides the captions."""
    from artcap_lib.standins.captioner_replicas import QWEN_SPECIAL, QWEN_TEMPLATE
    from jinja2 import Template
    text = Template(QWEN_TEMPLATE).render(messages=[{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True)
    for token in QWEN_SPECIAL:
        text = text.replace(token, "")
    return text


def build_pocket_qwen2_vl(corpus: list[str], spec: PocketSpec = PocketSpec(), prompt: str = "Caption this image",
                          seed: int = 0):
    """(model, processor): a randomly initialised pocket Qwen2-VL whose tokenizer knows `corpus` and the prompt."""
    from transformers import Qwen2VLForConditionalGeneration
    if spec.patch_size % MERGE:
        raise ValueError(f"patch_size {spec.patch_size}: must be a multiple of the merge size {MERGE}")
    patch = spec.patch_size // MERGE
    # answers follow "<|im_start|>assistant\n" directly, so captions are learnt without a leading space
    tokenizer = qwen_tokenizer([conversation_text(prompt), *corpus], spec.vocab_size)
    processor = qwen_processor(tokenizer, spec.image_size, patch)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(qwen_config(tokenizer, spec, patch))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # the published generation_config stops at either
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return model, processor


def save_processor(processor, out: Path) -> None:
    """The processor as the hub stores Qwen2-VL's: preprocessor_config.json naming Qwen2VLProcessor, the tokenizer
    files, chat_template.jinja. (`save_pretrained` of the processor itself would need the video part.)"""
    processor.image_processor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    (out / "chat_template.jinja").write_text(processor.chat_template, encoding="utf-8")
    path = out / "preprocessor_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    write_json(path, {**config, "processor_class": "Qwen2VLProcessor"})


def encode_qwen_examples(processor, images, captions: list[str], prompt: str) -> dict[str, torch.Tensor]:
    """`pocket_llava.encode_examples` (no space before the answer), with the flat patch list regrouped per image
    (n, patches, dim) so that minibatches can index it like every other per-example tensor."""
    from artcap_lib.standins.pocket_llava import encode_examples
    examples = encode_examples(processor, images, captions, prompt, answer_prefix="")
    grids = examples["image_grid_thw"]
    if not bool((grids == grids[0]).all()):
        raise ValueError("pre-training images of different sizes: their patch counts differ")
    examples["pixel_values"] = examples["pixel_values"].reshape(len(images), int(grids[0].prod()), -1)
    return examples


def flatten_patches(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A minibatch as Qwen2-VL takes it: the images' patches one after another, in the rows' order."""
    pixels = batch["pixel_values"]
    return {**batch, "pixel_values": pixels.reshape(-1, pixels.shape[-1])}


def train_pocket_qwen2_vl(pool_json: str | Path, scenes_json: str | Path, out_dir: str | Path, steps: int = 500,
                          batch_size: int = 32, lr: float = 1e-3, spec: PocketSpec = PocketSpec(),
                          prompt: str = "Caption this image", seed: int = 0) -> dict[str, Any]:
    """Build the pocket Qwen2-VL, train it on the pre-training pool (`pocket_llava.train`: the same optimiser,
    schedule and minibatch order as the pocket LLaVA), save model + processor to out_dir; training.json last."""
    from artcap_lib.standins.pocket_llava import pretraining_examples, train
    start = time.perf_counter()
    captions, images = pretraining_examples(pool_json, scenes_json)
    model, processor = build_pocket_qwen2_vl(captions, spec, prompt, seed)
    examples = encode_qwen_examples(processor, images, captions, prompt)
    encoded = time.perf_counter()
    log = train(model, examples, steps, batch_size, lr, seed, collate=flatten_patches)
    out = Path(out_dir)
    model.save_pretrained(out)
    save_processor(processor, out)
    report = {"family": "qwen2-vl", "imitates": HUB_ID, "deviations": list(DEVIATIONS), "spec": asdict(spec),
              "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "prompt": prompt,
              "pretrain_images": len(images), "parameters": sum(p.numel() for p in model.parameters()),
              "image_tokens": int(examples["image_grid_thw"][0].prod()) // MERGE ** 2,
              "encode_seconds": encoded - start, "train_seconds": time.perf_counter() - encoded, "loss": log,
              "example_caption": captions[0]}
    write_json(out / "training.json", report)      # last: its presence means the model is whole
    return report
