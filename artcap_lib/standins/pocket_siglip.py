"""The demo's pocket SigLIP: a tiny transformers SiglipModel with SigLIP's text conventions.

No SigLIP weights ship with the project, so the demo builds one: a tokenizer trained with `tokenizers` on the
pre-training captions that follows SigLIP's (SentencePiece unigram pieces with the "▁" word marker; text lower-cased
and stripped of punctuation first, as SiglipTokenizer canonicalises it; ids <pad> 0, </s> 1, <unk> 2 as in its T5
vocabulary; </s> appended and also the padding token; 64 positions, input_ids only), saved as a fast tokenizer that
AutoTokenizer and AutoProcessor load from the folder; a SiglipImageProcessor (squash-resize to the side, bicubic,
mean/std 0.5); and a randomly initialised SiglipModel (MAP-head vision tower, last-position text pooling) whose
temperature starts where the SigLIP paper starts it (t = 10) and whose bias follows the paper's rule rather than its
number: b = -10 makes sigmoid(b) about the share of positive pairs in its 32k batch (1 in 32k), so training starts
near that prior; the pocket's batches of 64 pairs per image have a prior of 1 in 64, hence b = -log(batch size).
(With b = -10 a pocket's negatives barely push: test R@1 3x chance after a short pre-training, 15x with -log B.)
`Siglip.pretrain_pocket` then trains it briefly on the disjoint pool.
"""
from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"     # ids 0, 1, 2
PUNCTUATION = "[" + "".join("\\" + c for c in string.punctuation) + "]"


@dataclass
class PocketSpec:
    image_size: int = 32          # demo paintings (96 px) are resized to this: colours, places and big shapes survive
    patch_size: int = 8           # -> 16 patches
    hidden: int = 64              # both towers (SigLIP compares the towers' outputs directly: the widths must agree)
    vision_layers: int = 2
    text_layers: int = 2
    heads: int = 2
    vocab_size: int = 1000        # unigram pieces learnt on the captions (the trainer may keep fewer)
    max_positions: int = 64       # SigLIP's context


def train_siglip_tokenizer(texts: list[str], vocab_size: int, max_length: int = 64):
    """A fast tokenizer with SigLIP's conventions (see the module docstring) whose pieces are learnt from `texts`.
    Every lower-case letter and digit is a piece, so words never seen still tokenise without <unk>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Lowercase(), normalizers.Replace(Regex(PUNCTUATION), ""),
        normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], unk_token=UNK, show_progress=False,
        initial_alphabet=list(string.ascii_lowercase + string.digits)))
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                                             special_tokens=[(EOS, tokenizer.token_to_id(EOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, unk_token=UNK,
                                   model_max_length=max_length, model_input_names=["input_ids"])


def siglip_image_processor(size: int):
    """SigLIP's preprocessing (as google/siglip-* publish it): resize to size x size without keeping the aspect
    ratio, bicubic, rescale to [0, 1], normalise with mean = std = 0.5."""
    from PIL import Image
    from transformers import SiglipImageProcessorPil
    return SiglipImageProcessorPil(size={"height": size, "width": size}, resample=Image.Resampling.BICUBIC,
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def init_logits(model, batch_size: int) -> None:
    """SigLIP's starting temperature t' = log 10 and a bias at the log-prior of a positive pair in a batch of
    `batch_size` (the module docstring); transformers' own init leaves both at 0."""
    import torch
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-math.log(batch_size))


def build_pocket_siglip(corpus: list[str], spec: PocketSpec = PocketSpec(), seed: int = 0, batch_size: int = 64):
    """(model, tokenizer, image_processor): a randomly initialised pocket SigLIP whose tokenizer knows `corpus`,
    its logit bias set for pre-training batches of `batch_size`."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    tokenizer = train_siglip_tokenizer(corpus, spec.vocab_size, spec.max_positions)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=spec.hidden, intermediate_size=4 * spec.hidden,
                         num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads,
                         max_position_embeddings=spec.max_positions, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None),
        vision_config=dict(hidden_size=spec.hidden, intermediate_size=4 * spec.hidden,
                           num_hidden_layers=spec.vision_layers, num_attention_heads=spec.heads,
                           image_size=spec.image_size, patch_size=spec.patch_size))
    torch.manual_seed(seed)
    model = SiglipModel(config)
    init_logits(model, batch_size)
    model.config.pocket_spec = asdict(spec)     # saved in config.json: what was built
    return model, tokenizer, siglip_image_processor(spec.image_size)
