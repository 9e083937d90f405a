"""random_models: full-size architectures with random weights, materialised as local Hugging Face directories."""
import json

import pytest
import torch

from artcap_lib.standins import random_models as rm

TINY_SPECS = ("random:llava-1.5-7b@tiny", "random:blip-itm-large-coco@tiny", "random:longclip-L@tiny")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def test_parse_spec_presets_overrides_and_errors():
    arch, shape = rm.parse_spec("random:llava-1.5-7b")
    assert arch == "llava-1.5-7b" and (shape.text_layers, shape.text_hidden, shape.vocab_size) == (32, 4096, 32064)
    _, tiny = rm.parse_spec("random:longclip-L@tiny?image_size=28&text_layers=1")
    assert (tiny.image_size, tiny.text_layers, tiny.max_positions, tiny.vocab_size) == (28, 1, 248, 49408)
    for bad, said in [("random:gpt-5", "architecture"), ("random:longclip-L@huge", "preset"),
                      ("random:longclip-L?depth=3", "bad override 'depth=3'"),
                      ("random:longclip-L?image_size=-1", "bad override")]:
        with pytest.raises(ValueError, match=said):
            rm.parse_spec(bad)
    assert rm.directory_name("random:longclip-L@tiny?image_size=28") == "longclip-L_tiny_image_size_28"


@pytest.mark.parametrize("spec,layers", [("random:llava-1.5-7b", (24, 32)), ("random:blip-itm-large-coco", (24, 12)),
                                         ("random:longclip-L", (24, 12))])
def test_full_size_architectures(spec, layers, models_dir):
    """The full-size configs (instantiated on the meta device: no memory) have the published shapes."""
    arch, shape = rm.parse_spec(spec)
    out = rm.prepare_processor(spec, models_dir / ("proc-" + rm.directory_name(spec)))
    from transformers import AutoTokenizer
    config = rm.build_config(arch, shape, AutoTokenizer.from_pretrained(str(out)))
    with torch.device("meta"):
        model = rm._model_class(arch)._from_config(config)
    n = sum(p.numel() for p in model.parameters())
    vision = config.vision_config
    assert (vision.num_hidden_layers, vision.hidden_size) == (layers[0], 1024)
    if arch == "llava-1.5-7b":
        assert n == 7_063_427_072          # llava-hf/llava-1.5-7b-hf's parameter count
        assert config.text_config.num_hidden_layers == layers[1] and config.image_seq_length == 576
        assert (vision.image_size, vision.patch_size) == (336, 14)
    elif arch == "blip-itm-large-coco":
        assert (vision.image_size, vision.patch_size) == (384, 16)
        assert config.text_config.encoder_hidden_size == 1024 and config.text_config.vocab_size == 30524
    else:
        assert model.text_model.embeddings.position_embedding.weight.shape == (248, 768)
        assert config.text_config.num_hidden_layers == layers[1] and (vision.image_size, vision.patch_size) == (224, 14)


def test_llava_tokenizer_and_processor_have_llava_hf_layout(models_dir):
    """<image> = 32000, <pad> = 32001, BOS 1, EOS 2; the 336-px processor expands <image> to 576 tokens."""
    from PIL import Image
    from transformers import AutoProcessor
    out = rm.prepare_processor("random:llava-1.5-7b", models_dir / "proc-llava-full")
    processor = AutoProcessor.from_pretrained(str(out))
    tok = processor.tokenizer
    assert (tok.convert_tokens_to_ids("<image>"), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (32000, 32001, 1, 2)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                          {"type": "text", "text": "Caption this image"}]}], add_generation_prompt=True)
    assert text == "USER: <image>\nCaption this image ASSISTANT:"
    ids = processor(images=Image.new("RGB", (500, 300)), text=text, return_tensors="pt")["input_ids"][0]
    assert int((ids == 32000).sum()) == 576 and int(ids[0]) == 1


@pytest.mark.parametrize("spec", TINY_SPECS)
def test_resolve_materialises_once_and_loads_with_from_pretrained(spec, models_dir):
    import transformers
    path = rm.resolve_model(spec, models_dir, device="cpu")
    done = json.loads((models_dir / "random" / rm.directory_name(spec) / rm.DONE).read_text())
    assert done["spec"] == spec and done["parameters"] > 0
    stamp = (models_dir / "random" / rm.directory_name(spec) / rm.DONE).stat().st_mtime_ns
    assert rm.resolve_model(spec, models_dir) == path            # cached: not rebuilt
    assert (models_dir / "random" / rm.directory_name(spec) / rm.DONE).stat().st_mtime_ns == stamp
    cls = {"llava": transformers.LlavaForConditionalGeneration, "blip": transformers.BlipForImageTextRetrieval,
           "longclip": transformers.CLIPModel}[spec.split(":")[1].split("-")[0]]
    model = cls.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) == done["parameters"]
    transformers.AutoProcessor.from_pretrained(path) if "longclip" not in spec else \
        transformers.AutoTokenizer.from_pretrained(path)


def test_resolve_passes_other_specs_through_and_rebuilds_incomplete(models_dir, tmp_path, monkeypatch):
    assert rm.resolve_model("llava-hf/llava-1.5-7b-hf", models_dir) == "llava-hf/llava-1.5-7b-hf"
    assert rm.resolve_model(tmp_path / "pocket-llava", models_dir) == str(tmp_path / "pocket-llava")
    monkeypatch.setenv("ARTCAP_RANDOM_MODELS", str(tmp_path / "shared"))
    spec = "random:longclip-L@tiny?text_layers=1"
    (tmp_path / "shared" / rm.directory_name(spec)).mkdir(parents=True)   # a killed run's leftovers: no DONE file
    path = rm.resolve_model(spec, models_dir, device="cpu")
    assert path == str(tmp_path / "shared" / rm.directory_name(spec))
    assert (tmp_path / "shared" / rm.directory_name(spec) / "model.safetensors").is_file()


def test_pipeline_loaders_accept_random_directories(models_dir):
    """What notebooks 04/05 call on the bench profile's models: blip.load_blip and longclip.load_model."""
    from artcap_lib.retrieval.blip import model as blip
    from artcap_lib.retrieval.longclip import model as longclip
    model, tokenizer, mean, _ = blip.load_blip(rm.resolve_model("random:blip-itm-large-coco@tiny", models_dir))
    assert blip.enc_token_id(tokenizer) == 30523 and model.config.vision_config.image_size == 64
    bundle = longclip.load_model(rm.resolve_model("random:longclip-L@tiny", models_dir))
    assert bundle.tokenizer.model_max_length == 248 and bundle.note == ""
    ids = bundle.tokenizer(["a red circle"], padding="max_length", max_length=248, return_tensors="pt")["input_ids"]
    assert bundle.model(input_ids=ids, pixel_values=torch.zeros(1, 3, 56, 56)).text_embeds.shape == (1, 32)
