"""Stochastic depth on transformers' BlipVisionModel, as upstream BLIP's ViT trains with it.

Upstream's `create_vit` builds ViT-L with drop_path_rate 0.1 (and so does the momentum copy), spread linearly over
the blocks (`torch.linspace(0, rate, depth)`: block 0 never drops, the last drops with probability `rate`). Each
block drops its attention branch and its MLP branch independently, per sample, and scales a kept branch by
1 / keep_prob (timm's DropPath), only in training. transformers' `BlipEncoderLayer` adds those two branches to
its residual stream itself and has no drop-path, so the rule is put on the branches from outside: a forward hook
on each layer's `self_attn` and `mlp` rescales or zeroes their output before the layer adds it. The weights, their
names and `save_pretrained` are untouched (no module is replaced), and `copy.deepcopy` carries the hooks along.
Masks come from torch's global generator, so activation checkpointing, which replays the RNG state when it
recomputes a layer, draws the same masks on the recomputation.
"""
from __future__ import annotations

import torch
from torch import nn


class DropPath:
    """A forward hook that drops a residual branch's output per sample with probability `rate` (training only)."""

    def __init__(self, rate: float):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must lie in [0, 1), got {rate}")
        self.rate = float(rate)

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.rate
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def __call__(self, module: nn.Module, args, output):
        if not module.training or self.rate == 0.0:
            return output
        if isinstance(output, tuple):            # BlipAttention returns (hidden states, attention weights)
            return (self.drop(output[0]),) + tuple(output[1:])
        return self.drop(output)


def layer_rates(rate: float, depth: int) -> list[float]:
    """Upstream's stochastic depth decay rule: linearly from 0 (first block) to `rate` (last block)."""
    return torch.linspace(0, rate, depth).tolist()


def _branches(layer: nn.Module) -> tuple[nn.Module, nn.Module]:
    return layer.self_attn, layer.mlp


def set_drop_path(vision_model: nn.Module, rate: float) -> None:
    """Give every encoder layer of a BlipVisionModel upstream's stochastic depth at `rate` (0 removes it).
    Calling it again replaces the previous setting."""
    layers = vision_model.encoder.layers
    for layer, layer_rate in zip(layers, layer_rates(rate, len(layers))):
        for branch in _branches(layer):
            for key in [k for k, hook in branch._forward_hooks.items() if isinstance(hook, DropPath)]:
                del branch._forward_hooks[key]
            if layer_rate > 0:
                branch.register_forward_hook(DropPath(layer_rate))


def drop_path_rates(vision_model: nn.Module) -> list[float]:
    """The per-layer drop-path rates a vision model trains with (0 where a layer has none)."""
    rates = []
    for layer in vision_model.encoder.layers:
        hooks = [h for h in _branches(layer)[0]._forward_hooks.values() if isinstance(h, DropPath)]
        rates.append(hooks[0].rate if hooks else 0.0)
    return rates
