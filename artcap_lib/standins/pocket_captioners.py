"""The pocket captioners a profile can name, and the one call that trains any of them on the demo's pool.

    train_pocket_captioner(name, pool_json, scenes_json, out_dir, ...)   -> the training report (training.json)

Each writes a Hugging Face directory (model + processor) to out_dir and training.json last, so a directory with
training.json is whole. The captioning step (`captioning.step.ensure_pocket_captioner`) trains one on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from artcap_lib.model_names import POCKET_LLAVA, POCKET_LLAVA_NEXT, POCKET_QWEN2VL


def _train_llava(pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed):
    from artcap_lib.standins.pocket_llava import PocketSpec, train_pocket_llava
    return train_pocket_llava(pool_json, scenes_json, out_dir, steps=steps, batch_size=batch_size, lr=lr,
                              spec=PocketSpec(image_size=image_size), prompt=prompt, seed=seed)


def build_pocket_llava_next(corpus: list[str], spec, prompt: str = "Caption this image", seed: int = 0):
    """(model, processor): a LLaVA-NeXT the size of the pocket LLaVA, with the same tokenizer recipe and
    llava-v1.6-mistral's [INST] prompt, anyres tiling over one tile size (a square painting: the whole image at
    the base resolution + one tile, each spec.image_size px, with LLaVA-NeXT's image_newline rows)."""
    import torch
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessorPil, LlavaNextProcessor)

    from artcap_lib.standins.captioner_replicas import CLIP_MEAN, CLIP_STD, NEXT_TEMPLATE
    from artcap_lib.standins.pocket_llava import train_tokenizer
    side = spec.image_size
    tokenizer = train_tokenizer([f"[INST] \n{prompt} [/INST]", *(" " + text for text in corpus)], spec.vocab_size)
    tokenizer.chat_template = NEXT_TEMPLATE
    pinpoints = [[side, side]]
    images = LlavaNextImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                        image_grid_pinpoints=pinpoints, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = LlavaNextProcessor(image_processor=images, tokenizer=tokenizer, patch_size=spec.patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=NEXT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=spec.vision_hidden, intermediate_size=spec.vision_hidden * 2,
                              num_hidden_layers=spec.vision_layers, num_attention_heads=spec.heads,
                              image_size=side, patch_size=spec.patch_size)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.text_hidden, intermediate_size=spec.text_hidden * 3,
                       num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads,
                       num_key_value_heads=spec.heads, max_position_embeddings=spec.max_positions,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=pinpoints,
                             image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                             vision_feature_select_strategy="default", pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


def _train_llava_next(pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed):
    from artcap_lib.standins.pocket_llava import PocketSpec, train_pocket_llava
    return train_pocket_llava(pool_json, scenes_json, out_dir, steps=steps, batch_size=batch_size, lr=lr,
                              spec=PocketSpec(image_size=image_size), prompt=prompt, seed=seed,
                              build=build_pocket_llava_next)


def _train_qwen2_vl(pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed):
    # another architecture family (ChatML, merged patches, M-RoPE): its own builder, encoding and saving
    from artcap_lib.standins.pocket_llava import PocketSpec
    from artcap_lib.standins.pocket_qwen2_vl import train_pocket_qwen2_vl
    return train_pocket_qwen2_vl(pool_json, scenes_json, out_dir, steps=steps, batch_size=batch_size, lr=lr,
                                 spec=PocketSpec(image_size=image_size), prompt=prompt, seed=seed)


POCKET_CAPTIONERS: dict[str, Callable[..., dict[str, Any]]] = {
    POCKET_LLAVA: _train_llava,
    POCKET_LLAVA_NEXT: _train_llava_next,
    POCKET_QWEN2VL: _train_qwen2_vl,
}


def train_pocket_captioner(name: str, pool_json: str | Path, scenes_json: str | Path, out_dir: str | Path,
                           steps: int, batch_size: int, lr: float, image_size: int, prompt: str,
                           seed: int = 0) -> dict[str, Any]:
    """Build the pocket captioner `name`, train it on the pre-training pool and save it to out_dir."""
    if name not in POCKET_CAPTIONERS:
        raise KeyError(f"no pocket captioner {name!r} (known: {', '.join(POCKET_CAPTIONERS)})")
    return POCKET_CAPTIONERS[name](pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed)
