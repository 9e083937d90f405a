"""Dual encoders (an image tower and a text tower scored by the similarity of their projected features) for
Experiment 2: what CLIP, SigLIP and Long-CLIP share, and one module per model.

    data        how a model's captions become text inputs (cut, padding, mask), the (image, caption) pairs
    objectives  symmetric InfoNCE (CLIP, Long-CLIP) and the pairwise sigmoid loss (SigLIP), both over the batch
                gathered across processes
    recipe      AdamW with warm-up + cosine decay, and the fine-tune on the shared loop (`training.fit`)
    scoring     features of images and texts, and score matrices (dot, cosine, SigLIP's sigmoid logit)
    adapter     `DualEncoderModel`: the `RetrievalModel` protocol for any of them, from a few class attributes
    clip        openai/clip-vit-large-patch14 (`Clip`)
    siglip      google/siglip-base-patch16-224 (`Siglip`)

Long-CLIP (`retrieval.longclip`) uses data, objectives, recipe and scoring, and keeps its own adapter (the authors'
presets, the .pt conversion, the 248-position stretch).
"""
