"""What a retrieval model provides to Experiment 2's runner (`retrieval.experiment`), and the data it is handed.

The runner owns everything that is the same for every model (inputs, variants, processes, files, scoring into
runs, summaries, displays); a model owns only what is its own: loading, fine-tuning, encoding and scoring, its
pocket pre-training for the demo, how much of a caption it reads, and one training step for the benchmark.
A new model is one module implementing `RetrievalModel` plus one line in `registry.MODELS`.

Folders are handed in by the runner (from `RunPaths`); a model writes only inside them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScoreKind:
    """One way a model scores a (query, image) pair. The first kind a model lists is its main one (the paper's):
    its runs live in retrieval/<model>/<variant>/; each further kind in retrieval/<model>/<name>/<variant>/."""
    name: str            # folder name of the kind's runs (e.g. itc, itm_rerank, dot, cosine)
    label: str           # how tables say it (e.g. "ITC cosine")


@dataclass(frozen=True)
class TrainingData:
    """A fine-tune's pairs: train ids (trained on), val ids (model selection), one caption and one image per id;
    `choices` holds every caption of the train ids that have several (a collection with several human captions
    per image): each time an image is read for training, one of them is drawn (`pick_caption`)."""
    train_ids: Sequence[str]
    val_ids: Sequence[str]
    captions: Mapping[str, str]
    images: Mapping[str, Path]
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)


def training_pairs(data: TrainingData, ids: Sequence[str]) -> tuple[list[Path], list]:
    """(images, captions) of ids in order; an image with several captions gets the tuple of them in place of its
    caption, for the dataset to draw from (`pick_caption`)."""
    return ([data.images[i] for i in ids],
            [tuple(data.choices[i]) if i in data.choices else data.captions[i] for i in ids])


def pick_caption(entry: str | Sequence[str]) -> str:
    """The caption a training step reads: the caption, or one of an image's several drawn with torch's generator
    (which the training loop checkpoints, so a resumed fine-tune draws what an uninterrupted one would). A single
    caption draws nothing: collections with one caption per image train exactly as before."""
    if isinstance(entry, str):
        return entry
    if len(entry) == 1:
        return entry[0]
    import torch
    return entry[int(torch.randint(0, len(entry), (1,)))]


@dataclass(frozen=True)
class FineTuneDirs:
    """Where a fine-tune writes: the finished model (a folder, loadable by `load`; the real models use Hugging
    Face format) and the shared loop's folder (checkpoint.pt, best_model.pt, history.json, which the runner
    reads). The model folder must appear complete or not at all (write beside it, then rename). A pocket
    pre-training also gets a scratch folder of its own (`work`), e.g. for the model it builds before training."""
    model: Path
    training: Path
    work: Path | None = None


@dataclass
class BenchStep:
    """One model's training step on synthetic batches, for `bench.train` (which times it)."""
    step: Callable[[int], Any]          # step(i): forward + backward + optimiser step; returns the loss
    source: str                         # what was benchmarked, in words
    image_size: int
    parameters: int
    extras: dict[str, Any] = field(default_factory=dict)    # model-specific settings worth reporting


@dataclass(frozen=True)
class BenchOptions:
    """Model-specific knobs of the training benchmark; a model ignores those it has no use for."""
    tokenizer: str = ""                 # Long-CLIP: CLIP tokenizer for a longclip-*.pt
    preset: str = "stored"              # Long-CLIP: its recipe (longclip.presets)
    queue_size: int = 2048              # BLIP: feature queue
    grad_checkpointing: bool = True     # BLIP: ViT activation checkpointing
    models_dir: Path | None = None      # where random: models are materialised (None: random_models' default)


class RetrievalModel(Protocol):
    name: str                           # registry key and folder name (retrieval/<name>/)
    title: str                          # BLIP, Long-CLIP
    pocket: str | None                  # the profile value naming this model's demo pocket model, if it has one

    def settings(self, cfg) -> Any:
        """The profile section of this model (cfg.blip, ...). The runner reads its `model` (a hub id, local path,
        random: spec or the pocket name), `threads` and, where present, `keep_checkpoint`."""

    def score_kinds(self, cfg) -> Sequence[ScoreKind]:
        """The kinds `score` returns, main first."""

    def pretrain_pocket(self, cfg, pool: TrainingData, dirs: FineTuneDirs, dist, progress: Progress) -> None:
        """Build the pocket model and pre-train it on the pool (the model's own hold-out rule picks validation
        ids among pool.train_ids); write it to dirs.model (dirs.work: a scratch folder of this pre-training)."""

    def fine_tune(self, cfg, base: str, data: TrainingData, dirs: FineTuneDirs, dist,
                  progress: Progress) -> dict[str, Any]:
        """Fine-tune the model at `base` on data; rank 0 writes dirs.model. Resumes after a kill (the shared loop's
        checkpoint in dirs.training). Returns what is worth recording beyond the history (settings, counts)."""

    def load(self, cfg, base: str, fine_tuned: Path | None, device) -> Any:
        """The model to score, on device: the baseline at `base` (fine_tuned None) or the fine-tune saved there."""

    def score(self, cfg, loaded, queries: Mapping[str, Sequence[str]], images: Sequence[Path],
              device) -> dict[str, dict[str, Any]]:
        """{query set: {kind name: (n_queries, n_images) scores}} for every kind of score_kinds: a matrix, or, for
        scores that are products of embeddings, `topk.EmbeddingScores` (the runner streams large ones)."""

    def tokenizer(self, cfg, loaded) -> Any:
        """The tokenizer `truncation` counts with."""

    def offline_tokenizer(self, cfg) -> Any | None:
        """A tokenizer available without the model (reference profile: truncation of the published captions)."""

    def truncation(self, cfg, tokenizer, training: Mapping[str, Mapping[str, str]],
                   queries: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        """How much of each caption the model reads: {"training": {source: stats}, "queries": {set: stats},
        "limits": {...}}; every stats dict has "captions" (how many)."""

    def bench_step(self, source: str, batch_size: int, tokens: int, device, precision: str,
                   options: BenchOptions) -> BenchStep:
        """A training step of the model at `source` ("pocket": an untrained pocket model) on synthetic batches."""

    bench_defaults: Mapping[str, Any]   # {"source", "batch_size", "tokens"}: the paper's setting
