"""BLIP (Salesforce/blip-itm-large-coco) for Experiment 2: its retrieval objective (model), data pipeline (data),
fine-tuning recipe and scores (recipe), and its place in the runner (adapter)."""
