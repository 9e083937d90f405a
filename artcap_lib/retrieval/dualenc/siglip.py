"""SigLIP (google/siglip-base-patch16-224) as an Experiment-2 retrieval model: transformers' SiglipModel with its own
tokenizer and image processor.

Text: SigLIP's text tower pools its LAST position and was trained on texts padded to 64 tokens without an attention
mask, so captions are cut at 64 tokens (the cut is counted), always padded to 64 with its pad token, and never given
a mask (`data.TextInputs(64, pad_to_max_length=True, attention_mask=False)`). The hub's processor would not pad
unless asked: padding is set here for training and scoring alike.
Objective: the pairwise sigmoid loss with its learnt temperature `logit_scale` (t = exp) and bias `logit_bias`
(`objectives.sigmoid_step`; features gathered across processes under DDP, each process's images against all texts).
Recipe (`dualenc.settings.SiglipConfig`): AdamW with betas 0.9/0.95 (the SigLIP paper lowers beta2 from 0.999 for stability),
eps 1e-8, decay 0.1 on matrices only, warm-up over 10% then cosine to 0, lr 1e-5 at batch 40, 6 epochs, early stop
on validation loss. 1e-5 rather than CLIP-L's 1e-6: a B/16 (203M parameters, 12 layers of width 768) is moved less by
a step than an L/14, and the sigmoid loss's gradient does not grow with the number of negatives, so a small batch
does not call for a smaller step.
Scores: the sigmoid logit t * cosine + b (main: SigLIP's own pair score; sigmoid of it is the match probability)
and the cosine; as t > 0 both rank identically, and their metrics agree.
Pocket: `standins.pocket_siglip` (a unigram tokenizer with SigLIP's conventions learnt on the pool's captions).
"""
from __future__ import annotations

from typing import Any

from artcap_lib.retrieval.dualenc import objectives
from artcap_lib.retrieval.dualenc.adapter import DualEncoder, DualEncoderModel, text_positions
from artcap_lib.retrieval.dualenc.data import TextInputs
from artcap_lib.model_names import POCKET_SIGLIP, pocket

CONTEXT = 64


class Siglip(DualEncoderModel):
    name = "siglip"
    title = "SigLIP"
    pocket = POCKET_SIGLIP
    model_class = "SiglipModel"
    scores = {"sigmoid": "sigmoid logit", "cosine": "cosine"}
    step = staticmethod(objectives.sigmoid_step)
    betas, eps = (0.9, 0.95), 1e-8
    bench_defaults = {"source": "random:siglip-base-patch16-224", "batch_size": 40, "tokens": CONTEXT}

    def load_bundle(self, location) -> DualEncoder:
        bundle = super().load_bundle(location)
        if text_positions(bundle) != CONTEXT:
            bundle.note = f"{text_positions(bundle)} text positions (not SigLIP's 64)"
        return bundle

    def text_inputs(self, bundle: DualEncoder) -> TextInputs:
        return TextInputs(text_positions(bundle), pad_to_max_length=True, attention_mask=False)

    def logits(self, loaded: DualEncoder) -> dict[str, float]:
        model = loaded.model
        return {"logit_scale": float(model.logit_scale.detach()), "logit_bias": float(model.logit_bias.detach())}

    def build_pocket(self, corpus: list[str], seed: int = 0, batch_size: int = 64) -> DualEncoder:
        model, tokenizer, processor = pocket(POCKET_SIGLIP).build(corpus, seed=seed, batch_size=batch_size)
        return DualEncoder(model, tokenizer, processor, source=POCKET_SIGLIP)

    def bench_text(self, bundle: DualEncoder, n: int, tokens: int, generator) -> dict[str, Any]:
        import torch
        positions = text_positions(bundle)
        if not 1 <= tokens <= positions:
            raise ValueError(f"SigLIP reads at most {positions} tokens (always padded to {positions}); got --tokens "
                             f"{tokens}")
        tok = bundle.tokenizer
        ids = torch.full((n, positions), tok.pad_token_id, dtype=torch.long)
        # ids 0-2 are <pad>, </s>, <unk> in SigLIP's vocabulary: the caption's pieces are drawn above them
        ids[:, :tokens - 1] = torch.randint(3, bundle.model.config.text_config.vocab_size, (n, tokens - 1),
                                            generator=generator)
        ids[:, tokens - 1] = tok.eos_token_id
        return {"input_ids": ids}
