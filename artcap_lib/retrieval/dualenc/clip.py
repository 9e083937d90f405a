"""CLIP (openai/clip-vit-large-patch14) as an Experiment-2 retrieval model: Long-CLIP's starting point, as published.

The model is a transformers CLIPModel read as it is, 77 text positions and no stretching, so it is the control of
Long-CLIP's claim: how much of Long-CLIP's difference is the 248-position context. Captions are cut at 77 tokens (the
cut is counted: about every joined Artpedia caption is longer).

Objective: CLIP's own, symmetric InfoNCE over the batch (gathered across processes under DDP) with its learnable
temperature, capped at 100 (`objectives.infonce_step`, the one Long-CLIP fine-tunes with).
Recipe (`dualenc.settings.ClipConfig`): AdamW (betas 0.9/0.98, eps 1e-6: CLIP's ViT-L setting; decay 0.1 on matrices only),
linear warm-up over 10% of the steps then cosine to 0, lr 1e-6 at batch 40 for 6 epochs, early stop on validation
loss: a ViT-L/14 pre-trained on 400M pairs forgets fast at the lr of from-scratch training, and 2k captions are a
few hundred steps.
Scores: cosine (main: CLIP's training geometry and its zero-shot score) and the raw dot product beside it (Long-CLIP's
authors' ranking, for a like-for-like comparison).
Pocket: `standins.pocket_longclip`'s builder at 77 positions (a CLIP BPE learnt on the pool's captions).
"""
from __future__ import annotations

from typing import Any

from artcap_lib.retrieval.dualenc import objectives
from artcap_lib.retrieval.dualenc.adapter import DualEncoder, DualEncoderModel, text_positions
from artcap_lib.retrieval.dualenc.data import TextInputs
from artcap_lib.model_names import POCKET_CLIP, pocket

CONTEXT = 77


class Clip(DualEncoderModel):
    name = "clip"
    title = "CLIP"
    pocket = POCKET_CLIP
    model_class = "CLIPModel"
    scores = {"cosine": "cosine", "dot": "raw dot product"}
    step = staticmethod(objectives.infonce_step)
    betas, eps = (0.9, 0.98), 1e-6
    bench_defaults = {"source": "random:clip-vit-large-patch14", "batch_size": 40, "tokens": CONTEXT}

    def load_bundle(self, location) -> DualEncoder:
        bundle = super().load_bundle(location)
        if text_positions(bundle) != CONTEXT:
            bundle.note = f"{text_positions(bundle)} text positions (not CLIP's 77)"
        return bundle

    def text_inputs(self, bundle: DualEncoder) -> TextInputs:
        # causal text tower pooled at the end token: padding to the batch's longest caption reads what padding
        # to 77 would, with less compute
        return TextInputs(text_positions(bundle))

    def build_pocket(self, corpus: list[str], seed: int = 0, batch_size: int = 64) -> DualEncoder:
        # InfoNCE's temperature needs no batch-dependent start (CLIP's 1/0.07 serves any batch)
        model, tokenizer, processor = pocket(POCKET_CLIP).build(corpus, seed=seed, max_positions=CONTEXT)
        return DualEncoder(model, tokenizer, processor, source=POCKET_CLIP)

    def bench_text(self, bundle: DualEncoder, n: int, tokens: int, generator) -> dict[str, Any]:
        import torch
        if not 2 <= tokens <= text_positions(bundle):
            raise ValueError(f"CLIP reads at most {text_positions(bundle)} tokens; got --tokens {tokens}")
        tok = bundle.tokenizer
        ids = torch.randint(0, bundle.model.config.text_config.vocab_size - 2, (n, tokens), generator=generator)
        ids[:, 0], ids[:, -1] = tok.bos_token_id, tok.eos_token_id
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
