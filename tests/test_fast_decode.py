"""fast_decode: the fast greedy decoder gives generate's tokens exactly in fp32 (CPU, pocket-sized models)."""
import pytest
import torch

from artcap_lib.captioning.fast_decode import FastGenerateModel, GreedyDecoder, supports


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    """A pocket-sized LLaVA with llava-hf's token layout (random weights) and a left-padded batch whose prompts
    differ in length, so padding, positions and masks are all exercised."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from artcap_lib.bench.subjects import bench_images
    from artcap_lib.standins.random_models import resolve_model
    torch.manual_seed(0)
    path = resolve_model("random:llava-1.5-7b@tiny?text_hidden=64&text_layers=3", tmp_path_factory.mktemp("m"),
                         device="cpu")
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()

    def chat(text):
        return processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                              {"type": "text", "text": text}]}], add_generation_prompt=True)
    prompts = [chat("Caption this image"), chat("Describe"), chat("Caption this painting in detail please"), chat("Hi")]
    inputs = processor(images=bench_images(4, 64), text=prompts, return_tensors="pt", padding=True)
    assert len(set(inputs["attention_mask"].sum(1).tolist())) > 1
    return model, processor, inputs


def _generate(model, inputs, pad, **kw):
    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, pad_token_id=pad, **kw)


def test_same_tokens_as_generate_with_early_ends(llava):
    model, processor, inputs = llava
    pad = processor.tokenizer.pad_token_id
    plain = _generate(model, inputs, pad, max_new_tokens=16)[:, inputs["input_ids"].shape[1]:]
    # end tokens taken from what the model says: a row that ends at step 2, one that ends later, one never
    ends = [[int(plain[0, 2])], [int(plain[1, 9]), int(plain[2, 5])], []]
    saved = model.generation_config.eos_token_id
    try:
        for eos in ends:
            model.generation_config.eos_token_id = eos or None
            reference = _generate(model, inputs, pad, max_new_tokens=16)
            decoder = GreedyDecoder(model, check_every=3)
            for _ in range(2):                       # the second call reuses (resets) the static cache
                assert torch.equal(decoder(**inputs, max_new_tokens=16, pad_token_id=pad), reference), eos
            forced = _generate(model, inputs, pad, max_new_tokens=16, min_new_tokens=8)
            assert torch.equal(GreedyDecoder(model)(**inputs, max_new_tokens=16, min_new_tokens=8, pad_token_id=pad),
                               forced)
    finally:
        model.generation_config.eos_token_id = saved


def test_fast_generate_model_falls_back_for_non_greedy(llava):
    model, processor, inputs = llava
    pad = processor.tokenizer.pad_token_id
    fast = FastGenerateModel(model)
    assert supports({"max_new_tokens": 4, "do_sample": False}) and not supports({"num_beams": 2})
    with torch.inference_mode():
        beams = fast.generate(**inputs, max_new_tokens=4, num_beams=2, do_sample=False, pad_token_id=pad)
    assert torch.equal(beams, _generate(model, inputs, pad, max_new_tokens=4, num_beams=2))
    assert fast.eval() is fast and fast.config is model.config


def test_captioner_fast_engine_writes_the_same_captions(tmp_path):
    """The demo's pocket LLaVA through the real pipeline (caption_into): engine=fast == engine=generate."""
    import numpy as np

    from artcap_lib.bench.subjects import bench_images
    from artcap_lib.captioning.store import CaptionStore, read_captions
    from artcap_lib.captioning.captioner import Captioner, Decoding, caption_into
    from artcap_lib.data.demo import random_scene
    from artcap_lib.standins.pocket_llava import assistant_caption, build_pocket_llava
    rng = np.random.default_rng(0)
    net, processor = build_pocket_llava([assistant_caption(random_scene(rng)) for _ in range(50)])
    net.save_pretrained(tmp_path / "pocket")
    processor.save_pretrained(tmp_path / "pocket")
    items = []
    for i, image in enumerate(bench_images(6, 64, seed=1)):
        image.save(tmp_path / f"{i}.png")
        items.append((str(i), tmp_path / f"{i}.png"))
    captions = {}
    for engine in ("generate", "fast"):
        captioner = Captioner.from_pretrained(tmp_path / "pocket", dtype="float32", engine=engine,
                                              decoding=Decoding(max_new_tokens=24))
        caption_into(captioner, items, CaptionStore(tmp_path / f"{engine}.jsonl"), batch_size=4)
        captions[engine] = read_captions(tmp_path / f"{engine}.jsonl")
    assert len(captions["fast"]) == 6 and captions["fast"] == captions["generate"]
    with pytest.raises(ValueError, match="engine 'vllm'"):
        Captioner.from_pretrained(tmp_path / "pocket", engine="vllm")


def test_compare_decoders_reports_agreement_and_ratios(llava):
    from artcap_lib.bench.decode import compare_decoders
    from artcap_lib.bench.subjects import bench_images
    model, processor, _ = llava
    result = compare_decoders(model, processor, bench_images(6, 64), batch_size=3, max_new_tokens=6,
                              min_new_tokens=6, configs=("generate", "fast", "fast_compiled"), progress=lambda _: None)
    configs = result["configs"]
    assert configs["fast"]["token_agreement"] == 1.0 and configs["fast"]["identical"] == 1.0
    assert configs["fast"]["timed_images"] == 3 and configs["generate"]["images_per_second"] > 0
    assert "skipped" in configs["fast_compiled"] and result["ratio_fast_vs_generate"] > 0
    with pytest.raises(ValueError, match="unknown decoder"):
        compare_decoders(model, processor, [], 1, 1, configs=("beam",))


def test_eager_attention_gets_an_additive_mask_and_the_same_tokens(llava):
    """Eager attention adds the 4D mask to the scores: a boolean mask would mask nothing (76% agreement before)."""
    from transformers import AutoModelForImageTextToText
    model, processor, inputs = llava
    eager = AutoModelForImageTextToText.from_pretrained(model.name_or_path, dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    pad = processor.tokenizer.pad_token_id
    decoder = GreedyDecoder(eager)
    assert decoder.mask_kind == "additive"
    assert torch.equal(decoder(**inputs, max_new_tokens=12, pad_token_id=pad),
                       _generate(eager, inputs, pad, max_new_tokens=12))


def test_attention_without_4d_masks_is_refused(llava):
    import copy
    model, _, _ = llava
    flash = copy.deepcopy(model)
    flash.config.text_config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attn_implementation='flash_attention_2'.*use engine 'generate'"):
        GreedyDecoder(flash)
