"""BLIP (Salesforce/blip-itm-large-coco) for Experiment 2: BLIP's retrieval objective, its data pipeline, and the
experiment of notebook 04."""
