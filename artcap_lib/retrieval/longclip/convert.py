"""Long-CLIP checkpoints <-> transformers' CLIPModel, and the knowledge-preserved stretching 77 -> 248 positions.

Long-CLIP (Zhang et al., 2024) is OpenAI's CLIP with a 248-token text context. Its released checkpoints
(`longclip-L.pt`, `longclip-B.pt`) are plain state_dicts in OpenAI-CLIP's layout, with one twist: the text
positions are two tables of 248 rows, `positional_embedding` (used for positions 0-19, kept from CLIP and frozen
in their training) and `positional_embedding_res` (used for positions 20-247, the stretched part). The model
adds `positional_embedding * mask1 + positional_embedding_res * mask2`, so the effective table is the first 20
rows of the one and the remaining rows of the other. Here that becomes transformers' `CLIPModel` with
`max_position_embeddings=248` and one position table, which then loads, trains and saves like any HF model.

The stretching is how Long-CLIP was made from CLIP: keep the first 20 positions (well trained, since most
captions are short) and interpolate linearly between the remaining 57 with ratio 4; the last 4 rows continue
the final slope. 20 + 4 * 56 + 4 = 248 = 4 * 77 - 3 * 20.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

LONG_CONTEXT = 248
KEEP_POSITIONS = 20
STRETCH_RATIO = 4
# OpenAI's build_model drops these non-tensor entries; JIT-exported state_dicts may still carry them
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")


class CheckpointMismatchError(ValueError):
    """A checkpoint whose tensors do not fit the architecture: lists missing, unexpected and misshaped keys."""


def stretch_positions(table: torch.Tensor, keep: int = KEEP_POSITIONS, ratio: int = STRETCH_RATIO) -> torch.Tensor:
    """(n, d) position table -> (ratio * n - (ratio - 1) * keep, d): keep the first `keep` rows, interpolate the
    others `ratio`x, and extrapolate the last `ratio` rows along the final step (Long-CLIP's construction)."""
    n = table.shape[0]
    if not 0 < keep < n - 1:
        raise ValueError(f"cannot keep {keep} of {n} positions and stretch the rest")
    rest = table[keep:].float()                                        # (m, d)
    fractions = torch.arange(ratio, dtype=torch.float32) / ratio        # 0, 1/4, 2/4, 3/4
    left, right = rest[:-1], rest[1:]                                   # (m-1, d): each gap between known rows
    between = left[:, None] + fractions[None, :, None] * (right - left)[:, None]    # (m-1, ratio, d)
    tail = rest[-1] + fractions[:, None] * (rest[-1] - rest[-2])       # (ratio, d): continue the last slope
    out = torch.cat([table[:keep].float(), between.reshape(-1, table.shape[1]), tail])
    return out.to(table.dtype)


def stretch_clip_model(model, keep: int = KEEP_POSITIONS, ratio: int = STRETCH_RATIO):
    """A copy of a (77-position) transformers CLIPModel with its text positions stretched (to 248)."""
    from transformers import CLIPModel
    config = model.config.__class__.from_dict(model.config.to_dict())
    old = model.text_model.embeddings.position_embedding.weight.detach()
    new_table = stretch_positions(old, keep, ratio)
    config.text_config.max_position_embeddings = new_table.shape[0]
    state = dict(model.state_dict())
    state["text_model.embeddings.position_embedding.weight"] = new_table
    stretched = CLIPModel(config)
    load_strict(stretched, state, "stretched model")
    return stretched.to(old.dtype)


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict that fails with every missing, unexpected and misshaped key listed (not just the first)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misshaped:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("misshaped", misshaped))
                 if keys]
        raise CheckpointMismatchError(f"{source} does not fit the architecture; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------------------------
# OpenAI / Long-CLIP layout


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A longclip-*.pt / OpenAI CLIP state_dict, loaded with weights_only=True (no code runs on load)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Long-CLIP checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # a TorchScript archive or a pickle with code: refuse rather than execute it
        raise ValueError(f"{path}: not a plain state_dict loadable with torch.load(weights_only=True): {exc}") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state_dict of tensors, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items() if k not in _OPENAI_META_KEYS}


def openai_config(state: Mapping[str, torch.Tensor]):
    """The CLIPConfig of an OpenAI-layout state_dict (ViT image tower), read from the tensor shapes as OpenAI's
    build_model does (head width 64, QuickGELU)."""
    from transformers import CLIPConfig
    try:
        width = state["visual.conv1.weight"].shape[0]
        patch = state["visual.conv1.weight"].shape[-1]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_layers = _count_blocks(state, "visual.transformer.resblocks.")
        text_width = state["ln_final.weight"].shape[0]
        vocab, context = state["token_embedding.weight"].shape[0], state["positional_embedding"].shape[0]
        embed_dim = state["text_projection"].shape[1]
        text_layers = _count_blocks(state, "transformer.resblocks.")
    except KeyError as exc:
        raise CheckpointMismatchError(f"not an OpenAI-CLIP (ViT) layout: key {exc} missing") from exc
    return CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=text_width, intermediate_size=4 * text_width,
                         num_hidden_layers=text_layers, num_attention_heads=text_width // 64,
                         max_position_embeddings=context, hidden_act="quick_gelu",
                         bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=vision_layers,
                           num_attention_heads=width // 64, image_size=grid * patch, patch_size=patch,
                           hidden_act="quick_gelu"),
        projection_dim=embed_dim)


