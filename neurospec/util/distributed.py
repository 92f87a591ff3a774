"""Rank helpers over torch.distributed: the same code runs alone or under ``torchrun``.

    from neurospec.util.distributed import Ranks
    ranks = Ranks.from_environment(device)       # joins the process group torchrun set up (gloo on CPU, NCCL on GPU)
    mine = ranks.owns(batch_number)              # rows are dealt out round-robin by batch number
    parts = ranks.gather(partial)                # every rank's tensor, in rank order (alone: [partial])

Nothing here reduces with a sum in a rank-dependent order: :meth:`Ranks.gather` hands every rank all
partial results in rank order, and callers add them in global batch order, so K processes produce
bit for bit the statistics of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``size`` processes (``size == 1``: no process group)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def from_environment(cls, device: torch.device | str | None = None) -> "Ranks":
        """Join the process group ``torchrun`` described in the environment (WORLD_SIZE > 1), once."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1 or not dist.is_available():
            return cls()
        on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, batch_number: int) -> bool:
        """Batches are dealt round-robin: batch ``b`` belongs to rank ``b % size``."""
        return batch_number % self.size == self.rank

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``tensor`` of every rank, in rank order; all ranks must pass the same shape and dtype."""
        if self.size == 1:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        dist.all_gather(parts, tensor.contiguous())
        return parts

    def gather_sizes(self, size: int, device: torch.device) -> list[int]:
        """One integer from every rank (e.g. how many rows it will send next), in rank order."""
        return [int(t) for t in self.gather(torch.tensor([size], dtype=torch.int64, device=device))]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()
