"""Long-CLIP checkpoint conversion and position stretching, checked against a 30-line OpenAI-layout CLIP forward."""
from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

from artcap_lib.retrieval.longclip import convert as lc

VOCAB = 50


def tiny_clip(positions: int = 248, seed: int = 0) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=1, max_position_embeddings=positions, hidden_act="quick_gelu",
                         bos_token_id=VOCAB - 2, eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 1),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1,
                           image_size=32, patch_size=16, hidden_act="quick_gelu"),
        projection_dim=16)
    model = CLIPModel(config).eval()
    with torch.no_grad():   # random, not the init's near-zeros: every weight must matter in the comparison
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def inputs(n_tokens: int = 30):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB - 2, (2, n_tokens), generator=g)
    ids[:, 0] = VOCAB - 2
    ids[0, -1] = ids[1, n_tokens // 2] = VOCAB - 1          # EOT in different places
    ids[1, n_tokens // 2 + 1:] = VOCAB - 1
    return ids, torch.randn(2, 3, 32, 32, generator=g)


# --- an independent forward pass in OpenAI-CLIP's layout (as in openai/CLIP model.py) ---------------------------
def _blocks(x, state, prefix, heads, mask=None):
    i = 0
    while f"{prefix}{i}.ln_1.weight" in state:
        p = f"{prefix}{i}."
        w = x.shape[-1]
        h = F.layer_norm(x, (w,), state[p + "ln_1.weight"], state[p + "ln_1.bias"])
        q, k, v = F.linear(h, state[p + "attn.in_proj_weight"], state[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
        att = (q @ k.transpose(1, 2)) / (w // heads) ** 0.5
        if mask is not None:
            att = att + mask
        x = x + F.linear(att.softmax(-1) @ v, state[p + "attn.out_proj.weight"], state[p + "attn.out_proj.bias"])
        h = F.layer_norm(x, (w,), state[p + "ln_2.weight"], state[p + "ln_2.bias"])
        h = F.linear(h, state[p + "mlp.c_fc.weight"], state[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), state[p + "mlp.c_proj.weight"], state[p + "mlp.c_proj.bias"])
        i += 1
    return x


def openai_encode_text(state, ids):
    n = ids.shape[1]
    pos = torch.cat([state["positional_embedding"][:20], state["positional_embedding_res"][20:]])  # mask1 / mask2
    x = state["token_embedding.weight"][ids] + pos[:n]
    causal = torch.full((n, n), float("-inf")).triu(1)
    x = _blocks(x, state, "transformer.resblocks.", heads=1, mask=causal)
    x = F.layer_norm(x, (x.shape[-1],), state["ln_final.weight"], state["ln_final.bias"])
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ state["text_projection"]     # EOT = highest id


def openai_encode_image(state, pixels):
    x = F.conv2d(pixels, state["visual.conv1.weight"], stride=state["visual.conv1.weight"].shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["visual.class_embedding"].expand(len(x), 1, -1), x], 1) + state["visual.positional_embedding"]
    x = F.layer_norm(x, (x.shape[-1],), state["visual.ln_pre.weight"], state["visual.ln_pre.bias"])
    x = _blocks(x, state, "visual.transformer.resblocks.", heads=1)
    x = F.layer_norm(x[:, 0], (x.shape[-1],), state["visual.ln_post.weight"], state["visual.ln_post.bias"])
    return x @ state["visual.proj"]


def hf_features(model, ids, pixels):
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids)
        image = model.get_image_features(pixel_values=pixels)
    as_tensor = lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output
    return as_tensor(text), as_tensor(image)


def test_original_layout_round_trip_gives_the_same_outputs(tmp_path):
    model = tiny_clip()
    ids, pixels = inputs(60)         # longer than 20 tokens: the _res table is used
    path = tmp_path / "longclip-tiny.pt"
    lc.save_openai_checkpoint(model, path)
    state = torch.load(path, weights_only=True)
    assert {"positional_embedding", "positional_embedding_res", "visual.proj", "text_projection"} <= set(state)
    assert "transformer.resblocks.1.attn.in_proj_weight" in state and state["visual.proj"].shape == (64, 16)

    text, image = hf_features(model, ids, pixels)
    with torch.no_grad():   # the written file, run by an independent implementation of the original model
        torch.testing.assert_close(openai_encode_text(state, ids), text, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(openai_encode_image(state, pixels), image, rtol=1e-4, atol=1e-5)

    loaded = lc.load_openai_checkpoint(path).eval()
    assert loaded.config.text_config.max_position_embeddings == 248
    assert loaded.config.vision_config.image_size == 32 and loaded.config.projection_dim == 16
    for got, want in zip(hf_features(loaded, ids, pixels), (text, image)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loaded.logit_scale, model.logit_scale)


def test_the_two_position_tables_are_merged_at_row_20(tmp_path):
    state = lc.hf_to_openai(tiny_clip().state_dict())
    state["positional_embedding"][20:] = 99.0        # unused rows of the first table (Long-CLIP's mask1 zeros them)
    state["positional_embedding_res"][:20] = -99.0   # unused rows of the second
    merged = lc.openai_to_hf(state)["text_model.embeddings.position_embedding.weight"]
    assert torch.equal(merged[:20], state["positional_embedding"][:20])
    assert torch.equal(merged[20:], state["positional_embedding_res"][20:])


def test_a_mismatched_checkpoint_lists_every_bad_key(tmp_path):
    state = lc.hf_to_openai(tiny_clip().state_dict())
    del state["ln_final.bias"]
    state["mystery.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    model = CLIPModel(lc.openai_config(state))
    state["token_embedding.weight"] = torch.zeros(VOCAB + 1, 64)
    with pytest.raises(lc.CheckpointMismatchError) as err:
        lc.load_strict(model, lc.openai_to_hf(state), "checkpoint bad.pt")
    message = str(err.value)
    assert "missing (1): text_model.final_layer_norm.bias" in message
    assert "unexpected (1): mystery.weight" in message
    assert "text_model.embeddings.token_embedding.weight: checkpoint (51, 64) vs model (50, 64)" in message
    with pytest.raises(lc.CheckpointMismatchError, match="missing"):
        lc.load_openai_checkpoint(path)


def test_checkpoints_that_would_run_code_are_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"weights": torch.zeros(2), "args": argparse.Namespace(lr=1.0)}, path)   # as training scripts do
    with pytest.raises(ValueError, match="weights_only=True"):
        lc.read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        lc.read_checkpoint(tmp_path / "nowhere.pt")


def test_stretching_keeps_20_positions_and_interpolates_the_rest_four_times():
    table = torch.randn(77, 8)
    long = lc.stretch_positions(table)
    assert long.shape == (248, 8)
    assert torch.equal(long[:20], table[:20])
    torch.testing.assert_close(long[20::4][:57], table[20:])          # every 4th row is an original position
    torch.testing.assert_close(long[22], (table[20] + table[21]) / 2)  # halfway between 20 and 21
    torch.testing.assert_close(long[21], 0.75 * table[20] + 0.25 * table[21])
    torch.testing.assert_close(long[-1], table[76] + 0.75 * (table[76] - table[75]))


def test_a_stretched_clip_reads_short_texts_as_before_and_long_ones_at_all():
    short_model = tiny_clip(positions=77)
    long_model = lc.stretch_clip_model(short_model).eval()
    assert long_model.config.text_config.max_position_embeddings == 248
    ids, pixels = inputs(20)        # within the kept positions: identical features
    for got, want in zip(hf_features(long_model, ids, pixels), hf_features(short_model, ids, pixels)):
        torch.testing.assert_close(got, want)
    long_ids, _ = inputs(200)
    assert torch.isfinite(hf_features(long_model, long_ids, pixels)[0]).all()
