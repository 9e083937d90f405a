"""`DualEncoderModel`: the `RetrievalModel` protocol for a transformers dual encoder, from what makes each one itself
(a few class attributes and three methods), so a model such as CLIP or SigLIP is one short module.

What a subclass gives:
    name, title, pocket           registry name (= its profile section), how tables name it, its pocket model's name
    model_class                   the transformers class its checkpoints load as ("CLIPModel", "SiglipModel")
    scores                        {score kind: label}; the section's `score` picks the main one, the others follow
    step                          its objective (`objectives.infonce_step`, `objectives.sigmoid_step`)
    betas, eps                    its AdamW moments
    bench_defaults                {"source", "batch_size", "tokens"}: `artcap bench train`'s default setting
    text_inputs(bundle)           how captions become its text inputs (`data.TextInputs`)
    build_pocket(corpus, seed, batch_size)  an untrained pocket model whose tokenizer knows `corpus`
    bench_text(bundle, n, tokens, generator)   a synthetic batch of text inputs
and may override `logits` (SigLIP's sigmoid logit needs the model's scale and bias).

The runner's contract, as Long-CLIP's adapter keeps it: the baseline (hub id, local directory, the run's pocket
model, a built replica or random: directory: the runner resolves the spec) is loaded once per run; each fine-tune
trains a deep copy of it, and a fine-tuned model is scored with the baseline's tokenizer and image processor, as it
was trained. The demo's pocket model is pre-trained on the pool with the model's own objective and optimiser, a
random 10% of the pool held out for its validation loss.
"""
from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from artcap_lib.data.artpedia import ordered_ids
from artcap_lib.retrieval.protocol import BenchOptions, BenchStep, FineTuneDirs, ScoreKind, TrainingData, training_pairs


@dataclass
class DualEncoder:
    """A loaded dual encoder: the transformers model, its tokenizer and image processor, where it came from."""
    model: Any              # CLIPModel, SiglipModel
    tokenizer: Any
    image_processor: Any
    source: str             # where it was loaded from
    note: str = ""          # what was done on load (conversion, stretching)

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
        self.image_processor.save_pretrained(out_dir)


def text_positions(bundle: DualEncoder) -> int:
    return bundle.model.config.text_config.max_position_embeddings


def demo_corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Captions like the demo's, for a pocket model built outside a run (the training benchmark)."""
    import numpy as np

    from artcap_lib.data.demo import random_scene, visual_sentences
    rng = np.random.default_rng(seed)
    return [" ".join(visual_sentences(random_scene(rng), rng)) for _ in range(n)]


