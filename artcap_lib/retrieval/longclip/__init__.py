"""Long-CLIP-L for Experiment 2: loading and converting longclip-*.pt (convert), the contrastive recipe and scores
(model), and its place in the runner (adapter)."""