def _count_blocks(state: Mapping[str, Any], prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def _effective_text_positions(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    table = state["positional_embedding"]
    if "positional_embedding_res" not in state:     # plain OpenAI CLIP (77) or an already merged table
        return table
    res = state["positional_embedding_res"]
    if res.shape != table.shape:
        raise CheckpointMismatchError(f"positional_embedding {tuple(table.shape)} and positional_embedding_res "
                                      f"{tuple(res.shape)} differ in shape")
    return torch.cat([table[:KEEP_POSITIONS], res[KEEP_POSITIONS:]])


# (OpenAI block suffix, HF layer suffix) for everything but the fused attention projection
_BLOCK_RENAMES = (("attn.out_proj.weight", "self_attn.out_proj.weight"), ("attn.out_proj.bias", "self_attn.out_proj.bias"),
                  ("ln_1.weight", "layer_norm1.weight"), ("ln_1.bias", "layer_norm1.bias"),
                  ("ln_2.weight", "layer_norm2.weight"), ("ln_2.bias", "layer_norm2.bias"),
                  ("mlp.c_fc.weight", "mlp.fc1.weight"), ("mlp.c_fc.bias", "mlp.fc1.bias"),
                  ("mlp.c_proj.weight", "mlp.fc2.weight"), ("mlp.c_proj.bias", "mlp.fc2.bias"))
_TOP_RENAMES = (("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
                ("ln_final.weight", "text_model.final_layer_norm.weight"),
                ("ln_final.bias", "text_model.final_layer_norm.bias"),
                ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
                ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
                ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
                ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
                ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
                ("visual.ln_post.weight", "vision_model.post_layernorm.weight"),
                ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
                ("logit_scale", "logit_scale"))
_TOWERS = (("transformer.resblocks.", "text_model.encoder.layers."),
           ("visual.transformer.resblocks.", "vision_model.encoder.layers."))


def openai_to_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI/Long-CLIP state_dict -> CLIPModel state_dict (positions merged, projections transposed, the fused
    q/k/v projection split). Keys it does not know are passed through so that load_strict reports them."""
    state = dict(state)
    out: dict[str, torch.Tensor] = {}
    if "positional_embedding" in state:
        out["text_model.embeddings.position_embedding.weight"] = _effective_text_positions(state)
        state.pop("positional_embedding")
        state.pop("positional_embedding_res", None)
    for src, dst in _TOP_RENAMES:
        if src in state:
            out[dst] = state.pop(src)
    for src, dst in (("text_projection", "text_projection.weight"), ("visual.proj", "visual_projection.weight")):
        if src in state:    # OpenAI multiplies x @ proj; nn.Linear computes x @ W.T
            out[dst] = state.pop(src).T.contiguous()
    for key in sorted(state):
        tower = next(((s, d) for s, d in _TOWERS if key.startswith(s)), None)
        if tower is None:
            out[key] = state[key]
            continue
        index, suffix = key[len(tower[0]):].split(".", 1)
        prefix = f"{tower[1]}{index}."
        if suffix in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = "weight" if suffix.endswith("weight") else "bias"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), state[key].chunk(3, dim=0)):
                out[f"{prefix}self_attn.{name}.{kind}"] = part.contiguous()
            continue
        renamed = dict(_BLOCK_RENAMES).get(suffix)
        out[prefix + renamed if renamed else key] = state[key]
    return out


def hf_to_openai(state: Mapping[str, torch.Tensor], long_layout: bool = True) -> dict[str, torch.Tensor]:
    """CLIPModel state_dict -> OpenAI layout; with long_layout (a 248-position model) the text positions are
    written as Long-CLIP's two tables (`positional_embedding` and `positional_embedding_res`), so the original
    Long-CLIP code can load a model fine-tuned here."""
    state = dict(state)
    out: dict[str, torch.Tensor] = {}
    positions = state.pop("text_model.embeddings.position_embedding.weight")
    out["positional_embedding"] = positions.clone()
    if long_layout:
        out["positional_embedding_res"] = positions.clone()
    for src, dst in _TOP_RENAMES:
        out[src] = state.pop(dst)
    out["text_projection"] = state.pop("text_projection.weight").T.contiguous()
    out["visual.proj"] = state.pop("visual_projection.weight").T.contiguous()
    back = {hf: oa for oa, hf in _BLOCK_RENAMES}
    for key in sorted(state):
        tower = next(((s, d) for s, d in _TOWERS if key.startswith(d)), None)
        if tower is None:
            continue    # non-persistent buffers such as position_ids
        index, suffix = key[len(tower[1]):].split(".", 1)
        prefix = f"{tower[0]}{index}."
        if suffix.startswith("self_attn.q_proj."):
            kind = suffix.rsplit(".", 1)[1]
            parts = [state[f"{tower[1]}{index}.self_attn.{n}_proj.{kind}"] for n in "qkv"]
            out[f"{prefix}attn.in_proj_{kind}"] = torch.cat(parts, dim=0)
        elif suffix in back:
            out[prefix + back[suffix]] = state[key]
    return out


def load_openai_checkpoint(path: str | Path):
    """A transformers CLIPModel holding a longclip-*.pt (or OpenAI CLIP) checkpoint."""
    from transformers import CLIPModel
    state = read_checkpoint(path)
    model = CLIPModel(openai_config(state))
    load_strict(model, openai_to_hf(state), f"checkpoint {path}")
    return model


def save_openai_checkpoint(model, path: str | Path) -> None:
    """Write a CLIPModel in Long-CLIP's own layout (atomically): what the authors' code loads."""
    from artcap_lib.files import atomic_write_bytes
    import io
    buffer = io.BytesIO()
    long_layout = model.config.text_config.max_position_embeddings > 77
    torch.save(hf_to_openai(model.state_dict(), long_layout=long_layout), buffer)
    atomic_write_bytes(path, buffer.getvalue())
