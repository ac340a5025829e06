"""Several processes through PyTorch's own launcher: `torchrun --nproc_per_node=N ...` sets RANK,
LOCAL_RANK and WORLD_SIZE; the process group (gloo on CPU, nccl on CUDA) starts on first use."""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that saves versions and logs to MLflow."""
    return rank() == 0


def training_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA each process trains on its own GPU (LOCAL_RANK)."""
    if world_size() > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def process_group(device: torch.device) -> bool:
    """Start the process group if torchrun asked for several processes; whether training is distributed."""
    if world_size() <= 1:
        return False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return True


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over every process (one collective); the values themselves in one process."""
    if world_size() > 1 and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
