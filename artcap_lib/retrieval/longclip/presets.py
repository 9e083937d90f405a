"""Long-CLIP's recipes by name (`longclip.preset`): what each one trains with, and the profile values it implies.

A preset names an optimiser, a training loss and a validation loss, and gives the default of every recipe value
(`FIELDS`): a profile or a command line that leaves one of them out gets its preset's; one given explicitly wins.
The authors' code is github.com/jcgohr/artwork-caption-gen; their Long-CLIP is github.com/beichenzbc/Long-CLIP.

  stored     The version of the authors' finetuner that wrote their stored results (src/finetuner.py, February
             2025: 237ddea, a271608 and 2fae93c share its training loop). AdaBelief + OneCycle, lr 1e-7, batch 30,
             6 epochs, no early stop, the epoch of least validation loss kept; their `ContrastiveLoss(0.07)` over the
             two logit matrices the model's forward returned (`stored_loss`), validated with the same class over the
             features, i.e. InfoNCE at temperature 0.07; fp16 autocast + GradScaler; their validation protocol
             (`dualenc.validation`); the last short batch kept.
  committed  The authors' later committed code (922787d, with their Long-CLIP fork at 4601e0b, whose forward returns
             the loss): AdaBelief + OneCycle, lr 5e-7, batch 40, 6 epochs, early stop at the first epoch whose
             validation loss rises; symmetric InfoNCE with the learnt, uncapped scale, validated on the same loss;
             fp16 + GradScaler, their validation protocol, the last short batch kept.
  adamw      CLIP's own AdamW + warm-up/cosine with InfoNCE, and our choices (below): steadier than AdaBelief at the
             larger learning rates small models want.

Where both authors' versions agree (fp16 + GradScaler, validation protocol, last batch kept, no scale cap), their
presets take their value. Our choices, each an option of any preset: `precision: auto` (bf16 autocast, no loss
scaling: fp32's range, so no step is skipped on overflow), `val_protocol: ours` (fixed order, batch-size-weighted:
the kept epoch does not depend on a shuffle), `scale_cap: true` (CLIP's cap at 100) and `drop_last: true` (every
contrastive batch has the same number of negatives).

This module imports nothing heavy: the profile loader reads it to fill a profile's Long-CLIP section.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

# the recipe values a preset decides unless a profile gives them
FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "warmup", "patience", "precision", "val_protocol", "scale_cap",
          "drop_last")


@dataclass(frozen=True)
class Preset:
    name: str
    optimiser: str               # adabelief (AdaBelief + OneCycle, the authors') | adamw (AdamW + warm-up/cosine)
    loss: str                    # logit_contrastive (stored_loss) | infonce (dualenc.objectives)
    val_loss: str                # infonce_t0.07 (InfoNCE at the fixed temperature 0.07) | same (the training loss)
    defaults: Mapping[str, Any]  # FIELDS -> value, as a profile writes them (patience 0 = never stop early)
    source: str


_AUTHORS = dict(weight_decay=1e-3, warmup=0.1, precision="fp16", val_protocol="authors", scale_cap=False,
                drop_last=False)

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("stored", "adabelief", "logit_contrastive", "infonce_t0.07",
           dict(epochs=6, batch_size=30, lr=1e-7, patience=0, **_AUTHORS),
           "the authors' February 2025 finetuner that wrote their stored results (src/finetuner.py at 2fae93c)"),
    Preset("committed", "adabelief", "infonce", "same",
           dict(epochs=6, batch_size=40, lr=5e-7, patience=1, **_AUTHORS),
           "the authors' committed code (922787d; their Long-CLIP fork at 4601e0b)"),
    Preset("adamw", "adamw", "infonce", "same",
           dict(epochs=6, batch_size=40, lr=5e-7, weight_decay=1e-3, warmup=0.1, patience=1, precision="auto",
                val_protocol="ours", scale_cap=True, drop_last=True),
           "CLIP's AdamW + warm-up/cosine, with our choices"),
)}

# names a profile may still hold, and what they are called now
RENAMED = {"paper": "committed"}


class FromPreset:
    """The default of a recipe value: its preset's (filled in by `fill`)."""

    def __repr__(self) -> str:
        return "<the preset's>"


FROM_PRESET: Any = FromPreset()


def preset(name: str) -> Preset:
    """The preset of that name; an old name fails with one line giving its new one."""
    if name in PRESETS:
        return PRESETS[name]
    if name in RENAMED:
        raise ValueError(f"longclip.preset: {name!r} is now called {RENAMED[name]!r} (the authors' later committed "
                         "code, 922787d); the paper profile runs 'stored', the recipe that wrote their stored "
                         "results")
    raise ValueError(f"longclip.preset: unknown preset {name!r} (known: {', '.join(PRESETS)})")


def fill(settings) -> None:
    """Set every field of `settings` (a dataclass with `preset` and FIELDS) left at FROM_PRESET to its preset's."""
    chosen = preset(settings.preset)
    for f in fields(settings):
        if getattr(settings, f.name) is FROM_PRESET:
            setattr(settings, f.name, chosen.defaults[f.name])
