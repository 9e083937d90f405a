"""Greedy decoding for batched captioning without `generate`'s per-step overheads; the same tokens in fp32.

`model.generate` (greedy, batch B) costs, at every new token, a host<->device synchronisation (its stopping
check asks the GPU whether all rows are done), a growing `torch.cat` of the sequences and a 2D->4D mask rebuild.
With a 7B model at batch 128 a decode step is a few milliseconds of GPU work, so these stalls leave the GPU idle
between steps and stop CUDA graphs from running back to back. This decoder keeps the same arithmetic and removes
the stalls:

- a static KV cache sized prompt + max_new_tokens, allocated once per batch shape;
- a fixed-shape 4D attention mask updated in place (the model receives a ready mask, as `generate`'s compiled
  path does: boolean for SDPA, additive for eager attention; other implementations are refused with a clear
  error), so every decode step has the same shapes and `torch.compile(mode="reduce-overhead")`
  captures it once as a CUDA graph (`compile=True`, CUDA only);
- new tokens written into a preallocated buffer; finished rows are fed the pad token exactly as `generate` does;
- the "all rows finished?" check reads the GPU only every `check_every` steps (the tokens after a row's end
  are pad anyway, so checking late costs at most check_every - 1 wasted steps, never a different caption);
- the prefill returns the last position's logits only (`logits_to_keep=1`).

Greedy argmax of the same logits gives the same tokens: tests/test_fast_decode.py checks token-for-token
equality with `generate` in fp32 on CPU (pocket model, left-padded batches, early end tokens). In bf16 on a GPU,
kernels differ (static vs dynamic cache shapes), so near-ties can flip: `artcap bench decode` reports the token
agreement with plain `generate` there. Only greedy decoding (num_beams=1, no sampling) is handled; anything else
is left to `generate` (`supports`).

Works with transformers 5.x whether the model's forward names its cache `past_key_values` (<= 5.2x) or `cache`,
and passes `cache_position` only where the forward takes it.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

ENGINES = ("generate", "fast", "fast_compiled")     # captioning engines: transformers' generate, or this decoder
# How each attention implementation reads a ready 4D mask: SDPA takes a boolean one (True = attend); eager attention
# adds the mask to the scores, so it needs 0 / -inf-like floats (a boolean mask added there masks nothing).
# Other implementations (flash-attention, flex) do not take a 4D mask at all: `generate` serves them.
MASK_KIND = {"sdpa": "bool", "eager": "additive"}


def attention_implementation(model) -> str:
    """The attention implementation of the model's language part (what the decode steps' mask feeds)."""
    config = model.config
    config = getattr(config, "text_config", None) or config
    return getattr(config, "_attn_implementation", None) or "eager"


def supports(decoding: dict[str, Any]) -> bool:
    """Whether generate kwargs describe plain greedy decoding (what this decoder reproduces)."""
    return (not decoding.get("do_sample", False) and decoding.get("num_beams", 1) == 1
            and set(decoding) <= {"max_new_tokens", "min_new_tokens", "do_sample", "num_beams", "cache_implementation"})


class GreedyDecoder:
    """Callable like `model.generate(**inputs, max_new_tokens=..., pad_token_id=...)` for greedy decoding:
    returns the prompt ids followed by the new tokens (pad after a row's end token), as `generate` does."""

    def __init__(self, model, compile: bool = False, check_every: int = 8):
        self.model = model
        self.check_every = max(1, check_every)
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.takes_cache_position = "cache_position" in params
        implementation = attention_implementation(model)
        if implementation not in MASK_KIND:
            raise ValueError(f"the fast decoder cannot drive attn_implementation={implementation!r} (it passes a "
                             f"ready 4D mask, which only {' and '.join(MASK_KIND)} take): use engine 'generate', "
                             "or load the model with attn_implementation='sdpa'")
        self.mask_kind = MASK_KIND[implementation]
        # CUDA graphs are what compilation buys here; on a CPU the eager step is used
        self.compile = compile and next(model.parameters()).is_cuda
        self._cache, self._cache_key = None, None
        self._step = (torch.compile(self._forward, mode="reduce-overhead", fullgraph=False) if self.compile
                      else self._forward)

    def _forward(self, **kwargs) -> torch.Tensor:
        return self.model(**kwargs, use_cache=True, logits_to_keep=1, return_dict=True).logits[:, -1, :]

    def _eos_ids(self, device) -> torch.Tensor:
        eos = self.model.generation_config.eos_token_id
        eos = [] if eos is None else (eos if isinstance(eos, list) else [eos])
        return torch.tensor(eos, dtype=torch.long, device=device)

    def _static_cache(self, batch: int, length: int, device):
        """One StaticCache per (batch, length, device), reset between calls: a captured CUDA graph reads and
        writes the cache's tensors at fixed addresses, so they must outlive the call (as generate's cache does)."""
        key = (batch, length, str(device), self.model.dtype)
        if self._cache_key != key:
            from transformers import StaticCache
            self._cache, self._cache_key = StaticCache(config=self.model.config, max_cache_len=length), key
        else:
            self._cache.reset()
        return self._cache

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 pad_token_id: int, min_new_tokens: int | None = None, **model_inputs) -> torch.Tensor:
        """model_inputs: the processor's other outputs (pixel_values, image_sizes, ...), already on the device."""
        for key in ("do_sample", "num_beams", "cache_implementation"):
            model_inputs.pop(key, None)        # greedy / static by construction (checked by `supports`)
        batch, prompt = input_ids.shape
        device = input_ids.device
        total = prompt + max_new_tokens
        eos = self._eos_ids(device)
        cache = self._static_cache(batch, total, device)
        # generate's positions for left padding: 0 at each row's first real token
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        next_position = positions[:, -1:] + 1
        # the decode steps' mask: prompt columns as given, new columns opened one per step
        visible = torch.zeros(batch, 1, 1, total, dtype=torch.bool, device=device)
        visible[:, 0, 0, :prompt] = attention_mask.bool()
        if self.mask_kind == "bool":
            mask, opened = visible, True
        else:
            blocked = torch.finfo(self.model.dtype).min
            mask = torch.zeros(visible.shape, dtype=self.model.dtype, device=device).masked_fill_(~visible, blocked)
            opened = 0.0
        new_tokens = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        unfinished = torch.ones(batch, dtype=torch.bool, device=device)

        prefill = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions,
                   self.cache_kwarg: cache, **model_inputs}
        if self.takes_cache_position:
            prefill["cache_position"] = torch.arange(prompt, device=device)
        logits = self._forward(**prefill)
        steps = 0
        for step in range(max_new_tokens):
            if min_new_tokens is not None and step < min_new_tokens and eos.numel():
                logits[:, eos] = float("-inf")          # as generate's MinNewTokensLengthLogitsProcessor
            token = logits.argmax(-1)
            token = torch.where(unfinished, token, torch.full_like(token, pad_token_id))
            new_tokens[:, step] = token
            if eos.numel():
                unfinished &= ~torch.isin(token, eos)
            steps = step + 1
            if steps == max_new_tokens or (steps % self.check_every == 0 and not bool(unfinished.any())):
                break
            column = prompt + step
            mask[:, 0, 0, column] = opened
            decode = {"input_ids": token[:, None], "attention_mask": mask, "position_ids": next_position + step,
                      self.cache_kwarg: cache}
            if self.takes_cache_position:
                decode["cache_position"] = torch.tensor([column], device=device)
            logits = self._step(**decode).clone()     # clone: a CUDA graph's output buffer is reused by the next call
        if eos.numel():          # trim trailing all-pad columns (checked late): generate stops at the step all end
            done_at = _last_needed_column(new_tokens[:, :steps], eos, pad_token_id)
            steps = min(steps, done_at)
        return torch.cat([input_ids, new_tokens[:, :steps]], dim=1)


def _last_needed_column(new: torch.Tensor, eos: torch.Tensor, pad: int) -> int:
    """The number of columns `generate` would have produced: up to the step where the last row ended."""
    is_eos = torch.isin(new, eos)
    if not bool(is_eos.any(dim=1).all()):
        return new.shape[1]
    return int(is_eos.int().argmax(dim=1).max()) + 1


class FastGenerateModel:
    """A model whose `generate` is GreedyDecoder (for greedy settings) and is the model in every other respect:
    hand it to `captioning.Captioner` in place of the model to caption through the fast path unchanged."""

    def __init__(self, model, compile: bool = False, check_every: int = 8):
        self._model = model
        self._decoder = GreedyDecoder(model, compile=compile, check_every=check_every)

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def eval(self):
        self._model.eval()
        return self

    def generate(self, **kwargs) -> torch.Tensor:
        decoding = {k: v for k, v in kwargs.items() if k in ("max_new_tokens", "min_new_tokens", "do_sample",
                                                              "num_beams", "cache_implementation")}
        if not supports(decoding):
            return self._model.generate(**kwargs)
        return self._decoder(**kwargs)
