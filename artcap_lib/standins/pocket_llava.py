"""The demo's pocket captioner: a tiny but real LLaVA, built, trained and saved here in Hugging Face format.

No MLLM weights ship with the project, so the demo profile makes its own: a `LlavaForConditionalGeneration`
(CLIP vision tower + projector + Llama decoder, a few hundred thousand parameters), a byte-level BPE
tokenizer trained with `tokenizers` on its captions, and a `LlavaProcessor` whose chat template renders
exactly the LLaVA-1.5 prompt ("USER: <image>\\n<prompt> ASSISTANT:"). It learns from the disjoint pre-training
pool (playing the part of LLaVA's web-scale pre-training) with captions worded like an assistant ("The image
features a large red circle on the left of a sky blue background."), unlike the human visual sentences, as
LLaVA's captions differ from Artpedia's. Saved with `save_pretrained`, it is then loaded and run by
`captioning.py` through exactly the path that runs llava-hf/llava-1.5-7b-hf. (How often its captions name
the scene's main object: `data.demo.main_object_accuracy`.)
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from artcap_lib.progress import Bar
from artcap_lib.captioning.prompts import LLAVA_CHAT_TEMPLATE, chat_prompt
from artcap_lib.files import write_json

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<image>"]
# per token; every other training input is per image. mm_token_type_ids: Qwen2-VL's modality of each token (0 text,
# 1 image), which its M-RoPE positions are computed from
TOKEN_COLUMNS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids")


@dataclass
class PocketSpec:
    image_size: int = 48           # the painting is resized to this many pixels a side
    patch_size: int = 12           # -> (48/12)^2 = 16 image tokens (+ CLS, dropped by the "default" strategy); at
                                   # patch 8 a one-minute tower learnt colour but not kind (~30%), at 12 it learns both
    vision_hidden: int = 96
    vision_layers: int = 3
    text_hidden: int = 128
    text_layers: int = 2
    heads: int = 4
    vocab_size: int = 600          # BPE vocabulary (256 bytes + merges): every caption word one token
    max_positions: int = 192


# ---------------------------------------------------------------------------------------------- captions
_MAIN_PLACE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}


def assistant_caption(scene: dict[str, Any]) -> str:
    """The pocket model's training target: an assistant-style description of a demo scene's main object.

    One sentence (the small objects are left out): a pocket model learns it in seconds, not minutes."""
    main = scene["objects"][0]
    return (f"The image features a large {main['colour']} {main['kind']} {_MAIN_PLACE[main['position']]} "
            f"of a {scene['background']} background.")


# ---------------------------------------------------------------------------------------------- building
def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (Llama-style special tokens, BOS prepended) trained on `texts` in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   extra_special_tokens={"image_token": "<image>"}, padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"], chat_template=LLAVA_CHAT_TEMPLATE)


def build_processor(tokenizer, image_size: int, patch_size: int):
    from transformers import CLIPImageProcessorPil, LlavaProcessor
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                            crop_size={"height": image_size, "width": image_size})
    # num_additional_image_tokens=1: the CLS token the vision tower adds (dropped by the "default" strategy)
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                          num_additional_image_tokens=1, vision_feature_select_strategy="default",
                          chat_template=LLAVA_CHAT_TEMPLATE)


def llava_config(tokenizer, spec: PocketSpec):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    vision = CLIPVisionConfig(hidden_size=spec.vision_hidden, intermediate_size=spec.vision_hidden * 2,
                              num_hidden_layers=spec.vision_layers, num_attention_heads=spec.heads,
                              image_size=spec.image_size, patch_size=spec.patch_size)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.text_hidden, intermediate_size=spec.text_hidden * 3,
                       num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
                       max_position_embeddings=spec.max_positions, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    # vision_feature_layer=-1: a 3-layer tower has no layer to spare (LLaVA-1.5 uses -2 of 24)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                       vision_feature_select_strategy="default", vision_feature_layer=-1,
                       pad_token_id=tokenizer.pad_token_id)


def build_pocket_llava(corpus: list[str], spec: PocketSpec = PocketSpec(), prompt: str = "Caption this image",
                       seed: int = 0):
    """(model, processor): a randomly initialised pocket LLaVA whose tokenizer knows `corpus` and the prompt."""
    from transformers import LlavaForConditionalGeneration
    conversation_text = f"USER: \n{prompt} ASSISTANT:"
    # answers follow "ASSISTANT:" after a space, so they are learnt with it (" The", not "The")
    tokenizer = train_tokenizer([conversation_text, *(" " + text for text in corpus)], spec.vocab_size)
    processor = build_processor(tokenizer, spec.image_size, spec.patch_size)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava_config(tokenizer, spec))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


# ---------------------------------------------------------------------------------------------- training
def encode_examples(processor, images: list[Image.Image], captions: list[str], prompt: str,
                    answer_prefix: str = " ") -> dict[str, torch.Tensor]:
    """Training tensors: the prompt exactly as at inference, then answer_prefix + caption + EOS; loss on the answer
    only. answer_prefix: what separates the answer from the prompt in the family's format (" " after LLaVA's
    "ASSISTANT:"; nothing after a ChatML "<|im_start|>assistant\n")."""
    tok = processor.tokenizer
    prompt_inputs = processor(images=images, text=[chat_prompt(processor, prompt)] * len(images), return_tensors="pt")
    prompt_ids = prompt_inputs["input_ids"]          # (n, P): the same prompt everywhere, so no padding
    answers = [tok(answer_prefix + c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in captions]
    width = max(map(len, answers))
    answer_ids = torch.full((len(answers), width), tok.pad_token_id)
    labels = torch.full((len(answers), prompt_ids.shape[1] + width), -100)
    for i, ids in enumerate(answers):
        answer_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, prompt_ids.shape[1]:prompt_ids.shape[1] + len(ids)] = torch.tensor(ids)
    input_ids = torch.cat([prompt_ids, answer_ids], dim=1)
    attention = torch.cat([torch.ones_like(prompt_ids), (labels[:, prompt_ids.shape[1]:] != -100).long()], dim=1)
    # every other image input (LLaVA-NeXT's image_sizes) is per row too, so minibatches slice it like pixel_values;
    # a per-token one (Qwen2-VL's mm_token_type_ids) gets 0 = text for the answer's columns
    extras = {k: (torch.cat([v, torch.zeros_like(answer_ids, dtype=v.dtype)], dim=1) if k in TOKEN_COLUMNS else v)
              for k, v in prompt_inputs.items() if k not in ("input_ids", "attention_mask")}
    return {"input_ids": input_ids, "attention_mask": attention, **extras, "labels": labels}


def train(model, examples: dict[str, torch.Tensor], steps: int, batch_size: int, lr: float, seed: int = 0,
          log_every: int = 50, collate=None) -> list[dict[str, float]]:
    """AdamW with warm-up and cosine decay over `steps` minibatches; returns the loss log. collate(batch) -> the
    model's inputs, for families whose image inputs are not one row per example (Qwen2-VL's patches)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    n = examples["input_ids"].shape[0]
    model.train()
    log, running, start = [], 0.0, time.perf_counter()
    order = torch.randperm(n, generator=generator)
    cursor = 0
    bar = Bar(steps, "training the pocket captioner", unit="step", leave=False)
    for step in range(steps):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        batch = {k: v[idx] for k, v in examples.items()}
        width = int(batch["attention_mask"].sum(1).max())      # drop all-padding tail columns
        batch = {k: (v[:, :width] if k in TOKEN_COLUMNS else v) for k, v in batch.items()}
        loss = model(**(collate(batch) if collate else batch)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            count = (step % log_every) + 1
            log.append({"step": step + 1, "loss": running / count, "seconds": time.perf_counter() - start})
            running = 0.0
        bar.update()
    bar.close()
    model.eval()
    return log


def pretraining_examples(pool_json: str | Path, scenes_json: str | Path) -> tuple[list[str], list[Image.Image]]:
    """(assistant captions, RGB images) of the pre-training pool, in id order: what every pocket captioner learns."""
    from artcap_lib.data.artpedia import image_path, load_artworks
    pool = load_artworks(pool_json)
    scenes = json.loads(Path(scenes_json).read_text(encoding="utf-8"))
    ids = sorted(pool)
    missing = [i for i in ids if i not in scenes]
    if missing:
        raise ValueError(f"{scenes_json}: no scene for pre-training entries {', '.join(missing[:5])}")
    images = []
    for i in ids:
        with Image.open(image_path(pool_json, pool[i])) as im:
            images.append(im.convert("RGB"))
    return [assistant_caption(scenes[i]) for i in ids], images


def train_pocket_llava(pool_json: str | Path, scenes_json: str | Path, out_dir: str | Path, steps: int = 500,
                       batch_size: int = 32, lr: float = 1e-3, spec: PocketSpec = PocketSpec(),
                       prompt: str = "Caption this image", seed: int = 0, build=None) -> dict[str, Any]:
    """Build the pocket LLaVA (or what `build(captions, spec, prompt, seed)` builds: another LLaVA-family pocket
    model), train it on the pre-training pool, save model + processor to out_dir.

    Returns (and writes to out_dir/training.json) the loss log and timings."""
    start = time.perf_counter()
    captions, images = pretraining_examples(pool_json, scenes_json)
    model, processor = (build or build_pocket_llava)(captions, spec, prompt, seed)
    examples = encode_examples(processor, images, captions, prompt)
    encoded = time.perf_counter()
    log = train(model, examples, steps, batch_size, lr, seed)
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    report = {"spec": asdict(spec), "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "prompt": prompt, "pretrain_images": len(images), "parameters": sum(p.numel() for p in model.parameters()),
              "encode_seconds": encoded - start, "train_seconds": time.perf_counter() - encoded, "loss": log,
              "example_caption": captions[0]}
    write_json(out / "training.json", report)      # last: its presence means the model is whole
    return report

