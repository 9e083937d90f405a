"""Stage 03, Experiment 1: text-similarity metrics of captions against the human captions (the authors' "paper"
backend and pycocoevalcap's "coco" backend), parity with the authors' stored scores, and the step."""
