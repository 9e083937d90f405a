"""Long-CLIP-L for Experiment 2: loading and converting longclip-*.pt, the contrastive recipe, and the experiment
of notebook 05."""
