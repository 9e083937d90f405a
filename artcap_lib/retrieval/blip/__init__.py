"""BLIP for Experiment 2: its retrieval objective (model), data pipeline (data), fine-tuning recipe and scores
(recipe), BLIP's original checkpoints as transformers models (original), upstream's stochastic depth on the ViT
(droppath), and its place in the runner (adapter)."""
