"""Section 7 (continued). Data-parallel training under torchrun: one process per device, rank 0 writes.

`torchrun --nproc_per_node N pico-llm.py ...` starts N processes. Each joins the process
group torchrun describes in its environment, trains on its own device (NCCL between GPUs,
gloo between CPU processes), and draws the same global batch from the shared seed, keeping
only its slice of it (train_model does this); DistributedDataParallel averages the gradients.
Only rank 0 prints progress and writes artefacts and checkpoints. Several machines are
torchrun's `--nnodes` and `--rdzv_endpoint`, with nothing else to change.

A process that fails ends the run: torchrun stops the others at once, and without torchrun
the others give up at the process group's timeout instead of waiting for ever.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from .presets import InputError

BACKENDS = ("auto", "nccl", "gloo")
DEFAULT_TIMEOUT_S = 600.0  # how long a process waits for the others at a collective before giving up


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets RANK and WORLD_SIZE) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launched_processes() -> int:
    """How many processes the launcher started (1 without one), known before the group is joined."""
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def check_backend(backend: str) -> str:
    """The process-group backend to use: auto is NCCL with CUDA GPUs, gloo without."""
    if backend not in BACKENDS:
        raise InputError(f"--dist_backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise InputError("--dist_backend nccl needs CUDA GPUs, and this machine has none: use --dist_backend gloo "
                         "(or auto) to train data-parallel on CPU processes.")
    return backend


def start_data_parallel(backend: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> torch.device:
    """Join the process group torchrun set up; the device this process trains on (cuda:LOCAL_RANK with
    NCCL, the CPU with gloo)."""
    backend = check_backend(backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return device


def stop_data_parallel() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()
