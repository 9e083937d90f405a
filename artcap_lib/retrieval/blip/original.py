"""BLIP's original checkpoints (Salesforce's `.pth` files) -> transformers' BlipForImageTextRetrieval + what HF lacks.

The authors fine-tuned from `model_large_retrieval_coco.pth` (`ORIGINAL_URL`, their Artpedia configs' `pretrained`),
loaded by BLIP's `load_checkpoint`: the file is `{"model": state_dict}` of BLIP's own modules (a timm-style ViT
`visual_encoder.*`, a BERT with cross-attention `text_encoder.*`, `vision_proj`, `text_proj`, `itm_head`, and for
a retrieval model also its momentum encoders `*_m`, feature queues and trained temperature `temp`). Upstream
interpolates the ViT position table when the image size differs, drops every key whose shape differs from the
model's and loads the rest with `strict=False`. The hub conversion `Salesforce/blip-itm-large-coco` keeps only the
network (no `temp`, no momentum encoders, no queues) and writes the ViT's LayerNorm eps as 1e-5 where BLIP's ViT
uses 1e-6.

`convert(src, out)` writes
  - the network as a Hugging Face model directory (config read from the tensor shapes, BLIP's ViT eps 1e-6, BLIP's
    tokenizer: BERT uncased + [DEC] + [ENC]; BLIP's 384 px bicubic resize with CLIP's mean/std), which `load_blip`
    loads like any checkpoint;
  - `EXTRAS` (safetensors, no pickle): `temp`, the momentum encoders and the queues the file holds, named as
    `BlipRetrievalObjective`'s state (`vision_model_m.*` in transformers' naming, `queue_ptr` for `ptr_queue`),
    which a fine-tune from that directory initialises its objective from (model.BlipRetrievalObjective.load_extras);
  - `RECORD` (JSON): the source, its size and SHA-256, what the file held, what was converted, interpolated,
    dropped or ignored.
`resolve(spec)` gives the converted directory of a profile's `blip.model` when it names an original checkpoint (a
URL, downloaded once, resumably, or a local file), converting once into a cache.
"""
from __future__ import annotations

import functools
import math
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

ORIGINAL_URL = ("https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
                "model_large_retrieval_coco.pth")
EXTRAS = "blip_original_extras.safetensors"
RECORD = "blip_original.json"
HEAD_DIM = 64                  # BLIP's ViT-B/L and BERT-base all use 64-dimensional heads: heads = width // 64
VIT_LAYER_NORM_EPS = 1e-6      # BLIP's VisionTransformer: partial(nn.LayerNorm, eps=1e-6)
BERT_LAYER_NORM_EPS = 1e-12    # med_config.json
MED_DROPOUT = 0.1              # med_config.json: hidden and attention dropout

ONLINE = ("visual_encoder.", "text_encoder.", "vision_proj.", "text_proj.", "itm_head.")
MOMENTUM = {"visual_encoder_m.": "vision_model_m.", "text_encoder_m.": "text_encoder_m.",
            "vision_proj_m.": "vision_proj_m.", "text_proj_m.": "text_proj_m."}
QUEUES = {"image_queue": "image_queue", "text_queue": "text_queue", "idx_queue": "idx_queue",
          "ptr_queue": "queue_ptr"}
# non-persistent in transformers (rebuilt from the config): not weights
NOT_WEIGHTS = re.compile(r"(^|\.)embeddings\.position_ids$")

_VIT_TOP = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
            "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
            "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
            "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}
_VIT_BLOCK = {"norm1": "layer_norm1", "attn.qkv": "self_attn.qkv", "attn.proj": "self_attn.projection",
              "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)\.(weight|bias)$")


class OriginalCheckpointError(ValueError):
    """A file that is not one of BLIP's original checkpoints (or not a readable one)."""


# ---- recognising and reading -------------------------------------------------------------------------------------


def is_url(spec: str) -> bool:
    return str(spec).startswith(("https://", "http://"))


def is_original(spec: str | Path) -> bool:
    """Whether a `blip.model` value names an original BLIP checkpoint: a URL or a file (not a model directory or a
    hub id). Salesforce's files end in .pth."""
    text = str(spec)
    return is_url(text) or text.endswith(".pth") or Path(text).is_file()


