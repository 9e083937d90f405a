"""The training loop shared by every registered retrieval model: model-agnostic, resumable, one GPU or many.

The caller owns everything model-specific: the loss, the optimiser, the schedule, the data and the validation
criterion. This module owns what is the same for every model: mixed precision, gradient accumulation, resume,
early stopping / best-model selection and the history of the curves; `distributed` holds the processes, loaders
and gathers it runs on, `checkpoint` the files it resumes from.

Interface
---------
    from artcap_lib.retrieval import distributed, training

    dist = distributed.setup_distributed("auto")        # torchrun/accelerate launch -> DDP; otherwise one process
    runtime.seed_everything(cfg.seed, dist.rank)
    train_loader = distributed.make_loader(train_set, batch_size, dist, shuffle=True, drop_last=True,
                                        collate_fn=collate, seed=cfg.seed)       # per-process batch size
    result = training.fit(
        model,                                        # nn.Module; fit() moves it to dist.device, wraps it in DDP
        step=lambda model, batch: {"loss": ..., "loss_itc": ...},   # batch already on the device; call model(...)
        train_loader=train_loader,
        validate=lambda model: {"val_loss": ...},     # called every epoch on every process (model unwrapped, eval
                                                      # mode, no grad); rank 0's dict is what counts
        make_optimizer=lambda model: torch.optim.AdamW(model.parameters(), lr=...),
        make_scheduler=lambda opt, total_steps: ...,  # stepped once per optimiser step; or None
        config=training.TrainConfig(epochs=6, monitor="val_loss", mode="min", patience=1),
        out_dir=run_dir / "train",                    # checkpoint.pt, best_model.pt, history.json
        dist=dist,
        fingerprint={"lr": 5e-7, ...},                # saved in the checkpoint; resuming with other values fails
    )
    result.model           # the unwrapped module with the best epoch's weights loaded
    result.history         # {"steps": [...], "epochs": [...], "best_epoch", "best", "stopped_early", ...}

- `step(model, batch)` gets the DDP-wrapped model under torch.distributed: it must reach the trainable weights
  through `model(...)` (forward) so DDP synchronises gradients; put a multi-part loss inside the module's forward.
  It returns a dict of scalar tensors; `"loss"` is back-propagated, every entry is logged.
- Contrastive losses under DDP gather the other processes' features with `distributed.all_gather_with_grad(x)` (identity
  in one process); this process's rows start at rank * batch size in the gathered batch.
- `validate(model)` returns a dict holding `config.monitor` (Long-CLIP: validation loss, mode "min"; BLIP:
  validation mean recall, mode "max"). `mean_losses(model, step, loader, dist)` is the validation loss of a loader.
  A `validate` with a `set_epoch(epoch)` method has it called before each validation (0 = before training), so a
  validation that reshuffles per epoch sees, after a resume, the order an uninterrupted run would.
- Resume: run the same call again after a kill; training continues after the last completed epoch (model,
  optimiser, scheduler, RNG states, history, best value), and a finished run returns at once.
- Gradient accumulation: `config.grad_accum` micro-batches per optimiser step (the loss of each micro-batch is
  divided by it). For contrastive losses it does NOT enlarge the set of negatives, only the gradient's batch.
- Precision: `config.precision` "auto" = bf16 autocast on GPUs that support it, fp32 elsewhere; weights and
  optimiser states stay fp32 (as the Long-CLIP authors' autocast), so bf16 needs no loss scaling. "fp16" is fp16
  autocast with a `torch.amp.GradScaler` (fp16's narrow range lets small gradients underflow to 0 unless the loss is
  scaled up first; the Long-CLIP authors trained this way), on CUDA only: elsewhere it runs fp32 and says so. The
  precision asked for and the one used (with the reason where they differ) are in the history, `precision`.
- History: `history.json` holds per step {epoch, step, lr, loss, ...} and per epoch {epoch, train_<key>
  means, validation entries, lr, seconds}; epoch 0 is the model before training (validation only) when
  `config.validate_first`.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from artcap_lib.files import write_json
from artcap_lib.progress import Bar
from artcap_lib.retrieval import checkpoint
from artcap_lib.retrieval.checkpoint import BEST_MODEL, CHECKPOINT, HISTORY, CheckpointError
from artcap_lib.retrieval.distributed import Distributed, barrier, to_device

StepFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


@dataclass
class TrainConfig:
    epochs: int = 6
    grad_accum: int = 1                  # micro-batches per optimiser step
    precision: str = "auto"              # auto (bf16 where supported) | bf16 | fp16 (+ GradScaler, CUDA) | fp32
    max_grad_norm: float | None = None   # clip the gradient norm; None = no clipping (the norm is logged anyway)
    monitor: str = "val_loss"            # key of validate()'s dict that selects the best epoch
    mode: str = "min"                    # min (a loss) | max (a recall)
    patience: int | None = 1             # stop after this many epochs without improvement; None = never stop early
    validate_first: bool = True          # record epoch 0 (the untrained model) in the history, for the curves
    log_every: int = 1                   # keep every n-th optimiser step in the history


@dataclass
class TrainResult:
    model: nn.Module
    history: dict[str, Any]
    best_epoch: int | None
    best: float | None


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast where the device supports it ("auto" = GPUs with bf16), else a no-op (fp32). "fp16" (scoring
    as the authors scored Long-CLIP) is fp16 autocast on GPUs and fp32 elsewhere: a CPU's fp16 is slow and inexact."""
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    if precision == "fp16":
        return torch.autocast(device_type="cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    if precision == "fp32" or (precision == "auto" and not (device.type == "cuda" and torch.cuda.is_bf16_supported())):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def precision_used(device: torch.device, precision: str) -> tuple[str, str]:
    """(the precision `precision` trains at on `device`, why it is not the one asked for, or "")."""
    if precision == "fp16" and device.type != "cuda":
        return "fp32", ("fp16 autocast and its GradScaler need CUDA: this run trained in fp32 on "
                        f"{device.type} (a GPU run would train in fp16 with loss scaling)")
    if precision == "auto":
        return ("bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"), ""
    return precision, ""


def make_grad_scaler(device: torch.device, precision: str):
    """The loss scaler fp16 training needs (None for every other precision: bf16 has fp32's exponent range, nothing
    underflows). Only CUDA runs fp16 autocast here (`autocast_context`), so only CUDA gets a scaler."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def mean_losses(model: nn.Module, step: StepFn, loader, dist: Distributed, precision: str = "auto",
                per_batch: bool = False) -> dict[str, float]:
    """Batch-size-weighted mean of every entry of step()'s dict over a loader (summed over processes), as
    val_<key>. The contrastive loss of a batch depends on the batch, so use the training batch size here.
    per_batch: every batch counts once whatever its size (a plain mean over batches: the Long-CLIP authors'
    validation, where a short last batch weighs as much as a full one)."""
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        batch = to_device(batch, dist.device)
        with autocast_context(dist.device, precision):
            out = step(model, batch)
        n = 1 if per_batch else _batch_len(batch)
        for key, value in out.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
    keys = sorted(sums)
    totals = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64, device=dist.device)
    if dist.enabled:
        import torch.distributed as tdist
        tdist.all_reduce(totals)
    if totals[-1] == 0:
        raise ValueError("mean_losses: the validation loader yielded no batch (too few items for the batch size?)")
    return {f"val_{k}": float(totals[i] / totals[-1]) for i, k in enumerate(keys)}


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# the loop


def fit(model: nn.Module, step: StepFn, train_loader, validate: Callable[[nn.Module], Mapping[str, float]],
        make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
        make_scheduler: Callable[[torch.optim.Optimizer, int], Any] | None,
        config: TrainConfig, out_dir: str | Path, dist: Distributed | None = None,
        fingerprint: Mapping[str, Any] | None = None, resume: bool = True,
        progress: Callable[[str], None] | None = print) -> TrainResult:
    """Train for config.epochs (fewer on early stop), checkpointing each epoch; see the module docstring."""
    if config.mode not in ("min", "max"):
        raise ValueError(f"TrainConfig.mode must be 'min' or 'max', got {config.mode!r}")
    if len(train_loader) < config.grad_accum:
        raise ValueError(f"the training loader has {len(train_loader)} batches, fewer than grad_accum="
                         f"{config.grad_accum}: lower the batch size or add data")
    dist = dist or Distributed()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress if (progress and dist.is_main) else (lambda _msg: None)
    fingerprint = dict(fingerprint or {})

    model.to(dist.device)
    optimizer = make_optimizer(model)    # before DDP wrapping: the parameters are the same objects
    scaler = make_grad_scaler(dist.device, config.precision)
    used, why = precision_used(dist.device, config.precision)
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
    scheduler = make_scheduler(optimizer, steps_per_epoch * config.epochs) if make_scheduler else None
    history: dict[str, Any] = {"steps": [], "epochs": [], "best_epoch": None, "best": None, "stopped_early": False,
                               "finished": False, "monitor": config.monitor, "mode": config.mode,
                               "world_size": dist.world_size, "steps_per_epoch": steps_per_epoch,
                               "precision": {"asked": config.precision, "used": used, **({"note": why} if why else {})}}
    start_epoch, global_step = 1, 0

    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        ckpt = checkpoint.load_checkpoint(ckpt_path)
        if ckpt.get("fingerprint", {}) != fingerprint:
            raise CheckpointError(f"{ckpt_path}: written by a run with other settings {ckpt.get('fingerprint')} "
                             f"!= {fingerprint}; use another output directory or delete the checkpoint")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        checkpoint.set_rng_state(ckpt["rng"])
        history, start_epoch, global_step = ckpt["history"], ckpt["epoch"] + 1, ckpt["global_step"]
        say(f"resumed from {ckpt_path} after epoch {ckpt['epoch']}")
        del ckpt

    if history["finished"]:
        return _finish(model, out_dir, history, say)
    if why:
        say(why)

    train_model = model
    if dist.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)

    if config.validate_first and start_epoch == 1:
        history["epochs"].append({"epoch": 0, **_validate(model, validate, dist, 0), "lr": _lr(optimizer)})
        say(f"epoch 0 (before training): {_fmt(history['epochs'][-1])}")

    stale = _stale_epochs(history, config)
    for epoch in range(start_epoch, config.epochs + 1):
        if config.patience is not None and stale >= config.patience:
            break
        t0 = time.perf_counter()
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        train_model.train()
        sums: dict[str, float] = {}
        n_batches = len(train_loader)
        optimizer.zero_grad(set_to_none=True)
        bar = Bar(n_batches, f"epoch {epoch}/{config.epochs}", unit="batch", show=progress is not None and dist.is_main,
                  leave=False)
        for i, batch in enumerate(train_loader):
            bar.update()
            batch = to_device(batch, dist.device)
            last_micro = (i + 1) % config.grad_accum == 0 or i + 1 == n_batches
            # inside an accumulation window only the last micro-batch synchronises gradients across processes
            sync = train_model.no_sync() if (dist.enabled and not last_micro) else nullcontext()
            with sync:
                with autocast_context(dist.device, config.precision):
                    out = step(train_model, batch)
                if "loss" not in out:
                    raise KeyError(f"step() must return a dict with 'loss', got keys {sorted(out)}")
                loss = out["loss"] / config.grad_accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            if not last_micro:
                continue
            if scaler is not None:
                scaler.unscale_(optimizer)      # the norm below (and any clipping) is of the true gradient
            max_norm = config.max_grad_norm if config.max_grad_norm is not None else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
            lr = _lr(optimizer)
            scaled = {}
            if scaler is not None:
                scaled = {"grad_scale": float(scaler.get_scale())}
                scaler.step(optimizer)          # skipped when the gradient overflowed (inf/nan), as the authors'
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            global_step += 1
            if global_step % config.log_every == 0:
                history["steps"].append({"epoch": epoch, "step": global_step, "lr": lr, "grad_norm": grad_norm,
                                         **scaled, **{k: float(v.detach()) for k, v in out.items()}})
        bar.update(0, note="validating")
        bar.close()
        # lr: the last rate applied this epoch (a scheduler's value after its final step is never used)
        row = {"epoch": epoch, **{f"train_{k}": v / n_batches for k, v in sums.items()},
               **_validate(model, validate, dist, epoch), "lr": lr, "seconds": time.perf_counter() - t0}
        history["epochs"].append(row)
        if config.monitor not in row:
            raise KeyError(f"validate() returned {sorted(row)}, without the monitored key {config.monitor!r}")
        improved = history["best"] is None or (row[config.monitor] < history["best"] if config.mode == "min"
                                               else row[config.monitor] > history["best"])
        if improved:
            history["best"], history["best_epoch"] = row[config.monitor], epoch
            if dist.is_main:
                checkpoint.save_atomic(model.state_dict(), out_dir / BEST_MODEL)
        stale = 0 if improved else stale + 1
        last_epoch = epoch == config.epochs or (config.patience is not None and stale >= config.patience)
        history["stopped_early"] = epoch < config.epochs and last_epoch
        history["finished"] = last_epoch
        say(f"epoch {epoch}/{config.epochs}: {_fmt(row)}{' (best)' if improved else ''}")
        if dist.is_main:
            checkpoint.save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                                "scaler": scaler.state_dict() if scaler is not None else None,
                                "rng": checkpoint.rng_state(), "epoch": epoch, "global_step": global_step,
                                "history": history, "fingerprint": fingerprint}, ckpt_path)
            write_json(out_dir / HISTORY, history)
        barrier(dist)
        if last_epoch:
            break
    history["finished"] = True
    if dist.is_main:
        write_json(out_dir / HISTORY, history)
    return _finish(model, out_dir, history, say)


def _finish(model: nn.Module, out_dir: Path, history: dict, say) -> TrainResult:
    best_path = out_dir / BEST_MODEL
    if not best_path.exists() and history.get("best_epoch") not in (None, history["epochs"][-1]["epoch"]):
        raise CheckpointError(f"{out_dir}: this training finished and its best epoch's weights were pruned (the "
                              "finished model was saved beside it); delete the folder to train it again")
    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
        say(f"best epoch {history['best_epoch']}: {history['monitor']} = {history['best']:.4f}")
    return TrainResult(model=model, history=history, best_epoch=history["best_epoch"], best=history["best"])


def _validate(model: nn.Module, validate, dist: Distributed, epoch: int) -> dict[str, float]:
    if hasattr(validate, "set_epoch"):  # a validation that reshuffles per epoch (as a sampler does): resumable
        validate.set_epoch(epoch)
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in validate(model).items()}
    if dist.enabled:    # every process must take the same early-stopping decision: rank 0's numbers decide
        import torch.distributed as tdist
        box = [metrics]
        tdist.broadcast_object_list(box, src=0)
        metrics = box[0]
    return metrics


def _stale_epochs(history: dict, config: TrainConfig) -> int:
    """Epochs since the best one (after a resume the early-stopping counter is rebuilt from the history)."""
    trained = [row["epoch"] for row in history["epochs"] if row["epoch"] > 0]
    if history["best_epoch"] is None or not trained:
        return 0
    return max(trained) - history["best_epoch"]


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _fmt(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float))
