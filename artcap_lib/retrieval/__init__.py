"""Stages 04-05, Experiment 2: retrieval metrics, ranx-format runs, the shared training loop, one runner
(`experiment`) over a small protocol (`protocol`) that each registered model (`registry`) implements, and one
sub-package per model family (blip/, longclip/, dualenc/ for CLIP and SigLIP), each with its profile section."""
