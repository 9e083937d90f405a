"""The shared training loop: accumulation, early stopping, resume after a real SIGKILL, DDP with gathered features."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from artcap_lib.retrieval import checkpoint, distributed, training
from artcap_lib.runtime import seed_everything

DIM = 6


class PairDataset(torch.utils.data.Dataset):
    """Paired vectors (x, y = A x + noise): enough structure for a contrastive toy."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, DIM, generator=g)
        self.y = self.x @ torch.randn(DIM, DIM, generator=g) + 0.1 * torch.randn(n, DIM, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class TwoTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(DIM, 4)
        self.b = nn.Linear(DIM, 4)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, y):
        return self.a(x), self.b(y)


def contrastive_step(model, batch):
    fa, fb = model(batch["x"], batch["y"])
    fa, fb = distributed.all_gather_with_grad(fa), distributed.all_gather_with_grad(fb)
    logits = model_scale(model) * fa @ fb.T
    target = torch.arange(len(fa))
    loss = (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2
    return {"loss": loss}


def model_scale(model):
    return training.unwrap(model).logit_scale.exp()


def mse_step(model, batch):
    fa, fb = model(batch["x"], batch["y"])
    return {"loss": ((fa - fb) ** 2).mean(), "norm": fa.norm(dim=1).mean()}


def run_fit(out_dir, step=mse_step, batch_size=8, epochs=3, shuffle=True, dist=None, **config):
    dist = dist or distributed.Distributed()
    seed_everything(0, dist.rank)
    model = TwoTower()
    loader = distributed.make_loader(PairDataset(32), batch_size, dist, shuffle=shuffle, drop_last=True, seed=0)
    val_loader = distributed.make_loader(PairDataset(16, seed=1), 8, dist, shuffle=False)
    return training.fit(
        model, step, loader,
        validate=lambda m: training.mean_losses(m, step, val_loader, dist),
        make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
        make_scheduler=lambda opt, total: torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, total_iters=total),
        config=training.TrainConfig(epochs=epochs, patience=None, **config), out_dir=out_dir, dist=dist,
        progress=None)


def test_fit_learns_logs_and_keeps_the_best_epoch(tmp_path):
    result = run_fit(tmp_path)
    history = checkpoint.read_history(tmp_path)
    assert [row["epoch"] for row in history["epochs"]] == [0, 1, 2, 3]
    losses = [row["val_loss"] for row in history["epochs"]]
    assert losses[-1] < losses[0]
    assert len(history["steps"]) == 3 * 4 and history["steps"][0]["lr"] > history["steps"][-1]["lr"]
    assert {"train_loss", "train_norm", "val_norm", "seconds"} <= set(history["epochs"][1])
    assert history["best_epoch"] == min(range(1, 4), key=lambda e: losses[e]) and history["finished"]
    # the returned model carries the best epoch's weights
    saved = torch.load(tmp_path / checkpoint.BEST_MODEL, weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in result.model.state_dict().items())


def test_gradient_accumulation_matches_the_large_batch(tmp_path):
    # a mean loss over 2 micro-batches of 4 is the mean over the batch of 8 (not so for contrastive losses)
    big = run_fit(tmp_path / "big", batch_size=8, shuffle=False, epochs=1)
    accumulated = run_fit(tmp_path / "acc", batch_size=4, grad_accum=2, shuffle=False, epochs=1)
    for key, value in big.model.state_dict().items():
        torch.testing.assert_close(accumulated.model.state_dict()[key], value)


def test_early_stopping_stops_at_the_first_epoch_without_improvement(tmp_path):
    values = iter([5.0, 3.0, 2.0, 2.5, 1.0, 0.5])     # epoch 0, 1, 2, 3 (worse: stop), never 4/5
    model = TwoTower()
    loader = distributed.make_loader(PairDataset(16), 8, distributed.Distributed(), shuffle=True, drop_last=True)
    result = training.fit(model, mse_step, loader, validate=lambda m: {"val_loss": next(values)},
                          make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.01), make_scheduler=None,
                          config=training.TrainConfig(epochs=6, patience=1), out_dir=tmp_path, progress=None)
    assert [row["epoch"] for row in result.history["epochs"]] == [0, 1, 2, 3]
    assert result.best_epoch == 2 and result.best == 2.0 and result.history["stopped_early"]


