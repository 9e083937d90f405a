"""The two-tower test model's profile section (`twotower:`), in a module of its own as a real model's settings.py:
light, so that a registry line can name it before the profile is built."""
from __future__ import annotations

from dataclasses import dataclass

from artcap_lib.settings import setting

POCKET = "pocket-twotower"


@dataclass
class Settings:
    model: str = setting(POCKET, "the two towers to fine-tune: only the pocket model exists")
    threads: int = setting(1, "torch intra-op threads")
    epochs: int = setting(3, "fine-tuning epochs", at_least=1)
    batch_size: int = setting(8, "pairs per step", at_least=1)
    lr: float = setting(0.05, "SGD learning rate", positive=True)
    max_words: int = setting(12, "caption words hashed into the text features", at_least=1)
    keep_checkpoint: bool = setting(False, "keep the training checkpoint after a finished fine-tune")
