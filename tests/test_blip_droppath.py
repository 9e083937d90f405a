"""Upstream BLIP's stochastic depth on transformers' BlipVisionModel (retrieval/blip/droppath.py)."""
import copy

import pytest
import torch

from artcap_lib.retrieval.blip.droppath import DropPath, drop_path_rates, set_drop_path


@pytest.fixture()
def vision():
    from transformers import BlipVisionConfig, BlipVisionModel
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return BlipVisionModel(BlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                                            num_attention_heads=2, image_size=32, patch_size=16,
                                            initializer_range=0.1))   # the default 1e-10 gives ~0 outputs


def test_rates_rise_linearly_over_the_layers_as_upstreams_decay_rule(vision):
    set_drop_path(vision, 0.1)
    assert drop_path_rates(vision) == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    layer = vision.encoder.layers[4]
    assert [type(h) for h in layer.self_attn._forward_hooks.values()] == [DropPath]
    assert [type(h) for h in layer.mlp._forward_hooks.values()] == [DropPath]
    set_drop_path(vision, 0.2)                                   # replaced, not stacked
    assert drop_path_rates(vision) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert len(layer.mlp._forward_hooks) == 1
    set_drop_path(vision, 0.0)
    assert drop_path_rates(vision) == [0.0] * 5 and not layer.mlp._forward_hooks


def test_a_branch_is_dropped_or_scaled_per_sample_in_training_and_untouched_in_evaluation():
    hook = DropPath(0.25)
    module = torch.nn.Linear(1, 1)
    x = torch.randn(4000, 3, 8)
    module.train()
    torch.manual_seed(0)
    out = hook(module, (), x)
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.isclose(out, x / 0.75).flatten(1).all(1)
    assert bool((dropped | kept).all())                          # whole samples: dropped, or kept and scaled 1/keep
    assert dropped.float().mean().item() == pytest.approx(0.25, abs=0.03)
    attn_out = hook(module, (), (x, "weights"))                  # BlipAttention's (hidden, weights) output
    assert attn_out[1] == "weights" and attn_out[0].shape == x.shape
    module.eval()
    assert hook(module, (), x) is x


def test_the_layers_residual_adds_the_dropped_branch_and_weights_keep_their_names(vision, tmp_path):
    names = list(vision.state_dict())
    set_drop_path(vision, 0.5)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    vision.eval()
    reference = vision(pixel_values=pixels).last_hidden_state
    vision.train()
    torch.manual_seed(1)
    a = vision(pixel_values=pixels).last_hidden_state
    torch.manual_seed(1)
    b = vision(pixel_values=pixels).last_hidden_state
    assert torch.equal(a, b) and not torch.allclose(a, reference)   # seeded masks; training differs from eval
    # the first layer never drops: with every other layer's branches forced off the output is layer 0 alone
    hooks = [h for layer in vision.encoder.layers for m in (layer.self_attn, layer.mlp)
             for h in m._forward_hooks.values()]
    for h in hooks:
        h.rate = 0.999999                                        # (almost) always dropped
    x = vision.embeddings(pixels)
    expected = vision.post_layernorm(vision.encoder.layers[0](x))
    torch.manual_seed(2)
    torch.testing.assert_close(vision(pixel_values=pixels).last_hidden_state, expected)
    assert list(vision.state_dict()) == names
    vision.save_pretrained(tmp_path)                             # nothing of the hooks reaches the checkpoint
    from transformers import BlipVisionModel
    assert list(BlipVisionModel.from_pretrained(tmp_path).state_dict()) == names


def test_activation_checkpointing_replays_the_same_masks(vision):
    set_drop_path(vision, 0.5)
    vision.train()
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = copy.deepcopy(vision)
    assert drop_path_rates(plain) == drop_path_rates(vision)     # deepcopy (the momentum copy) carries the hooks

    def grads(model):
        torch.manual_seed(3)
        model.zero_grad()
        model(pixel_values=pixels).last_hidden_state.pow(2).sum().backward()
        return [p.grad.clone() for p in model.parameters()]
    vision.activation_checkpointing_enable()
    calls = []
    vision.encoder.layers[4].mlp.register_forward_hook(lambda *args: calls.append(1))
    # without early stop the recomputation runs each layer to its end, so the counting hook sees it
    with torch.utils.checkpoint.set_checkpoint_early_stop(False):
        checkpointed = grads(vision)
    assert len(calls) == 2                                       # forward, then the recomputation in backward
    for g, h in zip(checkpointed, grads(plain)):
        torch.testing.assert_close(g, h)


def test_the_objective_gives_the_vit_and_its_momentum_copy_the_rate():
    from artcap_lib.retrieval.blip.settings import BlipConfig
    from artcap_lib.retrieval.blip.model import BlipRetrievalObjective
    from artcap_lib.standins.pocket_blip import build_pocket_blip
    assert BlipConfig().drop_path == 0.1 and BlipConfig().precision == "fp32" and BlipConfig().queue_size == 57600
    from artcap_lib.retrieval.blip.model import load_blip
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, _, _ = load_blip(build_pocket_blip(tmp, image_size=32, patch_size=16, hidden=32, layers=3,
                                                             embed_dim=16))
    obj = BlipRetrievalObjective(model, 30523, queue_size=8, drop_path=0.1)
    assert drop_path_rates(obj.model.vision_model) == pytest.approx([0.0, 0.05, 0.1])
    assert drop_path_rates(obj.vision_model_m) == pytest.approx([0.0, 0.05, 0.1])
    assert drop_path_rates(BlipRetrievalObjective(model, 30523, queue_size=8).vision_model_m) == [0.0] * 3
