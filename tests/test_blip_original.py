"""BLIP's original checkpoint (`model_large_retrieval_coco.pth`, BLIP's own layout) -> transformers + the objective.

The replica is a state_dict written with BLIP's own key names and shapes (standins.replicas.original_blip_state);
the oracle is BLIP's forward pass written here in plain torch over that file's raw tensors (timm ViT with fused
qkv, BERT with cross-attention, projections, ITM head on the [ENC] output), not the converter's mapping.
"""
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import torch.nn.functional as F

from artcap_lib.retrieval.blip import model as blip
from artcap_lib.retrieval.blip import original
from artcap_lib.standins.replicas import build_blip_original

SIZES = dict(image_size=32, patch=16, vision_width=128, vision_layers=2, text_width=128, text_layers=2, queue=16)


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    torch.set_num_threads(1)
    path = build_blip_original(tmp_path_factory.mktemp("original") / "model_large_retrieval_coco.pth", **SIZES)
    return path, torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def converted(replica, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "blip"
    lines = []
    record = original.convert(replica[0], out, progress=lines.append)
    return out, record, lines


# ---- BLIP's formulas over the raw tensors ----------------------------------------------------------------------

def _ln(x, sd, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps)


def _lin(x, sd, prefix):
    return x @ sd[f"{prefix}.weight"].T + sd[f"{prefix}.bias"]


def _heads(x, n):
    b, length, width = x.shape
    return x.view(b, length, n, width // n).transpose(1, 2)


def vit_forward(sd, pixels, prefix="visual_encoder"):
    """models/vit.py: patches + cls + positions, pre-norm blocks (fused qkv), final LayerNorm (eps 1e-6)."""
    p = {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")}
    w = p["patch_embed.proj.weight"]
    x = F.conv2d(pixels, w, p["patch_embed.proj.bias"], stride=w.shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([p["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + p["pos_embed"]
    width = x.shape[-1]
    n_heads = width // 64
    for i in range(len({k.split(".")[1] for k in p if k.startswith("blocks.")})):
        b = f"blocks.{i}"
        h = _ln(x, p, f"{b}.norm1", 1e-6)
        qkv = _lin(h, p, f"{b}.attn.qkv").view(x.shape[0], x.shape[1], 3, n_heads, width // n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (width // n_heads) ** -0.5).softmax(-1)
        x = x + _lin((attn @ v).transpose(1, 2).reshape(x.shape), p, f"{b}.attn.proj")
        h = _ln(x, p, f"{b}.norm2", 1e-6)
        x = x + _lin(F.gelu(_lin(h, p, f"{b}.mlp.fc1")), p, f"{b}.mlp.fc2")
    return _ln(x, p, "norm", 1e-6)


def _bert_attention(sd, prefix, hidden, context, mask):
    n = hidden.shape[-1] // 64
    q = _heads(_lin(hidden, sd, f"{prefix}.self.query"), n)
    k = _heads(_lin(context, sd, f"{prefix}.self.key"), n)
    v = _heads(_lin(context, sd, f"{prefix}.self.value"), n)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + (1.0 - mask[:, None, None, :].float()) * -10000.0
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(hidden.shape)
    return _ln(_lin(out, sd, f"{prefix}.output.dense") + hidden, sd, f"{prefix}.output.LayerNorm", 1e-12)


def bert_forward(sd, ids, mask, image_embeds=None, prefix="text_encoder"):
    """models/med.py: word + position embeddings (no token types), post-norm layers; mode 'multimodal' adds the
    cross-attention to the image patches after each self-attention."""
    p = {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")}
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:ids.shape[1]]
    x = _ln(x, p, "embeddings.LayerNorm", 1e-12)
    for i in range(len({k.split(".")[2] for k in p if k.startswith("encoder.layer.")})):
        layer = f"encoder.layer.{i}"
        x = _bert_attention(p, f"{layer}.attention", x, x, mask)
        if image_embeds is not None:
            image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long)
            x = _bert_attention(p, f"{layer}.crossattention", x, image_embeds, image_mask)
        h = F.gelu(_lin(x, p, f"{layer}.intermediate.dense"))
        x = _ln(_lin(h, p, f"{layer}.output.dense") + x, p, f"{layer}.output.LayerNorm", 1e-12)
    return x


def test_converted_model_scores_itc_and_itm_as_blips_formulas_on_the_raw_tensors(replica, converted):
    _, sd = replica
    model, tokenizer, _, _ = blip.load_blip(converted[0])            # strict: every weight from the file
    model.eval()
    texts = ["a portrait of a woman in a red dress", "boats in a harbour", "a still life with fruit"]
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text_feat, ids, mask = blip.encode_texts(model, tokenizer, texts, "cpu", max_tokens=35)
    image_feat, embeds = blip.encode_images(model, [pixels], "cpu", keep_embeds=True)
    enc = blip.enc_token_id(tokenizer, model.config.text_config)
    assert enc == 30523                                               # BLIP's [ENC]: BERT uncased + [DEC] + [ENC]
    enc_ids = ids.clone()
    enc_ids[:, 0] = enc
    pairs_t, pairs_i = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 0, 1])
    itm = blip.itm_head_logits(model, enc_ids[pairs_t], mask[pairs_t], embeds[pairs_i])
    with torch.no_grad():
        ref_embeds = vit_forward(sd, pixels)
        ref_image = F.normalize(_lin(ref_embeds[:, 0], sd, "vision_proj"), dim=-1)
        ref_text = F.normalize(_lin(bert_forward(sd, ids, mask)[:, 0], sd, "text_proj"), dim=-1)
        ref_itm = _lin(bert_forward(sd, enc_ids[pairs_t], mask[pairs_t], ref_embeds[pairs_i])[:, 0], sd, "itm_head")
    torch.testing.assert_close(embeds, ref_embeds, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(blip.itc_scores(text_feat, image_feat), ref_text @ ref_image.T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(itm, ref_itm, rtol=1e-4, atol=1e-5)
    assert model.config.vision_config.layer_norm_eps == 1e-6         # BLIP's ViT, not the hub conversion's 1e-5


def test_conversion_records_the_file_and_what_it_held(replica, converted):
    path, sd = replica
    out, record, lines = converted
    assert record["sha256"] == original.local_file(str(path))[1] and record["size"] == path.stat().st_size
    held = record["held"]
    assert held["temp"] == pytest.approx(0.0412) and held["momentum_encoders"] == [
        "vision_model_m", "text_encoder_m", "vision_proj_m", "text_proj_m"]
    assert held["queues"]["image_queue"] == [256, 16] and record["dropped"] == [] and record["missing"] == []
    assert json.loads((out / original.RECORD).read_text()) == record
    assert any("momentum encoders vision_model_m" in line for line in lines)
    extras = original.read_extras(out)
    assert float(extras["temp"]) == pytest.approx(0.0412) and torch.equal(extras["queue_ptr"], sd["ptr_queue"])
    torch.testing.assert_close(extras["vision_model_m.encoder.layers.1.self_attn.qkv.weight"],
                               sd["visual_encoder_m.blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(extras["text_encoder_m.encoder.layer.0.crossattention.self.key.weight"],
                               sd["text_encoder_m.encoder.layer.0.crossattention.self.key.weight"])


def test_other_image_sizes_interpolate_the_position_table_as_upstream(replica, tmp_path):
    path, sd = replica
    record = original.convert(path, tmp_path / "48px", image_size=48, progress=None)
    assert ["visual_encoder.pos_embed", 2, 3] in record["interpolated"]
    model, _, _, _ = blip.load_blip(tmp_path / "48px")
    table = model.vision_model.embeddings.position_embedding.detach()
    assert table.shape == (1, 10, 128)
    torch.testing.assert_close(table[:, :1], sd["visual_encoder.pos_embed"][:, :1])     # class position kept
    grid = sd["visual_encoder.pos_embed"][:, 1:].reshape(1, 2, 2, 128).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(3, 3), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(table[:, 1:], expected.reshape(1, 9, 128))
    assert original.read_extras(tmp_path / "48px")["vision_model_m.embeddings.position_embedding"].shape == (1, 10, 128)


def test_objective_takes_temp_momentum_encoders_and_queues_and_drops_other_shapes(replica, converted):
    _, sd = replica
    model, tokenizer, _, _ = blip.load_blip(converted[0])
    extras = original.read_extras(converted[0])
    obj = blip.BlipRetrievalObjective(model, blip.enc_token_id(tokenizer), queue_size=16)
    taken = obj.load_extras(extras)
    assert taken["dropped"] == [] and set(taken["used"]) == {"temp", "vision_model_m", "vision_proj_m",
                                                             "text_encoder_m", "text_proj_m", "image_queue",
                                                             "text_queue", "idx_queue", "queue_ptr"}
    assert float(obj.temp.detach()) == pytest.approx(0.0412)
    assert torch.equal(obj.image_queue, sd["image_queue"]) and torch.equal(obj.idx_queue, sd["idx_queue"])
    assert int(obj.queue_ptr) == int(sd["ptr_queue"])
    torch.testing.assert_close(obj.vision_proj_m.weight, sd["vision_proj_m.weight"])
    assert not torch.equal(obj.vision_proj_m.weight, obj.model.vision_proj.weight)   # not a copy of the network
    assert not any(p.requires_grad for p in obj.text_encoder_m.parameters())
    # blip.queue_size other than the file's: the queues (and their pointer) are dropped, as load_checkpoint drops
    # misshaped keys; the temperature and momentum encoders are still taken
    other = blip.BlipRetrievalObjective(model, blip.enc_token_id(tokenizer), queue_size=24)
    fresh = other.image_queue.clone()
    taken = other.load_extras(extras)
    assert "image_queue" not in taken["used"] and "temp" in taken["used"] and "vision_model_m" in taken["used"]
    assert any(d.startswith("image_queue: checkpoint (256, 16) vs objective (256, 24)") for d in taken["dropped"])
    assert torch.equal(other.image_queue, fresh) and int(other.queue_ptr) == 0
    assert (other.idx_queue == -100).all()


def test_a_fine_tune_from_the_converted_model_starts_from_the_files_state(replica, converted, tmp_path):
    """train_blip on the converted directory: the objective's queues, temperature and momentum encoders at the end
    of one epoch are the file's moved by exactly the steps taken (lr ~0 keeps the network where it was)."""
    from artcap_lib.retrieval.blip.settings import BlipConfig
    from artcap_lib.data.artpedia import human_caption
    from artcap_lib.data.demo import DemoSizes, generate_collection
    from artcap_lib.retrieval import checkpoint
    from artcap_lib.retrieval.blip.recipe import train_blip
    from artcap_lib.retrieval.protocol import FineTuneDirs
    _, sd = replica
    col = generate_collection(tmp_path / "col", DemoSizes(train=8, val=4, test=4, pretrain=0), image_size=32)
    artworks = json.loads(col["artworks"].read_text())
    ids = {s: sorted(i for i, e in artworks.items() if e["split"] == s) for s in ("train", "val")}
    files = {i: tmp_path / "col" / e["file_path"] for i, e in artworks.items()}
    captions = {i: human_caption(e) for i, e in artworks.items()}
    bcfg = BlipConfig(batch_size=4, queue_size=16, num_workers=0, grad_checkpointing=False, precision="fp32",
                      k_test=3, eval_batch_size=8, drop_path=0.0, text_dropout=0.0)
    messages = []
    train_blip(converted[0], FineTuneDirs(tmp_path / "model", tmp_path / "training"), ids["train"], ids["val"],
               captions, files, bcfg, epochs=1, lr=1e-20, progress=messages.append)
    assert any(m.startswith(f"objective initialised from {original.EXTRAS}: temp, vision_model_m") for m in messages)
    state = checkpoint.load_checkpoint(tmp_path / "training" / "checkpoint.pt")["model"]
    steps = 2                                                        # 8 images, batch 4
    assert float(state["temp"]) == pytest.approx(0.0412, abs=1e-6)
    ptr = int(sd["ptr_queue"])
    assert int(state["queue_ptr"]) == ptr + 4 * steps
    written = list(range(ptr, ptr + 4 * steps))
    untouched = [i for i in range(16) if i not in written]
    assert torch.equal(state["idx_queue"][0, untouched], sd["idx_queue"][0, untouched])   # the file's ids stay
    assert sorted(state["idx_queue"][0, written].tolist()) == [0, 1, 2, 3, 4, 5, 6, 7]
    torch.testing.assert_close(state["image_queue"][:, untouched], sd["image_queue"][:, untouched])
    decay = 0.995 ** steps                                           # theta_m <- 0.995 theta_m + 0.005 theta
    expected = decay * sd["vision_proj_m.weight"] + (1 - decay) * sd["vision_proj.weight"]
    torch.testing.assert_close(state["vision_proj_m.weight"], expected, rtol=1e-5, atol=1e-6)


class _Config:
    """Stands for the non-tensor objects a training script pickles beside the weights."""

    def __setstate__(self, state):
        raise AssertionError("the checkpoint's pickled class code ran")


def test_a_file_with_other_pickled_objects_loads_without_running_their_code(replica, tmp_path):
    _, sd = replica
    path = tmp_path / "with_config.pth"
    config = _Config()
    config.__dict__["vit"] = "large"
    torch.save({"model": sd, "config": config, "epoch": 5}, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)                          # plain weights_only refuses it
    state = original.read_state(path)                                # _Config.__setstate__ would raise
    assert torch.equal(state["visual_encoder.cls_token"], sd["visual_encoder.cls_token"])
    torch.save({"state_dict": sd}, tmp_path / "other.pth")
    with pytest.raises(original.OriginalCheckpointError, match="'model'"):
        original.read_state(tmp_path / "other.pth")


def test_the_url_is_fetched_resumably_with_its_size_and_sha256(replica, tmp_path, monkeypatch):
    """A server that drops the connection half-way, then honours Range: the second call resumes, the third needs
    no network; resolve() converts the downloaded file once into the cache."""
    import hashlib

    from artcap_lib import fetch
    data = replica[0].read_bytes()
    served = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
            served.append(start)
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if len(served) > 1 else body[:len(body) // 3])     # the first one breaks off
            self.wfile.flush()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/BLIP/models/model_large_retrieval_coco.pth"
    monkeypatch.setenv("ARTCAP_BLIP_CACHE", str(tmp_path / "cache"))
    try:
        with pytest.raises(fetch.FetchError, match="run again to resume"):
            original.local_file(url, progress=None)
        path, digest = original.local_file(url, progress=None)
        assert served[1] > 0 and path.read_bytes() == data
        assert digest == hashlib.sha256(data).hexdigest()
        record = json.loads(fetch.record_path(path).read_text())
        assert record["size"] == len(data) and record["url"] == url and record["sha256"] == digest
        out = original.resolve(url, progress=None)
    finally:
        server.shutdown()
    assert original.local_file(url, progress=None) == (path, digest) and len(served) == 2     # no third request
    assert original.read_record(out)["source"] == url and original.resolve(url, progress=None) == out
    assert original.resolve("Salesforce/blip-itm-large-coco") == "Salesforce/blip-itm-large-coco"