KILLED_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import torch
import test_training as t
calls = {{"n": 0}}
def step(model, batch):
    calls["n"] += torch.is_grad_enabled()      # count training batches, not validation ones
    if calls["n"] == 4 + 2:          # epoch 2, second batch: the epoch-1 checkpoint exists, epoch 2 is half done
        os.kill(os.getpid(), signal.SIGKILL)
    return t.mse_step(model, batch)
t.run_fit({out!r}, step=step)
"""


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path):
    script = KILLED_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "killed"))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = torch.load(tmp_path / "killed" / checkpoint.CHECKPOINT, weights_only=True)   # plain tensors and values
    assert ckpt["epoch"] == 1 and not ckpt["history"]["finished"]

    resumed = run_fit(tmp_path / "killed")
    straight = run_fit(tmp_path / "straight")
    assert resumed.history["epochs"][-1]["epoch"] == 3
    assert [r["loss"] for r in resumed.history["steps"]] == [r["loss"] for r in straight.history["steps"]]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    # a finished run returns at once, and a checkpoint from other settings is refused
    again = run_fit(tmp_path / "killed")
    assert again.history == resumed.history
    with pytest.raises(ValueError, match="other settings"):
        training.fit(TwoTower(), mse_step, distributed.make_loader(PairDataset(8), 4, distributed.Distributed(), True),
                     validate=lambda m: {"val_loss": 0.0}, make_optimizer=lambda m: torch.optim.SGD(m.parameters(), 0.1),
                     make_scheduler=None, config=training.TrainConfig(), out_dir=tmp_path / "killed",
                     fingerprint={"lr": 1.0}, progress=None)


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = distributed.setup_distributed("cpu")
    # per-process batch 4 without shuffling: the two shards of each step are the single process's batch of 8
    run_fit(out_dir, step=contrastive_step, batch_size=4, shuffle=False, epochs=2, dist=dist)
    import torch.distributed as tdist
    tdist.destroy_process_group()


def test_ddp_with_gathered_features_equals_one_process_with_the_whole_batch(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp")), nprocs=2)
    single = run_fit(tmp_path / "single", step=contrastive_step, batch_size=8, shuffle=False, epochs=2)
    assert single.history["finished"]
    last = {name: torch.load(tmp_path / name / checkpoint.CHECKPOINT, weights_only=True)["model"]
            for name in ("ddp", "single")}
    for key, value in last["single"].items():
        torch.testing.assert_close(last["ddp"][key], value, rtol=1e-5, atol=1e-6)
    assert checkpoint.read_history(tmp_path / "ddp")["world_size"] == 2


class _Payload:
    """What a hostile run directory could plant: unpickling it would run code (here: create a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("planted", ["payload", "not a checkpoint", "garbage bytes"])
def test_a_planted_checkpoint_is_refused_and_never_run(tmp_path, planted):
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "the payload ran"
    if planted == "payload":
        torch.save({"model": _Payload(marker), "optimizer": {}, "rng": {}, "epoch": 1, "history": {}},
                   out / checkpoint.CHECKPOINT)
    elif planted == "not a checkpoint":
        torch.save({"weights": torch.zeros(2)}, out / checkpoint.CHECKPOINT)
    else:
        (out / checkpoint.CHECKPOINT).write_bytes(b"\x80\x04garbage")
    with pytest.raises(checkpoint.CheckpointError, match="refused.*nothing was loaded"):
        run_fit(out)
    assert not marker.exists()


def test_scoring_precisions_follow_the_device():
    """fp16 (the authors' Long-CLIP scoring) is fp16 autocast on GPUs only; a CPU scores in fp32."""
    cpu = torch.device("cpu")
    for precision in ("fp16", "fp32", "auto"):
        with training.autocast_context(cpu, precision):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with training.autocast_context(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be"):
        training.autocast_context(cpu, "fp8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_scoring_on_cuda():
    with training.autocast_context(torch.device("cuda"), "fp16"):
        assert (torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")).dtype == torch.float16