class DualEncoderModel(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    pocket: ClassVar[str | None]
    model_class: ClassVar[str]
    scores: ClassVar[Mapping[str, str]]
    step: ClassVar[Callable]                    # a staticmethod: (model, batch) -> {"loss", ...}
    betas: ClassVar[tuple[float, float]] = (0.9, 0.98)
    eps: ClassVar[float] = 1e-6
    bench_defaults: ClassVar[Mapping[str, Any]]

    def __init__(self):
        self._base: tuple[str, DualEncoder] | None = None      # (location, bundle): loaded once per run

    # ------------------------------------------------------------------ what each model gives
    @abstractmethod
    def text_inputs(self, bundle: DualEncoder):
        """The `data.TextInputs` of this model's text tower."""

    @abstractmethod
    def build_pocket(self, corpus: list[str], seed: int = 0, batch_size: int = 64) -> DualEncoder:
        """An untrained pocket model (tiny sizes, this model's architecture and conventions) for pre-training
        batches of `batch_size`."""

    @abstractmethod
    def bench_text(self, bundle: DualEncoder, n: int, tokens: int, generator) -> dict[str, Any]:
        """n synthetic captions of `tokens` tokens as this model's text inputs (random ids, its special tokens)."""

    def logits(self, loaded: DualEncoder) -> dict[str, float]:
        """What scoring.score_matrix needs of the model beyond the features (SigLIP: logit_scale, logit_bias)."""
        return {}

    def score_matrix(self, loaded: DualEncoder, kind: str, text_features, image_features):
        from artcap_lib.retrieval.dualenc import scoring
        return scoring.score_matrix(text_features, image_features, kind, **self.logits(loaded))

    # ------------------------------------------------------------------ loading
    def _class(self):
        import transformers
        return getattr(transformers, self.model_class)

    def load_bundle(self, location: str | Path) -> DualEncoder:
        """The model at a Hugging Face directory or hub id, with its own tokenizer and image processor."""
        from transformers import AutoImageProcessor, AutoTokenizer

        from artcap_lib.checkpoints import load_pretrained
        text = str(location)
        bundle = DualEncoder(load_pretrained(self._class(), text), AutoTokenizer.from_pretrained(text),
                             AutoImageProcessor.from_pretrained(text), text)
        # a tokenizer's model_max_length may say anything (or nothing); the model's context is what counts
        bundle.tokenizer.model_max_length = text_positions(bundle)
        return bundle

    def _baseline(self, base: str) -> DualEncoder:
        if self._base is None or self._base[0] != base:
            self._base = (base, self.load_bundle(base))
        return self._base[1]

    # ------------------------------------------------------------------ the protocol
    def settings(self, cfg):
        return getattr(cfg, self.name)

    def score_kinds(self, cfg) -> list[ScoreKind]:
        main = self.settings(cfg).score
        if main not in self.scores:
            raise ValueError(f"{self.name}.score must be one of {', '.join(self.scores)}, got {main!r}")
        return [ScoreKind(main, self.scores[main])] + [ScoreKind(k, v) for k, v in self.scores.items() if k != main]

    def fine_tune_settings(self, cfg, pretrain: bool = False):
        from artcap_lib.retrieval.dualenc.recipe import FineTuneSettings
        s = self.settings(cfg)
        common = dict(betas=tuple(self.betas), eps=self.eps, precision=s.precision, seed=cfg.seed)
        if pretrain:     # the pocket's stand-in for web-scale pre-training: from random weights, larger steps
            return FineTuneSettings(epochs=s.pretrain_epochs, batch_size=s.pretrain_batch_size, lr=s.pretrain_lr,
                                    weight_decay=s.weight_decay, warmup=0.1, patience=None, cache_images=True,
                                    **common)
        return FineTuneSettings(
            epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay, warmup=s.warmup,
            grad_accum=s.grad_accum, patience=s.patience or None, max_grad_norm=s.max_grad_norm or None,
            num_workers=s.num_workers,
            # small demo collections stay in memory; worker processes would each hold (and lose) their own copy
            cache_images=cfg.data.source == "demo" and s.num_workers == 0, **common)

    def _fit(self, bundle: DualEncoder, train, val, settings, dirs: FineTuneDirs, dist, progress) -> dict[str, Any]:
        from artcap_lib.retrieval.dualenc import recipe
        return recipe.fine_tune(bundle, train, val, settings, dirs, step=self.step,
                                text=self.text_inputs(bundle),
                                make_optimizer=recipe.adamw(settings.lr, settings.weight_decay, settings.betas,
                                                            settings.eps),
                                make_scheduler=recipe.warmup_cosine(settings.warmup), dist=dist, progress=progress)

    def pretrain_pocket(self, cfg, pool: TrainingData, dirs: FineTuneDirs, dist, progress) -> None:
        import numpy as np
        ids = list(pool.train_ids)
        held_out = set(np.random.default_rng(cfg.seed).choice(ids, size=max(1, len(ids) // 10), replace=False))
        settings = self.fine_tune_settings(cfg, pretrain=True)
        bundle = self.build_pocket([pool.captions[i] for i in ids], seed=cfg.seed,
                                   batch_size=settings.batch_size * dist.world_size)
        bundle.source, bundle.note = self.pocket, "pocket model, pre-trained here"
        self._fit(bundle, training_pairs(pool, [i for i in ids if i not in held_out]), training_pairs(pool, ordered_ids(held_out)),
                  settings, dirs, dist, progress)

    def fine_tune(self, cfg, base: str, data: TrainingData, dirs: FineTuneDirs, dist, progress) -> dict[str, Any]:
        baseline = self._baseline(base)
        bundle = dataclasses.replace(baseline, model=copy.deepcopy(baseline.model))
        return self._fit(bundle, training_pairs(data, data.train_ids), training_pairs(data, data.val_ids),
                         self.fine_tune_settings(cfg), dirs, dist, progress)

    def load(self, cfg, base: str, fine_tuned: Path | None, device):
        baseline = self._baseline(base)
        if fine_tuned is None:
            return baseline
        from artcap_lib.checkpoints import load_pretrained
        return dataclasses.replace(baseline, model=load_pretrained(self._class(), fine_tuned), source=str(fine_tuned))

    def score(self, cfg, loaded: DualEncoder, queries: Mapping[str, Sequence[str]], images: Sequence[Path],
              device) -> dict[str, dict[str, Any]]:
        from artcap_lib.retrieval.dualenc import scoring
        s = self.settings(cfg)
        image_features = scoring.encode_images(loaded, list(images), s.eval_batch_size, device, s.score_precision)
        text = self.text_inputs(loaded)
        out = {}
        for query_set, texts in queries.items():
            text_features = scoring.encode_texts(loaded, list(texts), text, s.eval_batch_size, device,
                                                 s.score_precision)
            # kept as features: a large collection is streamed by the runner, never a (texts x images) matrix
            out[query_set] = {kind.name: scoring.embedding_scores(text_features, image_features, kind.name,
                                                                  **self.logits(loaded))
                              for kind in self.score_kinds(cfg)}
        return out

    def tokenizer(self, cfg, loaded: DualEncoder):
        return loaded.tokenizer

    def offline_tokenizer(self, cfg):
        return None      # the hub tokenizers are not shipped offline: the reference profile reports no truncation

    def truncation(self, cfg, tokenizer, training_captions, queries) -> dict[str, Any]:
        from artcap_lib.retrieval.dualenc.data import token_truncation
        n = tokenizer.model_max_length            # = the model's text positions (set on load and by the pocket)
        return {"training": {name: token_truncation(tokenizer, c.values(), n) for name, c in training_captions.items()},
                "queries": {name: token_truncation(tokenizer, q.values(), n) for name, q in queries.items()},
                "limits": {"max_length": n}}

    def bench_step(self, source: str, batch_size: int, tokens: int, device, precision: str,
                   options: BenchOptions) -> BenchStep:
        """Full fine-tuning steps (the objective's forward, backward, AdamW) on one synthetic batch of the model's
        image size and `tokens`-long captions."""
        import torch

        from artcap_lib.retrieval import distributed, training
        from artcap_lib.retrieval.dualenc import recipe
        if source == "pocket":
            bundle = self.build_pocket(demo_corpus())
            bundle.source = f"pocket {self.title}, untrained"
        else:
            from artcap_lib.model_names import locate
            bundle = self.load_bundle(locate(source, device=str(device), models_dir=options.models_dir))
            bundle.source = source
        model = bundle.model.to(device).train()
        optimizer = recipe.adamw(1e-6, 0.1, self.betas, self.eps)(model)
        size = model.config.vision_config.image_size
        g = torch.Generator().manual_seed(0)
        batch = distributed.to_device({"pixel_values": torch.randn(batch_size, 3, size, size, generator=g),
                                    **self.bench_text(bundle, batch_size, tokens, g)}, device)

        def step(_i: int):
            with training.autocast_context(device, precision):
                loss = self.step(model, batch)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        return BenchStep(step, bundle.source, size, sum(p.numel() for p in model.parameters()),
                         {"text_positions": text_positions(bundle)})
