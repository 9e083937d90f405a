"""The demo's pocket Long-CLIP: a tiny transformers CLIPModel with Long-CLIP's 248 text positions.

No Long-CLIP weights ship with the project, so the demo builds one: a CLIP BPE tokenizer (CLIP's normaliser,
pre-tokeniser, `</w>` word ends, `<|startoftext|>`/`<|endoftext|>`) whose merges are learnt with `tokenizers` from
the pre-training captions, saved as a `CLIPTokenizer`; a `CLIPImageProcessor`; and a randomly initialised
`CLIPModel` that `longclip.pretrain_pocket` then trains briefly on the disjoint pre-training pool (playing
the part of CLIP's web-scale pre-training). The result is saved with `save_pretrained` and loaded through the
same `longclip.load_model` path as a real Long-CLIP directory.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

# CLIP's pre-tokenisation: the special tokens, English clitics, letter runs, single digits, other symbol runs
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
SOT, EOT = "<|startoftext|>", "<|endoftext|>"


@dataclass
class PocketSpec:
    image_size: int = 32          # demo paintings (96 px) are resized to this: colours, places and big shapes survive
    patch_size: int = 8           # -> 16 patches
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 2
    projection_dim: int = 64
    vocab_size: int = 1200        # BPE merges learnt on the captions (plus CLIP's 512 byte symbols)
    max_positions: int = 248      # Long-CLIP's context


def train_clip_tokenizer(texts: list[str], vocab_size: int):
    """A CLIPTokenizer with CLIP's conventions whose merges are learnt from `texts`.

    The vocabulary is laid out as CLIP's: the 256 byte symbols, the same with `</w>`, the merged symbols in merge
    order, then <|startoftext|> and <|endoftext|> (also the padding token, as in openai/clip-* tokenizers).
    Every byte has a symbol with and without `</w>`, so any text tokenises without <unk>."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    learner = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    learner.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                               normalizers.Lowercase()])
    learner.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    learner.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=alphabet, end_of_word_suffix="</w>", show_progress=False))
    import json
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(learner.to_str())["model"]["merges"]]
    symbols = sorted(alphabet) + [s + "</w>" for s in sorted(alphabet)] + ["".join(m) for m in merges]
    vocab: dict[str, int] = {}
    for symbol in [*symbols, SOT, EOT]:
        vocab.setdefault(symbol, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=248)


def build_pocket_longclip(corpus: list[str], spec: PocketSpec = PocketSpec(), seed: int = 0):
    """(model, tokenizer, image_processor): a randomly initialised pocket Long-CLIP whose tokenizer knows `corpus`."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = train_clip_tokenizer(corpus, spec.vocab_size)
    tokenizer.model_max_length = spec.max_positions
    eot = tokenizer.convert_tokens_to_ids(EOT)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=spec.text_hidden,
                         intermediate_size=4 * spec.text_hidden, num_hidden_layers=spec.text_layers,
                         num_attention_heads=spec.heads, max_position_embeddings=spec.max_positions,
                         hidden_act="quick_gelu", bos_token_id=tokenizer.convert_tokens_to_ids(SOT),
                         eos_token_id=eot, pad_token_id=eot),
        vision_config=dict(hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
                           num_hidden_layers=spec.vision_layers, num_attention_heads=spec.heads,
                           image_size=spec.image_size, patch_size=spec.patch_size, hidden_act="quick_gelu"),
        projection_dim=spec.projection_dim)
    # CLIP's own preprocessing (bicubic resize of the short side, centre crop, CLIP mean/std) at pocket size
    processor = CLIPImageProcessorPil(size={"shortest_edge": spec.image_size},
                                   crop_size={"height": spec.image_size, "width": spec.image_size})
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.config.pocket_spec = asdict(spec)     # saved in config.json: what was built
    return model, tokenizer, processor
