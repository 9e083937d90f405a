"""fp16 training in the shared loop: on CUDA a GradScaler, elsewhere fp32 with a note; the scaler's path through
`training.fit` (scale, unscale before the norm, skipped overflow steps, its state resumed), run on a CPU with a CPU
GradScaler in place of the CUDA one."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from artcap_lib.retrieval import checkpoint, training


def test_fp16_gets_a_cuda_grad_scaler_and_falls_back_to_fp32_elsewhere():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert training.make_grad_scaler(cpu, "fp16") is None
    used, note = training.precision_used(cpu, "fp16")
    assert used == "fp32" and "need CUDA" in note
    with warnings.catch_warnings():      # built on a machine without CUDA, the scaler warns and disables itself
        warnings.simplefilter("ignore")
        scaler = training.make_grad_scaler(cuda, "fp16")
    assert isinstance(scaler, torch.amp.GradScaler) and scaler._device == "cuda"
    assert training.precision_used(cuda, "fp16") == ("fp16", "")
    for precision in ("auto", "bf16", "fp32"):           # bf16 has fp32's range: nothing to scale
        assert training.make_grad_scaler(cuda, precision) is None
        assert training.precision_used(cpu, precision)[1] == ""


class Line(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([0.5, -0.25]))


def _fit(tmp_path, name, scaler_factory=None, overflow_at=None, crash_at=None, epochs=2, monkeypatch=None):
    """Least squares on 8 fixed points, 4 batches of 2 per epoch, SGD; `overflow_at` makes that call's loss inf,
    `crash_at` raises in that call (a run killed after its last checkpoint)."""
    if scaler_factory is not None:
        monkeypatch.setattr(training, "make_grad_scaler", lambda device, precision: scaler_factory())
    torch.manual_seed(0)
    x = torch.randn(8, 2)
    data = list(zip(x, x @ torch.tensor([1.0, 2.0])))
    calls = {"n": 0}

    def step(model, batch):
        xs, ys = batch
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise RuntimeError("killed")
        loss = ((xs @ model.weight - ys) ** 2).mean()
        return {"loss": loss * float("inf") if calls["n"] == overflow_at else loss}

    model = Line()
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    result = training.fit(model, step, loader, validate=lambda m: {"val_loss": 0.0},
                          make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), make_scheduler=None,
                          config=training.TrainConfig(epochs=epochs, precision="fp16", patience=None,
                                                      validate_first=False),
                          out_dir=tmp_path / name, progress=None)
    return result


def test_the_scaler_path_scales_unscales_skips_overflows_and_resumes(tmp_path, monkeypatch):
    plain = _fit(tmp_path, "plain")                         # a CPU: fp16 falls back, no scaler
    assert "grad_scale" not in plain.history["steps"][0]
    scaled = _fit(tmp_path, "scaled", lambda: torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=1),
                  monkeypatch=monkeypatch)
    # scaling by powers of two and unscaling before the step: the same weights, the true gradient norm logged
    torch.testing.assert_close(scaled.model.weight, plain.model.weight)
    for a, b in zip(scaled.history["steps"], plain.history["steps"]):
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-6)
    assert [s["grad_scale"] for s in scaled.history["steps"][:3]] == [2.0 ** 10, 2.0 ** 11, 2.0 ** 12]

    # an overflowing step is skipped (weights untouched) and the scale halves, as GradScaler does for fp16
    skipped = _fit(tmp_path, "skipped", lambda: torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=100),
                   overflow_at=1, epochs=1, monkeypatch=monkeypatch)
    steps = skipped.history["steps"]
    assert steps[0]["grad_scale"] == 2.0 ** 10 and steps[1]["grad_scale"] == 2.0 ** 9
    reference = Line()
    torch.manual_seed(0)
    x = torch.randn(8, 2)
    y = x @ torch.tensor([1.0, 2.0])
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for i in range(1, 4):                                    # batches 2-4 only: the first one changed nothing
        xs, ys = x[2 * i:2 * i + 2], y[2 * i:2 * i + 2]
        ((xs @ reference.weight - ys) ** 2).mean().backward()
        opt.step()
        opt.zero_grad()
    torch.testing.assert_close(skipped.model.weight, reference.weight)

    # the scaler's state is in the checkpoint, and a run resumed after a kill continues from it
    assert torch.load(tmp_path / "scaled" / checkpoint.CHECKPOINT, weights_only=True)["scaler"]["scale"] == 2.0 ** 18
    growing = lambda: torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=1)   # noqa: E731
    with pytest.raises(RuntimeError, match="killed"):
        _fit(tmp_path, "killed", growing, crash_at=9, epochs=3, monkeypatch=monkeypatch)   # first step of epoch 3
    fresh = lambda: torch.amp.GradScaler("cpu", init_scale=1.0, growth_interval=1)      # noqa: E731
    resumed = _fit(tmp_path, "killed", fresh, epochs=3, monkeypatch=monkeypatch)
    assert resumed.history["steps"][8]["grad_scale"] == 2.0 ** 18   # epoch 3 starts from the saved scale, not 1
