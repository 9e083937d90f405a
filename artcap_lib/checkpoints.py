"""Loading a Hugging Face checkpoint strictly: every weight of the model from the file, nothing left over.

`from_pretrained` fills weights a checkpoint lacks with fresh random values and ignores weights the model has no
place for, with only a log line. A model directory missing, say, LLaVA's projector would then caption (or a
retrieval model score) as if all were well. Here either case is an error naming the directory and the weights.
"""
from __future__ import annotations

from pathlib import Path


class IncompleteCheckpointError(ValueError):
    """A checkpoint whose weights do not match its model's: missing, unexpected or of another shape."""


def load_pretrained(model_class, name_or_path: str | Path, **kwargs):
    """model_class.from_pretrained(name_or_path, **kwargs), refused unless the checkpoint fits the model exactly."""
    model, info = model_class.from_pretrained(str(name_or_path), output_loading_info=True, **kwargs)
    problems = []
    for key, what in (("missing_keys", "missing from the checkpoint (they would be random)"),
                      ("unexpected_keys", "in the checkpoint but not in the model"),
                      ("mismatched_keys", "of another shape than the model's")):
        names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in (info.get(key) or ()))
        if names:
            problems.append(f"{len(names)} weight(s) {what}, e.g. {', '.join(names[:3])}")
    if problems:
        raise IncompleteCheckpointError(f"{name_or_path}: not a complete {model_class.__name__} checkpoint: "
                                        + "; ".join(problems))
    return model