class _Inert:
    """Stands in for any class pickled beside the weights (an optimiser's or a config's): holds its arguments and
    state, runs none of the class's code."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


def _inert(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_Inert,), {"__module__": name.rsplit(".", 1)[0]})


def load_no_code(path: str | Path) -> Any:
    """torch.load with weights_only=True (no pickled code runs). Upstream loads with full pickle; where the file
    pickles other classes next to the weights, those load as inert stand-ins instead of their code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        with torch.serialization.safe_globals([(_inert(n), n) for n in names]):
            return torch.load(path, map_location="cpu", weights_only=True)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict of an original BLIP checkpoint: `checkpoint["model"]`, as BLIP's load_checkpoint reads it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BLIP checkpoint {path} not found")
    try:
        obj = load_no_code(path)
    except Exception as exc:
        raise OriginalCheckpointError(f"{path}: not a torch checkpoint readable without running code: {exc}") from exc
    state = obj.get("model") if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping):
        raise OriginalCheckpointError(f"{path}: expected BLIP's {{'model': state_dict}}, got "
                                      f"{sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if "visual_encoder.cls_token" not in state or "text_encoder.embeddings.word_embeddings.weight" not in state:
        raise OriginalCheckpointError(f"{path}: no BLIP ViT (visual_encoder.*) and BERT (text_encoder.*) weights")
    return state


# ---- renaming ----------------------------------------------------------------------------------------------------


def vit_key(key: str) -> str | None:
    """A key of BLIP's VisionTransformer -> transformers' BlipVisionModel (None: not a weight of it)."""
    if key in _VIT_TOP:
        return _VIT_TOP[key]
    match = _BLOCK_KEY.fullmatch(key)
    if match and match.group(2) in _VIT_BLOCK:
        return f"encoder.layers.{match.group(1)}.{_VIT_BLOCK[match.group(2)]}.{match.group(3)}"
    return None


def _count(state: Mapping[str, Any], prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def hf_config(state: Mapping[str, torch.Tensor], image_size: int | None = None):
    """The BlipConfig of an original checkpoint, read from its tensor shapes (head width 64, as BLIP's ViT-B/L and
    BERT-base); image_size None = the checkpoint's own (its position table's grid x the patch size)."""
    from transformers import BlipConfig
    try:
        width = state["visual_encoder.cls_token"].shape[-1]
        patch = state["visual_encoder.patch_embed.proj.weight"].shape[-1]
        grid = math.isqrt(state["visual_encoder.pos_embed"].shape[1] - 1)
        words = state["text_encoder.embeddings.word_embeddings.weight"]
        text_width = words.shape[1]
        cross_key = state.get("text_encoder.encoder.layer.0.crossattention.self.key.weight")
        config = dict(
            vision=dict(hidden_size=width, num_hidden_layers=_count(state, "visual_encoder.blocks."),
                        intermediate_size=state["visual_encoder.blocks.0.mlp.fc1.weight"].shape[0],
                        num_attention_heads=width // HEAD_DIM, image_size=image_size or grid * patch,
                        patch_size=patch, layer_norm_eps=VIT_LAYER_NORM_EPS, hidden_act="gelu"),
            text=dict(vocab_size=words.shape[0], hidden_size=text_width,
                      num_hidden_layers=_count(state, "text_encoder.encoder.layer."),
                      intermediate_size=state["text_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0],
                      num_attention_heads=text_width // HEAD_DIM,
                      max_position_embeddings=state["text_encoder.embeddings.position_embeddings.weight"].shape[0],
                      encoder_hidden_size=cross_key.shape[1] if cross_key is not None else width,
                      layer_norm_eps=BERT_LAYER_NORM_EPS, hidden_dropout_prob=MED_DROPOUT,
                      attention_probs_dropout_prob=MED_DROPOUT, hidden_act="gelu",
                      # BERT uncased + [DEC] + [ENC] (BLIP's init_tokenizer): [PAD] 0, [SEP] 102, [DEC] = bos
                      pad_token_id=0, sep_token_id=102, bos_token_id=words.shape[0] - 2),
            embed=state["vision_proj.weight"].shape[0])
    except KeyError as exc:
        raise OriginalCheckpointError(f"not BLIP's original layout: key {exc} missing") from exc
    for part in ("vision", "text"):
        if config[part]["hidden_size"] % HEAD_DIM:
            raise OriginalCheckpointError(f"{part} width {config[part]['hidden_size']} is not a multiple of BLIP's "
                                          f"{HEAD_DIM}-dimensional heads")
    return BlipConfig(vision_config=config["vision"], text_config=config["text"],
                      image_text_hidden_size=config["embed"])


def interpolate_pos_embed(table: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, d) -> (1, 1 + grid*grid, d): the class position kept, the patch grid resized bicubically (what
    upstream's interpolate_pos_embed does when the image size differs from the checkpoint's)."""
    old = math.isqrt(table.shape[1] - 1)
    if old == grid:
        return table
    patches = table[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([table[:, :1], resized.permute(0, 2, 3, 1).flatten(1, 2).to(table.dtype)], dim=1)


def split(state: Mapping[str, torch.Tensor], grid: int) -> dict[str, Any]:
    """Sort an original state_dict into {"model": HF BlipForImageTextRetrieval keys, "extras": objective keys,
    "ignored": keys that are neither, "interpolated": [(key, old grid, new grid)]}."""
    model, extras, ignored, interpolated = {}, {}, [], []

    def vision(prefix: str, out_prefix: str, into: dict) -> None:
        for key, value in state.items():
            if key.startswith(prefix):
                name = vit_key(key[len(prefix):])
                if name is None:
                    ignored.append(key)
                    continue
                if name == "embeddings.position_embedding" and math.isqrt(value.shape[1] - 1) != grid:
                    interpolated.append((key, math.isqrt(value.shape[1] - 1), grid))
                    value = interpolate_pos_embed(value, grid)
                into[out_prefix + name] = value

    vision("visual_encoder.", "vision_model.", model)
    vision("visual_encoder_m.", "vision_model_m.", extras)
    for key, value in state.items():
        if key.startswith(("visual_encoder.", "visual_encoder_m.")):
            continue
        if NOT_WEIGHTS.search(key):
            continue
        momentum = next((p for p in MOMENTUM if key.startswith(p)), None)
        if momentum:
            extras[MOMENTUM[momentum] + key[len(momentum):]] = value
        elif key.startswith(ONLINE):
            model[key] = value
        elif key in QUEUES:
            extras[QUEUES[key]] = value
        elif key == "temp":
            extras["temp"] = value.reshape(())
        else:
            ignored.append(key)
    return {"model": model, "extras": extras, "ignored": sorted(ignored), "interpolated": interpolated}


def _groups(extras: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What the extras hold, in words: temp's value, which momentum encoders, the queue length."""
    out: dict[str, Any] = {"temp": float(extras["temp"]) if "temp" in extras else None,
                           "momentum_encoders": [p.rstrip(".") for p in MOMENTUM.values()
                                                 if any(k.startswith(p) for k in extras)],
                           "queues": {k: list(extras[k].shape) for k in ("image_queue", "text_queue", "idx_queue",
                                                                        "queue_ptr") if k in extras}}
    if "idx_queue" in extras:
        ids = extras["idx_queue"][extras["idx_queue"] >= 0]
        out["queue_entries_with_an_image_id"] = int(ids.numel())
    return out


# ---- converting --------------------------------------------------------------------------------------------------


def convert(src: str | Path, out: str | Path, image_size: int | None = None,
            progress: Callable[[str], None] | None = print, source: str | None = None) -> dict[str, Any]:
    """Write the HF model, EXTRAS and RECORD of the original checkpoint file `src` to the directory `out` (written
    beside it and renamed: `out` is complete or absent). Returns the record."""
    from safetensors.torch import save_file
    from transformers import BlipForImageTextRetrieval, BlipImageProcessorPil, BlipProcessor

    from artcap_lib.files import sha256_file, write_json
    from artcap_lib.imaging import CLIP_MEAN, CLIP_STD
    from artcap_lib.retrieval.blip.model import offline_tokenizer
    src, out = Path(src), Path(out)
    say = progress or (lambda _m: None)
    state = read_state(src)
    config = hf_config(state, image_size)
    vision = config.vision_config
    parts = split(state, vision.image_size // vision.patch_size)
    model = BlipForImageTextRetrieval(config)
    own = model.state_dict()
    # upstream's load_checkpoint: keys whose shape differs from the model's are dropped, the rest loaded non-strictly
    dropped = sorted(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                     for k, v in parts["model"].items() if k in own and tuple(v.shape) != tuple(own[k].shape))
    usable = {k: v for k, v in parts["model"].items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    result = model.load_state_dict(usable, strict=False)
    missing = sorted(k for k in result.missing_keys if not NOT_WEIGHTS.search(k))
    tokenizer = offline_tokenizer()
    if len(tokenizer) != config.text_config.vocab_size:
        raise OriginalCheckpointError(f"{src}: a text vocabulary of {config.text_config.vocab_size} rows; BLIP's "
                                      f"tokenizer (BERT uncased + [DEC] + [ENC]) has {len(tokenizer)}")
    size = vision.image_size
    # BLIP's transform_test: Resize((size, size), bicubic), ToTensor, Normalize(CLIP mean, CLIP std)
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(
        size={"height": size, "width": size}, resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)),
        tokenizer=tokenizer)
    record = {"source": source or str(src), "file": str(src), "size": src.stat().st_size,
              "sha256": sha256_file(src), "image_size": size,
              "held": {"tensors": len(state), "model": len(parts["model"]), **_groups(parts["extras"])},
              "converted": len(usable), "interpolated": [list(i) for i in parts["interpolated"]],
              "dropped": dropped, "missing": missing, "ignored": parts["ignored"],
              "extras": sorted({k.split(".")[0] for k in parts["extras"]})}
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if parts["extras"]:
        save_file({k: v.contiguous() for k, v in parts["extras"].items()}, str(tmp / EXTRAS))
    write_json(tmp / RECORD, record)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    for line in describe(record):
        say(line)
    return record


def describe(record: Mapping[str, Any]) -> list[str]:
    """The conversion in lines: what the file held and what was used."""
    held = record["held"]
    lines = [f"{record['source']}: {record['size']:,} bytes, SHA-256 {record['sha256']}",
             f"  held {held['tensors']} tensors: network {held['model']}, temp "
             f"{'%.6g' % held['temp'] if held['temp'] is not None else 'absent'}, momentum encoders "
             f"{', '.join(held['momentum_encoders']) or 'absent'}, queues "
             f"{', '.join(f'{k} {v}' for k, v in held['queues'].items()) or 'absent'}",
             f"  converted {record['converted']} network tensors at {record['image_size']} px"]
    for key, old, new in record["interpolated"]:
        lines.append(f"  interpolated {key}: a {old}x{old} patch grid -> {new}x{new} (bicubic, as upstream)")
    for what in ("dropped", "missing", "ignored"):
        if record[what]:
            lines.append(f"  {what} ({len(record[what])}): {', '.join(record[what][:10])}"
                         f"{' ...' if len(record[what]) > 10 else ''}")
    if record["extras"]:
        lines.append(f"  for the fine-tune's objective ({EXTRAS}): {', '.join(record['extras'])}")
    else:
        lines.append("  nothing for the objective: temp starts at blip.temp_init, momentum encoders copy the "
                     "network, queues start as random unit vectors")
    return lines


def read_extras(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The objective's state a converted directory carries ({} for any other model directory)."""
    path = Path(model_dir) / EXTRAS
    if not path.is_file():
        return {}
    from safetensors.torch import load_file
    return load_file(str(path))


def read_record(model_dir: str | Path) -> dict[str, Any] | None:
    from artcap_lib.files import read_json
    path = Path(model_dir) / RECORD
    return read_json(path) if path.is_file() else None


# ---- resolving a profile's blip.model ------------------------------------------------------------------------------


def cache_root() -> Path:
    """Where downloaded and converted original checkpoints live: $ARTCAP_BLIP_CACHE, else the user cache."""
    if os.environ.get("ARTCAP_BLIP_CACHE"):
        return Path(os.environ["ARTCAP_BLIP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "artcap" / "blip-original"


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from artcap_lib.files import sha256_file
    return sha256_file(path)


def local_file(spec: str, progress: Callable[[str], None] | None = print) -> tuple[Path, str]:
    """(local path, SHA-256) of an original checkpoint: a URL is downloaded once into the cache (resumably)."""
    if is_url(spec):
        from artcap_lib import fetch
        info = fetch.fetch(spec, cache_root() / "downloads" / spec.rstrip("/").rsplit("/", 1)[-1], progress)
        return Path(info["path"]), info["sha256"]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"BLIP checkpoint {spec} not found")
    stat = path.stat()
    return path, _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def resolve(spec: str, image_size: int | None = None, progress: Callable[[str], None] | None = print) -> str:
    """The model directory for a profile's `blip.model`: converted (once, cached by the file's SHA-256 and the image
    size) when it names an original checkpoint, else the value as it is."""
    if not is_original(spec):
        return str(spec)
    path, digest = local_file(str(spec), progress)
    out = cache_root() / "converted" / f"{path.stem}-{digest[:16]}-{image_size or 'own'}px"
    if not (out / RECORD).is_file():
        convert(path, out, image_size, progress, source=str(spec))
    return str(out)
