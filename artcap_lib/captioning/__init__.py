"""Stage 02, captioning: one Captioner over any Hugging Face image-text-to-text model, the fast greedy decoder, the
append-only caption store, and the step that writes captions/<captioner>.jsonl."""
