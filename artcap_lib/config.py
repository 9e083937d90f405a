"""Configuration: the profiles (one YAML file each, loaded into one typed dataclass) and the layout of a run.

The same loader serves papermill (every notebook's parameters cell holds `profile` and `overrides`, and calls
`notebook.setup`) and the CLI (`--profile P --set key=value`), so a run configured one way is configured identically
the other way. Unknown keys, wrong types and out-of-range values are errors when the profile is loaded.

A run directory (papermill_runs/<profile>/) is the only channel between notebooks: each step writes its results
there as files and later steps read them back (never from notebook outputs); `RunPaths` names every one of them.

Where things live. The profiles ship inside the package (artcap_lib/profiles/*.yaml). Everything else is relative
to one project folder: `$ARTCAP_ROOT` if set, else the checkout this package is installed from (it holds
notebooks/), else the current directory. Its notebooks/ are what `artcap reproduce` runs; papermill_runs/ and
figures/ are the default homes of run directories and figures.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def project_root() -> Path:
    """The project folder (see the module docstring): $ARTCAP_ROOT, else this package's checkout, else the cwd."""
    if os.environ.get("ARTCAP_ROOT"):
        return Path(os.environ["ARTCAP_ROOT"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "notebooks").is_dir() else Path.cwd().resolve()


PROJECT_ROOT = project_root()
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "papermill_runs"
FIGURES_DIR = PROJECT_ROOT / "figures"


# ---- profiles ----------------------------------------------------------------------------------------------------


class ProfileError(ValueError):
    """A profile file or override that does not fit the schema."""


@dataclass
class DataConfig:
    source: str = "demo"                 # demo (generated) | artpedia (downloaded) | rehearsal (real paintings, loopback)
                                         # | reference (authors' artefacts)
    artpedia_json: str = ""              # artpedia: local artpedia.json / artpedia.zip, or "" to download the zip
    artpedia_url: str = "https://aimagelab.ing.unimore.it/imagelab/uploadedFiles/artpedia.zip"
    download_workers: int = 4            # concurrent image downloads (polite cap: at most 8)
    max_side: int = 1000                 # the authors' normalisation: fit inside max_side x max_side
    max_pixels: int = 400_000_000        # decompression-bomb guard: larger images are excluded, not decoded
    align_with_authors: bool = True      # take split ids from the authors' caption files (2173/325/333)
    demo_train: int = 240                # demo (and rehearsal) collection sizes (train/val/test) ...
    demo_val: int = 40
    demo_test: int = 60
    demo_pretrain: int = 800             # ... and the disjoint pre-training pool of the pocket models
    demo_image_size: int = 96            # demo paintings are square, this many pixels a side


@dataclass
class CaptionerSpec:
    """One captioner of a run (an entry of `captioning.captioners`); unset fields take the section's value."""
    name: str = ""                       # captions/<name>.jsonl; letters, digits, '.', '_', '-'
    model: str = ""                      # hub id, local directory, pocket name, random:/replica: spec
    prompt: str | None = None            # None = captioning.prompt
    answer_marker: str | None = None     # None = captioning.answer_marker


@dataclass
class CaptioningConfig:
    source: str = "model"                # model (run a captioner) | reference (import the authors' LLaVA captions)
    name: str = "llava"                  # captions/<name>.jsonl
    model: str = "llava-hf/llava-1.5-7b-hf"   # hub id or local directory; "pocket-llava" = the run's pocket model
    prompt: str = "Caption this image"
    max_new_tokens: int = 200
    dtype: str = "auto"                  # auto (float32 on a CPU, float16 on CUDA) | float32 | float16 | bfloat16
    batch_size: int = 16                 # images per generate call (halved automatically on CUDA out-of-memory)
    answer_marker: str = "ASSISTANT:"    # the caption is the decoded text after this ("" = the new tokens)
    cache_implementation: str = ""       # KV cache for generate: "" = dynamic, "static" = compile-friendly (GPU)
    threads: int = 0                     # CPU threads for torch (0 = torch's default)
    pocket_steps: int = 500              # demo: training steps of the pocket LLaVA on the pre-training pool (kind is
                                         # learnt from ~400 on; colour long before)
    pocket_batch_size: int = 32
    pocket_lr: float = 1.0e-3            # 3e-3 stalls the from-scratch vision tower on colour only
    pocket_image_size: int = 48          # the pocket vision tower's input side (patch 12 -> 16 image tokens)
    engine: str = "generate"             # generate (transformers) | fast | fast_compiled (fast_decode: greedy,
                                         # static cache, CUDA graphs; same captions as generate in fp32)
    captioners: list[CaptionerSpec] = field(default_factory=list)   # several captioners in one run, each
                                         # {name, model, prompt, answer_marker}; the first is the paper's
                                         # "synthetic"; [] = the one captioner of name/model/prompt above


@dataclass
class MetricsConfig:
    backends: list[str] = field(default_factory=lambda: ["paper", "coco"])
    bertscore_model: str = "distilbert-base-uncased"   # hub id or local directory; "minilm" = offline MiniLM
    bertscore_num_layers: int = 0        # 0 = bert-score's default layer for the model
    split: str = "train"                 # the authors scored the train split
    bootstrap: int = 1000                # bootstrap resamples for the 95% CIs
    spice_jars: str = ""                 # directory with stanford-corenlp-3.6.0(-models).jar; "" = SPICE skipped


@dataclass
class RetrievalConfig:
    source: str = "model"                # model (score with our models) | reference (the authors' stored runs)
    models: list[str] = field(default_factory=lambda: ["blip", "longclip"])   # retrieval models of the run
                                         # (registry names): 04 runs blip, 05 every other one
    query_sets: list[str] = field(default_factory=lambda: ["artpedia", "llama"])
    run_depth: int = 100                 # the authors' ranx runs keep the top 100 images per query
    bootstrap: int = 1000                # bootstrap resamples of the metrics' 95% CIs (runs.summarise_model)
    randomisation: int = 10_000          # resamples of the paired randomisation tests


from artcap_lib.retrieval.longclip.presets import FROM_PRESET as _PRESET  # noqa: E402 (light: no torch)


@dataclass
class LongClipConfig:
    """Long-CLIP's section; every recipe value left out of a profile is its preset's (retrieval/longclip/presets.py)."""
    model: str = "BeichenZhang/LongCLIP-L/longclip-L.pt"   # HF dir / hub id, a longclip-*.pt file (path or
                                         # <hub repo>/<file>.pt), or "pocket-longclip" (demo: pre-trained here)
    tokenizer: str = "openai/clip-vit-large-patch14"   # CLIP BPE tokenizer for .pt checkpoints (HF models bring theirs)
    stretch_77: bool = True              # a 77-position CLIP is stretched to 248 positions on load (Long-CLIP's recipe)
    max_length: int = 248                # text tokens; longer captions are cut (the cut is logged)
    preset: str = "stored"               # stored (the authors' February finetuner, which wrote their stored results) |
                                         # committed (their later committed code, 922787d) | adamw (AdamW + warm-up/
                                         # cosine); the recipe values below default to the preset's
    epochs: int = _PRESET                # stored, committed, adamw: 6
    batch_size: int = _PRESET            # per process; stored 30, committed 40, adamw 40
    lr: float = _PRESET                  # stored 1e-7, committed 5e-7, adamw 5e-7
    weight_decay: float = _PRESET        # 1e-3: AdaBelief's, coupled (stored, committed); adamw: decoupled, matrices
    warmup: float = _PRESET              # share of steps warming up (OneCycle pct_start): 0.1
    grad_accum: int = 1                  # micro-batches per step (does not add contrastive negatives)
    precision: str = _PRESET             # training: fp16 (fp16 autocast + GradScaler on CUDA, fp32 elsewhere: the
                                         # authors', stored and committed) | auto (bf16 autocast on GPUs that have it:
                                         # no loss scaling, nothing skipped; adamw) | bf16 | fp32
    patience: int = _PRESET              # early stop after this many epochs without val-loss improvement; 0 = never
                                         # (stored: 0, the best epoch of all kept; committed, adamw: 1)
    val_protocol: str = _PRESET          # authors (reshuffled each epoch, fp32, plain mean over batches: stored,
                                         # committed) | ours (fixed order, training precision, weighted by batch
                                         # size: adamw)
    scale_cap: bool = _PRESET            # cap InfoNCE's learnt scale at 100 as CLIP does (adamw) or leave it free as
                                         # the authors' forward (stored, where the loss cancels it, and committed)
    drop_last: bool = _PRESET            # drop the last short training batch (adamw: every batch has the same
                                         # negatives) or keep it as the authors' loader (stored, committed)
    max_grad_norm: float = 0.0           # gradient clipping; 0 = none (the authors did not clip)
    score: str = "dot"                   # dot (the authors' raw dot product) | cosine
    score_precision: str = "fp16"        # test scoring: fp16 (the authors scored Long-CLIP in fp16; on GPUs, fp32 on
                                         # a CPU) | bf16 | fp32 | auto (= the training precision's rule)
    eval_batch_size: int = 64
    num_workers: int = 4                 # data-loader processes
    threads: int = 0                     # torch intra-op threads (0 = torch's default); demo: 1, the pocket model's
                                         # tiny ops made 2 threads spin (26 s vs 2 s per pre-training epoch, loaded box)
    keep_checkpoint: bool = False        # keep the optimiser-state checkpoint after a finished fine-tune
    pretrain_epochs: int = 40            # demo: pocket pre-training on the pre-training pool (the baseline)
    pretrain_lr: float = 2e-3
    pretrain_batch_size: int = 64

    def __post_init__(self):
        from artcap_lib.retrieval.longclip import presets
        try:
            presets.fill(self)
        except ValueError as exc:      # an unknown or renamed preset: one line, naming the new name
            raise ProfileError(str(exc)) from None


@dataclass
class BlipConfig:
    model: str = ("https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/"
                  "model_large_retrieval_coco.pth")   # BLIP's original checkpoint (URL or local .pth: converted once,
                                         # bringing its temp, momentum encoders and queues), a hub id or HF dir
                                         # (e.g. Salesforce/blip-itm-large-coco: no temp, momentum encoders or queues),
                                         # or "pocket-blip" (demo: built + pre-trained by 04)
    epochs: int = 6                      # the authors' recipe (BLIP train_retrieval.py on Artpedia) ...
    batch_size: int = 16                 # ... per process; the queue and the ITM negatives see the global batch
    lr: float = 5e-6                     # AdamW, cosine to 0 over the epochs (set per epoch, as BLIP does)
    weight_decay: float = 0.05
    image_size: int = 384
    queue_size: int = 57600              # the authors' (their Artpedia configs); a checkpoint's queues of this length
                                         # are taken, else random unit vectors (id -100). On 2,173 images most of it
                                         # stays what it started as; 2048 (< the images) is filled in one epoch
    momentum: float = 0.995              # momentum encoders' EMA
    alpha: float = 0.4                   # momentum distillation weight, ramped up over the first epoch
    text_dropout: float = 0.1            # BERT hidden + attention dropout while training: upstream med_config.json's
                                         # 0.1 (the hub checkpoint's text config says 0.0, HF's default)
    temp_init: float = 0.07              # starting ITC temperature where the checkpoint has no trained `temp` (the hub
                                         # conversion); BLIP's original checkpoint brings its own
    drop_path: float = 0.1               # stochastic depth of the ViT and its momentum copy, rising linearly over the
                                         # layers to this rate (upstream create_vit: 0.1 for ViT-L); 0 = none
    max_words: int = 30                  # training captions cut to 30 words (pre_caption) ...
    max_tokens: int = 35                 # ... and 35 tokens; queries are raw captions cut to 35 tokens
    k_test: int = 256                    # ITM re-ranking: candidates per query from ITC
    itm_rerank: bool = True              # also score test queries with ITC top-k re-ranked by ITM (beside ITC)
    select_with: str = "itm"             # validation mean recall for model selection: itm (the authors) | itc
    grad_checkpointing: bool = True      # the authors' vit_grad_ckpt (ViT-L at 384 px)
    precision: str = "fp32"              # training and validation (which picks the kept epoch): fp32 (the authors',
                                         # no autocast) | bf16 | auto (bf16 autocast on GPUs that support it)
    score_precision: str = "fp32"        # test scoring: fp32 (the authors scored BLIP in fp32) | fp16 | bf16 | auto
    keep_checkpoint: bool = False        # keep the objective + optimiser checkpoint (~7 GB at ViT-L) after a finished
                                         # fine-tune; only a resume of an unfinished one needs it
    eval_batch_size: int = 32
    num_workers: int = 4                 # data-loader processes
    threads: int = 0                     # torch intra-op threads (0 = torch's default); the pocket model's tiny ops
                                         # cost ~9x the CPU with 2 threads than with 1 on a loaded 2-core machine
    pretrain_epochs: int = 0             # pocket-blip only: epochs on the demo pre-training pool (= the baseline)
    pretrain_lr: float = 1e-3            # pocket-blip only: learning rate of that pre-training
    pretrain_momentum: float = 0.9       # pocket-blip only: from random weights a 0.995 EMA would stay near random


@dataclass
class ClipConfig:
    model: str = "openai/clip-vit-large-patch14"   # hub id or HF dir (77 text positions, never stretched),
                                         # replica:openai/clip-vit-large-patch14, random:clip-vit-large-patch14, or
                                         # "pocket-clip" (demo: pre-trained here)
    epochs: int = 6                      # as Long-CLIP's fine-tunes, so the two differ in the context only
    batch_size: int = 40                 # per process; InfoNCE negatives come from the global batch
    lr: float = 1e-6                     # AdamW (betas 0.9/0.98, eps 1e-6); a ViT-L/14 from 400M pairs forgets fast:
                                         # 1e-6 is the small end of CLIP fine-tuning rates, fit for ~300 steps
    weight_decay: float = 0.1            # decoupled, matrices only (gains, biases, the temperature spared)
    warmup: float = 0.1                  # share of steps warming up linearly, then cosine decay to 0
    grad_accum: int = 1                  # micro-batches per step (does not add contrastive negatives)
    precision: str = "auto"              # auto (bf16 autocast on GPUs that have it) | bf16 | fp32
    patience: int = 1                    # early stop after this many epochs without val-loss improvement; 0 = never
    max_grad_norm: float = 0.0           # gradient clipping; 0 = none
    score: str = "cosine"                # cosine (CLIP's own geometry) | dot (raw dot product, Long-CLIP authors')
    score_precision: str = "fp32"        # test scoring: fp32 (exact; 333 test images cost nothing) | fp16 | bf16 | auto
    eval_batch_size: int = 64
    num_workers: int = 4                 # data-loader processes
    threads: int = 0                     # torch intra-op threads (0 = torch's default); pocket models: 1
    keep_checkpoint: bool = False        # keep the optimiser-state checkpoint after a finished fine-tune
    pretrain_epochs: int = 24            # pocket-clip only: epochs on the demo pre-training pool (= the baseline);
                                         # demo test R@1 0.305 of 200 (8 epochs: 0.055), ~30 s on 1 thread
    pretrain_lr: float = 2e-3            # pocket-clip only: from random weights, steps of from-scratch training size
    pretrain_batch_size: int = 64        # pocket-clip only


@dataclass
class SiglipConfig:
    model: str = "google/siglip-base-patch16-224"   # hub id or HF dir (SiglipModel; its SiglipTokenizer needs
                                         # sentencepiece), replica:google/siglip-base-patch16-224,
                                         # random:siglip-base-patch16-224, or "pocket-siglip" (demo: pre-trained here)
    epochs: int = 6                      # as the other dual encoders' fine-tunes
    batch_size: int = 40                 # per process; the sigmoid loss pairs each image with the global batch's texts
    lr: float = 1e-5                     # AdamW (betas 0.9/0.95: SigLIP's lowered beta2, eps 1e-8); 10x CLIP-L's: a
                                         # B/16 moves less per step than an L/14 and the sigmoid loss's gradient does
                                         # not grow with the negatives, so batch 40 needs no smaller step
    weight_decay: float = 0.1            # decoupled, matrices only (gains, biases, logit_scale/logit_bias spared)
    warmup: float = 0.1                  # share of steps warming up linearly, then cosine decay to 0
    grad_accum: int = 1                  # micro-batches per step (does not add pairs to the loss)
    precision: str = "auto"              # auto (bf16 autocast on GPUs that have it) | bf16 | fp32
    patience: int = 1                    # early stop after this many epochs without val-loss improvement; 0 = never
    max_grad_norm: float = 0.0           # gradient clipping; 0 = none
    score: str = "sigmoid"               # sigmoid (the pair logit exp(logit_scale) * cosine + logit_bias, SigLIP's own)
                                         # | cosine; both rank alike (the scale is positive)
    score_precision: str = "fp32"        # test scoring: fp32 (exact; 333 test images cost nothing) | fp16 | bf16 | auto
    eval_batch_size: int = 64
    num_workers: int = 4                 # data-loader processes
    threads: int = 0                     # torch intra-op threads (0 = torch's default); pocket models: 1
    keep_checkpoint: bool = False        # keep the optimiser-state checkpoint after a finished fine-tune
    pretrain_epochs: int = 24            # pocket-siglip only: epochs on the demo pre-training pool (= the baseline);
                                         # demo test R@1 0.15 of 200 (8 epochs: 0.015), ~30 s on 1 thread
    pretrain_lr: float = 2e-3            # pocket-siglip only: from random weights (t = 10, b = -log(batch) to start)
    pretrain_batch_size: int = 64        # pocket-siglip only


@dataclass
class ReportConfig:
    formats: list[str] = field(default_factory=lambda: ["png", "pdf"])   # figure files written per figure
    decimals: int = 3                    # digits of the numbers in the tables (results.json keeps full precision)
    significance_test: str = "ttest"     # ttest (paired Student t, ranx's default, the authors') | randomisation
    alpha: float = 0.05                  # significance marks in Table 2 where p < alpha
    compare_with_authors: bool = True    # show the authors' stored values beside ours (needs the reference artefacts)
    gallery_size: int = 6                # test artworks in the gallery of human and synthetic captions


@dataclass
class Profile:
    profile: str = "demo"                # the profile's name (= the YAML file's stem)
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    run_dir: str = ""                    # "" = papermill_runs/<profile>
    figures_dir: str = ""                # "" = figures/<profile>
    jobs: int = 1                        # notebooks run side by side once their needs are met (03/04/05 need 02)
    data: DataConfig = field(default_factory=DataConfig)
    captioning: CaptioningConfig = field(default_factory=CaptioningConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    longclip: LongClipConfig = field(default_factory=LongClipConfig)
    blip: BlipConfig = field(default_factory=BlipConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    siglip: SiglipConfig = field(default_factory=SiglipConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- what a value may be: checked when a profile is loaded, so that a bad value fails at `artcap profile` or at the
# start of a run, naming the key, and never half-way through a notebook

CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("demo", "artpedia", "rehearsal", "reference"),
    "captioning.source": ("model", "reference"),
    "captioning.dtype": ("auto", "float32", "float16", "bfloat16"),
    "captioning.engine": ("generate", "fast", "fast_compiled"),
    "metrics.backends": ("paper", "coco"),
    "metrics.split": ("train", "val", "test"),
    "retrieval.source": ("model", "reference"),
    "retrieval.query_sets": ("artpedia", "llama"),
    "longclip.preset": ("stored", "committed", "adamw"),
    "longclip.precision": ("fp16", "auto", "bf16", "fp32"),
    "longclip.val_protocol": ("authors", "ours"),
    "longclip.score_precision": ("fp16", "bf16", "fp32", "auto"),
    "blip.score_precision": ("fp32", "fp16", "bf16", "auto"),
    "longclip.score": ("dot", "cosine"),
    "blip.precision": ("fp32", "bf16", "auto"),
    "blip.select_with": ("itm", "itc"),
    "clip.precision": ("auto", "bf16", "fp32"),
    "clip.score_precision": ("fp32", "fp16", "bf16", "auto"),
    "clip.score": ("cosine", "dot"),
    "siglip.precision": ("auto", "bf16", "fp32"),
    "siglip.score_precision": ("fp32", "fp16", "bf16", "auto"),
    "siglip.score": ("sigmoid", "cosine"),
    "report.formats": ("png", "pdf", "svg"),
    "report.significance_test": ("ttest", "randomisation"),
}
DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
AT_LEAST_ONE = {
    "jobs", "data.download_workers", "data.max_side", "data.max_pixels", "data.demo_image_size",
    "captioning.max_new_tokens", "captioning.batch_size", "captioning.pocket_batch_size",
    "captioning.pocket_image_size", "metrics.bootstrap", "retrieval.run_depth", "retrieval.bootstrap",
    "retrieval.randomisation", "longclip.max_length", "longclip.epochs", "longclip.batch_size",
    "longclip.grad_accum", "longclip.eval_batch_size", "longclip.pretrain_batch_size", "blip.epochs",
    "blip.batch_size", "blip.image_size", "blip.queue_size", "blip.max_words", "blip.max_tokens", "blip.k_test",
    "blip.eval_batch_size", "report.gallery_size",
    "clip.epochs", "clip.batch_size", "clip.grad_accum", "clip.eval_batch_size", "clip.pretrain_batch_size",
    "siglip.epochs", "siglip.batch_size", "siglip.grad_accum", "siglip.eval_batch_size", "siglip.pretrain_batch_size",
}
POSITIVE = {"captioning.pocket_lr", "longclip.lr", "longclip.pretrain_lr", "blip.lr", "blip.pretrain_lr",
            "clip.lr", "clip.pretrain_lr", "siglip.lr", "siglip.pretrain_lr"}
FRACTIONS = {   # key: (lowest, highest), both allowed
    "clip.warmup": (0.0, 0.99), "siglip.warmup": (0.0, 0.99),
    "longclip.warmup": (0.0, 0.99), "blip.momentum": (0.0, 1.0), "blip.alpha": (0.0, 1.0),
    "blip.pretrain_momentum": (0.0, 1.0), "report.alpha": (0.0, 1.0), "blip.text_dropout": (0.0, 0.9),
    "blip.drop_path": (0.0, 0.9),
    "blip.temp_init": (0.001, 0.5),     # the objective clamps the temperature to this range
}


def profile_problems(profile: "Profile") -> list[str]:
    """Every value of a built profile that is out of range or not one of its choices ("key: why")."""
    problems = []
    for key, value in _leaves(profile):
        name = key.rsplit(".", 1)[-1]
        if key in CHOICES:
            bad = [v for v in (value if isinstance(value, list) else [value]) if v not in CHOICES[key]]
            if bad:
                problems.append(f"{key}: {', '.join(map(repr, bad))} is not one of {', '.join(CHOICES[key])}")
        elif name == "device" and not DEVICE.fullmatch(value):
            problems.append(f"{key}: {value!r} is not a device (auto | cpu | cuda | cuda:N | mps)")
        elif key in AT_LEAST_ONE and value < 1:
            problems.append(f"{key}: must be at least 1, got {value}")
        elif key in POSITIVE and not value > 0:
            problems.append(f"{key}: must be greater than 0, got {value}")
        elif key in FRACTIONS and not FRACTIONS[key][0] <= value <= FRACTIONS[key][1]:
            problems.append(f"{key}: must lie in [{FRACTIONS[key][0]}, {FRACTIONS[key][1]}], got {value}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            problems.append(f"{key}: must not be negative, got {value}")     # counts, seeds, threads, decay
    problems += _captioner_problems(profile.captioning)
    from artcap_lib.retrieval import registry
    unknown = [m for m in profile.retrieval.models if m not in registry.MODELS]
    if unknown:
        problems.append(f"retrieval.models: {', '.join(map(repr, unknown))} not registered "
                        f"(known: {', '.join(registry.MODELS)})")
    if len(set(profile.retrieval.models)) != len(profile.retrieval.models):
        problems.append("retrieval.models: a model is listed twice")
    return problems


CAPTIONER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _captioner_problems(c: "CaptioningConfig") -> list[str]:
    problems = []
    for i, spec in enumerate(c.captioners):
        where = f"captioning.captioners[{i}]"
        if not CAPTIONER_NAME.fullmatch(spec.name):
            problems.append(f"{where}.name: {spec.name!r} is not a file-name-safe name (letters, digits, . _ -)")
        if not spec.model:
            problems.append(f"{where}.model: empty (a hub id, local directory, pocket name or spec)")
    names = [s.name for s in c.captioners]
    if len(set(names)) != len(names):
        problems.append(f"captioning.captioners: names must differ, got {', '.join(names)}")
    if c.captioners and c.source == "reference":
        problems.append("captioning.captioners: the reference source imports the authors' one captioner; "
                        "list captioners with source model")
    return problems


def captioners(cfg: "Profile") -> list[CaptionerSpec]:
    """The run's captioners, every field filled in: `captioning.captioners`, or the section's one captioner."""
    c = cfg.captioning
    listed = c.captioners or [CaptionerSpec(c.name, c.model)]
    return [dataclasses.replace(s, prompt=c.prompt if s.prompt is None else s.prompt,
                                answer_marker=c.answer_marker if s.answer_marker is None else s.answer_marker)
            for s in listed]


def primary_captioner(cfg: "Profile") -> str:
    """The name of the run's first captioner: the paper's "synthetic" captions (Table 1, the synthetic variant)."""
    return captioners(cfg)[0].name


SYNTHETIC = "synthetic"


def captioner_variant(cfg: "Profile", name: str) -> str:
    """The Experiment-2 variant fine-tuned on a captioner's captions: "synthetic" for the first (the paper's),
    "synthetic-<name>" for every further one."""
    first = primary_captioner(cfg)
    if name == first:
        return SYNTHETIC
    if name not in {s.name for s in captioners(cfg)}:
        raise KeyError(f"no captioner {name!r} in this profile")
    return f"{SYNTHETIC}-{name}"


def variant_captioners(cfg: "Profile") -> dict[str, str]:
    """{fine-tuned synthetic variant: captioner name}, first captioner first."""
    return {captioner_variant(cfg, s.name): s.name for s in captioners(cfg)}


def _leaves(node, prefix: str = ""):
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(name_or_path: str | Path) -> Path:
    """A profile's YAML file: a path ending in .yaml/.yml as given, else the packaged profile of that name."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else PROFILES_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path = "demo", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Read a profile by name (artcap_lib/profiles/<name>.yaml) or path and apply dotted overrides.

    >>> load_profile("demo", {"captioning.batch_size": 4}).captioning.batch_size
    4
    """
    path = profile_path(name_or_path)
    if not path.is_file():
        raise ProfileError(f"no profile {name_or_path!r}: {path} not found (known: {', '.join(available_profiles())})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 (byte {exc.start + 1}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        # one line naming the file's line (the parser's own message spans five and names "<unicode string>")
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark else f"{path}"
        hint = " (YAML indents with spaces, not tabs)" if "'\\t'" in problem else ""
        raise ProfileError(f"{where}: not valid YAML: {problem}{hint}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: the top level must be a mapping")
    raw.setdefault("profile", path.stem)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    profile = _build(Profile, raw, where=str(path))
    absolute_paths(profile)
    problems = profile_problems(profile)
    if problems:
        raise ProfileError(f"{path}" + (" with --set overrides" if overrides else "") + ": "
                           + "; ".join(problems))
    return profile


def parse_override(text: str) -> tuple[str, Any]:
    """'captioning.batch_size=8' -> ('captioning.batch_size', 8); the value is read as YAML."""
    if "=" not in text:
        raise ProfileError(f"override {text!r} is not key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ProfileError(f"override {text!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


def parse_overrides(items) -> dict[str, Any]:
    """Several KEY=VALUE texts (the CLI's repeated --set) -> {dotted key: value}."""
    return dict(parse_override(item) for item in items)


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ProfileError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _build(cls, raw: Mapping[str, Any], where: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ProfileError(f"{where}: {name} must be a mapping, got {type(value).__name__}")
            kwargs[name] = _build(hint, value, f"{where}: {name}")
        else:
            kwargs[name] = _check_type(value, hint, f"{where}: {name}")
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ProfileError:
                continue
        raise ProfileError(f"{where} must be {hint}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(hint)
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, Mapping):
            return _build(hint, value, where)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ProfileError(f"{where} must be {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}")


# ---- the run directory -----------------------------------------------------------------------------------------

# Fields holding a path a user types. One rule for them and for every path option of the CLI: `~` is expanded and a
# relative path is relative to the current directory of the process that loads the profile, resolved once there
# (`artcap reproduce` hands its notebooks, which run in notebooks/, the absolute paths).
PATH_KEYS = ("run_dir", "figures_dir", "data.artpedia_json", "metrics.spice_jars")
# Model fields are hub ids too: the rule applies where the value `looks_local`.
MODEL_KEYS = ("captioning.model", "blip.model", "longclip.model", "metrics.bertscore_model")


def user_path(text: str | Path) -> Path:
    """A path as the user meant it: `~` expanded, relative to the current directory, made absolute (symlinks kept)."""
    return Path(os.path.abspath(Path(text).expanduser()))


def looks_local(value: str) -> bool:
    """A model field naming a local file or folder rather than a hub id, a URL or a stand-in name: it starts like a
    path, or has a slash and exists (a bare name that exists, such as `minilm`, stays a name)."""
    return value.startswith(("/", "~", "./", "../")) or ("/" in value and Path(value).exists())


def absolute_paths(profile) -> None:
    """Make the non-empty PATH_KEYS fields, and the MODEL_KEYS fields that look local, of a loaded profile absolute
    (`user_path`), in place."""
    for key in PATH_KEYS + MODEL_KEYS:
        *sections, name = key.split(".")
        node = profile
        for section in sections:
            node = getattr(node, section)
        value = getattr(node, name)
        if value and (key in PATH_KEYS or looks_local(value)):
            setattr(node, name, str(user_path(value)))


@dataclass(frozen=True)
class RunPaths:
    root: Path        # papermill_runs/<profile>/
    figures: Path     # figures/<profile>/

    @classmethod
    def for_profile(cls, profile) -> "RunPaths":
        """Resolve a Profile's run_dir/figures_dir (`user_path`; "" = papermill_runs/ and figures/<profile>/ of the
        project folder)."""
        root = user_path(profile.run_dir) if profile.run_dir else RUNS_DIR / profile.profile
        figures = user_path(profile.figures_dir) if profile.figures_dir else FIGURES_DIR / profile.profile
        for key, folder in (("run_dir", root), ("figures_dir", figures)):
            if folder.exists() and not folder.is_dir():
                raise ProfileError(f"{key}: {folder} is a file, not a folder (--set {key}=... another path)")
        return cls(root, figures)

    # 01 data prep
    @property
    def data(self) -> Path: return self.root / "data"
    @property
    def artworks(self) -> Path: return self.data / "artworks.json"
    @property
    def excluded(self) -> Path: return self.data / "excluded.json"
    @property
    def splits(self) -> Path: return self.data / "splits.json"
    @property
    def images(self) -> Path: return self.data / "images"
    # demo only: the pocket models' pre-training pool and the generator's ground truth
    @property
    def pretrain_pool(self) -> Path: return self.data / "pretrain_pool.json"
    @property
    def scenes(self) -> Path: return self.data / "scenes.json"
    # 02 captioning
    @property
    def captions(self) -> Path: return self.root / "captions"
    # 03 metrics
    @property
    def metrics(self) -> Path: return self.root / "metrics"
    def captioner_metrics(self, captioner: str, primary: bool) -> Path:
        """Where Experiment 1 of a captioner is written: metrics/ for the run's first captioner (where a
        one-captioner run has it), metrics/<captioner>/ for every further one."""
        return self.metrics if primary else self.metrics / captioner
    # 04/05 retrieval (Experiment 2), one folder per registered model:
    #   retrieval/<model>/{summary,truncation,results}.json, qrels_<query set>.json
    #   retrieval/<model>/<variant>/{run,scores}_<query set>.*     the main score kind's runs
    #   retrieval/<model>/<variant>/model/                          a fine-tuned model (Hugging Face format)
    #   retrieval/<model>/<variant>/training/                       the shared loop's checkpoint, history.json
    #   retrieval/<model>/<variant>/fine_tune.json                  what the fine-tune did (written when it is done)
    #   retrieval/<model>/<kind>/...                                every further score kind, laid out the same way
    @property
    def retrieval(self) -> Path: return self.root / "retrieval"
    def retrieval_model(self, model: str) -> Path: return self.retrieval / model
    def score_dir(self, model: str, kind: str | None = None) -> Path:
        """Where a score kind's runs and results.json live: the model's folder for the main kind (None)."""
        return self.retrieval_model(model) if kind is None else self.retrieval_model(model) / kind
    def retrieval_results(self, model: str, kind: str | None = None) -> Path:
        return self.score_dir(model, kind) / "results.json"
    def retrieval_summary(self, model: str) -> Path: return self.retrieval_model(model) / "summary.json"
    def truncation(self, model: str) -> Path: return self.retrieval_model(model) / "truncation.json"
    def variant(self, model: str, variant: str) -> Path: return self.retrieval_model(model) / variant
    def variant_model(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "model"
    def training_dir(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "training"
    def history(self, model: str, variant: str) -> Path:
        return self.training_dir(model, variant) / "history.json"       # = training.HISTORY
    def fine_tune_record(self, model: str, variant: str) -> Path: return self.variant(model, variant) / "fine_tune.json"
    @property
    def reference_results(self) -> Path:
        """The authors' stored runs evaluated like ours (runs.reference_experiment2)."""
        return self.retrieval / "reference_results.json"
    def reference_fused_run(self, model: str, variant: str, query_set: str) -> Path:
        return self.retrieval / "reference" / model / variant / f"run_{query_set}.json"
    # pocket models and fine-tuned checkpoints
    @property
    def models(self) -> Path: return self.root / "models"
    def pocket_model(self, name: str) -> Path:
        """models/<name>: a pocket model built and trained in this run (demo, tests)."""
        return self.models / name
    # a pocket retrieval model's pre-training (notebooks 04/05), laid out like a fine-tuned variant; its result is
    # copied to pocket_model(name) once finished
    def pocket_pretraining(self, name: str) -> Path: return self.models / f"{name}-pretrain"
    def pocket_pretraining_model(self, name: str) -> Path: return self.pocket_pretraining(name) / "model"
    def pocket_training_dir(self, name: str) -> Path: return self.pocket_pretraining(name) / "training"
    def pocket_history(self, name: str) -> Path: return self.pocket_training_dir(name) / "history.json"
    @property
    def manifest(self) -> Path: return self.root / "manifest.json"
    @property
    def tables(self) -> Path: return self.figures / "tables"

    def caption_file(self, captioner: str) -> Path:
        return self.captions / f"{captioner}.jsonl"
