"""One process or many (torchrun / `accelerate launch`), as the training loop and the models' objectives see them:
the process group, a barrier, data loaders sharded per process in an order resumes can repeat, batches moved to
the device, and gathers of features across processes (with and without their gradient)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from artcap_lib.runtime import resolve_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Distributed:
    """One process unless launched by torchrun / `accelerate launch` (both set WORLD_SIZE, RANK, LOCAL_RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(device=torch.device(resolve_device(device)))
    import torch.distributed as tdist
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Distributed(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank,
                       device=torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"))


def barrier(dist: Distributed) -> None:
    """Wait for every process (no-op in one process): after rank 0 writes what the others read next."""
    if dist.enabled:
        import torch.distributed as tdist
        tdist.barrier()


def make_loader(dataset, batch_size: int, dist: Distributed, shuffle: bool, drop_last: bool = False,
                collate_fn=None, seed: int = 0, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader whose order is a function of (seed, epoch) only, so a resumed run sees the batches an
    uninterrupted one would; under DDP each process reads its own shard. `batch_size` is per process."""
    from torch.utils.data import DataLoader, DistributedSampler
    # DistributedSampler also serves one process: it reshuffles per epoch with seed + epoch (fit calls set_epoch)
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=shuffle,
                                 seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, collate_fn=collate_fn,
                      num_workers=num_workers, pin_memory=dist.device.type == "cuda")


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x over processes along dim 0, without gradient; the identity in one process."""
    import torch.distributed as tdist
    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(tdist.get_world_size())]
    tdist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for the gathered tensor (all_reduce) and keeps this
    process's rows: each process's features then get the gradient of the whole global loss. Plain synchronous
    collectives work alike on gloo and NCCL (the functional collectives crashed gloo workers intermittently)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as tdist
        ctx.rank, ctx.world = tdist.get_rank(), tdist.get_world_size()
        return concat_all_gather(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as tdist
        grad = grad.contiguous().clone()
        tdist.all_reduce(grad, op=tdist.ReduceOp.SUM)
        return grad.chunk(ctx.world, dim=0)[ctx.rank]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x (same shape on every process) over processes along dim 0, keeping the gradient path to
    every process's own rows; the identity without torch.distributed. Used for contrastive negatives."""
    import torch.distributed as tdist
    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x.contiguous())
