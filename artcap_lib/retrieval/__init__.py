"""Stages 04-05, Experiment 2: retrieval metrics, ranx-format runs, the shared training loop, and one sub-package per
retrieval model (blip/, longclip/)."""
