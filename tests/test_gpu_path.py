"""The GPU path on CUDA (skipped without it): the fast decoder vs generate, bf16 training steps, batched ITM.

Run by scripts/gpu_check.sh (`pytest -m gpu`); pocket-sized random models, seconds each."""
import pytest
import torch

from artcap_lib.standins import random_models as rm

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def _llava(models_dir, dtype):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    path = rm.resolve_model("random:llava-1.5-7b@tiny?text_hidden=128&text_layers=4", models_dir, device="cpu")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation="sdpa").to("cuda")
    return model.eval(), AutoProcessor.from_pretrained(path)


@pytest.mark.parametrize("dtype,least", [(torch.float32, 0.95), (torch.bfloat16, 0.5)])
def test_fast_decoder_agrees_with_generate_on_cuda(models_dir, dtype, least):
    """fp32: (near-)identical to plain generate, eager and as CUDA graphs; bf16: the agreement is measured."""
    from artcap_lib.bench.decode import compare_decoders
    from artcap_lib.bench.subjects import bench_images
    model, processor = _llava(models_dir, dtype)
    result = compare_decoders(model, processor, bench_images(48, 64), batch_size=16, max_new_tokens=24,
                              configs=("generate", "fast", "fast_compiled"), progress=print)
    for name in ("fast", "fast_compiled"):
        assert result["configs"][name]["token_agreement"] >= least, result["configs"][name]
        assert result["configs"][name]["images_per_second"] > 0


def test_fast_engine_in_the_captioning_pipeline_on_cuda(models_dir, tmp_path):
    from artcap_lib.bench.subjects import bench_images
    from artcap_lib.captioning.captioner import Captioner, Decoding
    path = rm.resolve_model("random:llava-1.5-7b@tiny?text_hidden=128&text_layers=4", models_dir, device="cpu")
    images = bench_images(8, 64)
    captions = {engine: Captioner.from_pretrained(path, dtype="float32", device="cuda", engine=engine,
                                                  decoding=Decoding(max_new_tokens=12)).caption(images)
                for engine in ("generate", "fast_compiled")}
    same = sum(a == b for a, b in zip(captions["generate"], captions["fast_compiled"]))
    assert same >= 7, captions


@pytest.mark.parametrize("which", ["blip", "longclip"])
def test_training_step_bf16_on_cuda(which, models_dir):
    """One benchmark's worth of bf16 fine-tuning steps of each retrieval model on CUDA: finite, timed, peak memory."""
    from artcap_lib.bench.train import benchmark_training
    from artcap_lib.retrieval.protocol import BenchOptions
    source = {"blip": "random:blip-itm-large-coco@tiny", "longclip": "random:longclip-L@tiny"}[which]
    out = benchmark_training(which, source, batch_size=8, steps=2, warmup=1, device="cuda", precision="bf16",
                             options=BenchOptions(preset="adamw", queue_size=32, models_dir=models_dir))
    assert out["images_per_second"] > 0 and out["peak_memory_gib"] > 0 and out["device"].startswith("cuda")


def test_itm_rerank_batched_on_cuda_matches_one_pair_at_a_time(models_dir):
    from artcap_lib.retrieval.blip import model as blip
    model, tokenizer, _, _ = blip.load_blip(rm.resolve_model("random:blip-itm-large-coco@tiny", models_dir,
                                                             device="cpu"), "cuda")
    model.eval()
    g = torch.Generator().manual_seed(0)
    texts = [f"a painting number {i} of a red circle" for i in range(6)]
    pixels = torch.randn(5, 3, 64, 64, generator=g)
    text_feat, ids, mask = blip.encode_texts(model, tokenizer, texts, "cuda")
    image_feat, embeds = blip.encode_images(model, [pixels], "cuda", keep_embeds=True)
    itc = blip.itc_scores(text_feat, image_feat)
    enc = blip.enc_token_id(tokenizer)
    batched = blip.itm_rerank(model, itc, ids, mask, embeds, enc, k=3, batch_size=128)
    single = blip.itm_rerank(model, itc, ids, mask, embeds, enc, k=3, batch_size=1)
    assert batched.shape == (6, 5)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
