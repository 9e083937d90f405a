"""A third retrieval model in one module, as a new model would be added: a linear two-tower model (4x4-pixel image
features, hashed bag-of-words text features, one linear map each, InfoNCE on the shared loop). Registered by the
tests with one `registry.MODELS` line, it runs through the same Experiment-2 runner as BLIP and Long-CLIP; its
profile section is twotower_settings.Settings.

TWOTOWER_LOG, when set, names a file where `score` appends "<rank> <start> <end>" (the torchrun test)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.protocol import BenchStep, FineTuneDirs, ScoreKind, TrainingData

from twotower_settings import POCKET, Settings

IMAGE_DIM, TEXT_DIM, DIM = 48, 64, 16


def image_features(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        small = img.convert("RGB").resize((4, 4), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0)


def text_features(text: str, max_words: int | None = None) -> torch.Tensor:
    """Hashed bag of words (md5, not Python's salted hash: the same features in every process)."""
    out = torch.zeros(TEXT_DIM)
    for word in re.findall(r"[a-z]+", text.lower())[:max_words]:
        out[int(hashlib.md5(word.encode()).hexdigest(), 16) % TEXT_DIM] += 1.0
    return out / max(1.0, float(out.sum()))


class Towers(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.image = nn.Linear(IMAGE_DIM, DIM)
        self.text = nn.Linear(TEXT_DIM, DIM)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, images, texts):
        """Symmetric InfoNCE over the (all-gathered) batch, as Long-CLIP's objective."""
        image = nn.functional.normalize(self.image(images), dim=-1)
        text = nn.functional.normalize(self.text(texts), dim=-1)
        all_image, all_text = distributed.all_gather_with_grad(image), distributed.all_gather_with_grad(text)
        import torch.distributed as tdist
        rank = tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0
        targets = torch.arange(len(image)) + rank * len(image)
        scale = self.logit_scale.exp()
        loss = (nn.functional.cross_entropy(scale * image @ all_text.T, targets)
                + nn.functional.cross_entropy(scale * text @ all_image.T, targets)) / 2
        return {"loss": loss}


def _save(model: Towers, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(model.state_dict(), tmp / "weights.pt")
    (tmp / "config.json").write_text(json.dumps({"image_dim": IMAGE_DIM, "text_dim": TEXT_DIM, "dim": DIM}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _load(folder: Path) -> Towers:
    model = Towers()
    model.load_state_dict(torch.load(Path(folder) / "weights.pt", weights_only=True))
    return model.eval()


def _train(model: Towers, s: Settings, data: TrainingData, train_ids, val_ids, dirs: FineTuneDirs, dist, seed,
           progress):
    def pairs(ids):
        return torch.utils.data.TensorDataset(torch.stack([image_features(data.images[i]) for i in ids]),
                                              torch.stack([text_features(data.captions[i], s.max_words) for i in ids]))

    train_loader = distributed.make_loader(pairs(train_ids), s.batch_size, dist, shuffle=True, drop_last=True, seed=seed)
    val_loader = distributed.make_loader(pairs(val_ids), s.batch_size, dist, shuffle=False)

    def step(m, batch):
        return m(*batch)

    result = training.fit(
        model, step, train_loader, validate=lambda m: training.mean_losses(m, step, val_loader, dist, "fp32"),
        make_optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=s.lr), make_scheduler=None,
        config=training.TrainConfig(epochs=s.epochs, precision="fp32", monitor="val_loss", mode="min", patience=None),
        out_dir=dirs.training, dist=dist, fingerprint={"lr": s.lr, "train": list(train_ids)}, progress=progress)
    if dist.is_main:
        _save(result.model, dirs.model)


class TwoTower:
    name = "twotower"
    title = "two-tower"
    pocket = POCKET
    bench_defaults = {"source": "pocket", "batch_size": 8, "tokens": 12}
    settings_ = Settings()

    def settings(self, cfg):
        # the profile's section where the registry line names Settings (the test of a model with settings), else
        # its defaults (the tests that register the model after the profile class is built)
        return getattr(cfg, self.name, self.settings_)

    def score_kinds(self, cfg):
        return [ScoreKind("dot", "dot product"), ScoreKind("cosine", "cosine")]

    def pretrain_pocket(self, cfg, pool: TrainingData, dirs: FineTuneDirs, dist, progress) -> None:
        ids = list(pool.train_ids)
        n_val = max(8, len(ids) // 4)
        _train(Towers(cfg.seed), self.settings_, pool, ids[:-n_val], ids[-n_val:], dirs, dist, cfg.seed, progress)

    def fine_tune(self, cfg, base: str, data: TrainingData, dirs: FineTuneDirs, dist, progress):
        _train(_load(Path(base)), self.settings_, data, data.train_ids, data.val_ids, dirs, dist, cfg.seed, progress)
        return {"settings": {"lr": self.settings_.lr, "epochs": self.settings_.epochs}}

    def load(self, cfg, base: str, fine_tuned: Path | None, device):
        return _load(Path(fine_tuned or base))

    def score(self, cfg, loaded, queries, images, device):
        start = time.time()
        with torch.no_grad():
            image = loaded.image(torch.stack([image_features(p) for p in images]))
            out = {}
            for query_set, texts in queries.items():
                text = loaded.text(torch.stack([text_features(t, self.settings_.max_words) for t in texts]))
                cosine = nn.functional.normalize(text, dim=-1) @ nn.functional.normalize(image, dim=-1).T
                out[query_set] = {"dot": (text @ image.T).numpy(), "cosine": cosine.numpy()}
        if os.environ.get("TWOTOWER_LOG"):
            time.sleep(1.0)      # long enough that a process not waiting at the barrier would return before this ends
            with open(os.environ["TWOTOWER_LOG"], "a") as log:
                log.write(f"{os.environ.get('RANK', '0')} {start} {time.time()}\n")
        return out

    def tokenizer(self, cfg, loaded):
        return str.split

    def offline_tokenizer(self, cfg):
        return str.split

    def truncation(self, cfg, tokenizer, training_captions, queries):
        limit = self.settings_.max_words

        def stats(captions):
            lengths = [len(tokenizer(c)) for c in captions.values()]
            return {"captions": len(lengths), "cut": sum(n > limit for n in lengths) / len(lengths)}
        return {"training": {k: stats(v) for k, v in training_captions.items()},
                "queries": {k: stats(v) for k, v in queries.items()}, "limits": {"max_words": limit}}

    def bench_step(self, source, batch_size, tokens, device, precision, options):
        model = Towers()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        images, texts = torch.rand(batch_size, IMAGE_DIM), torch.rand(batch_size, TEXT_DIM)

        def step(_i):
            loss = model(images, texts)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            return loss
        return BenchStep(step, "two-tower (untrained)", 4, sum(p.numel() for p in model.parameters()))
