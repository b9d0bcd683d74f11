"""Section 2. Device and seeds: where tensors live, and how to make a run repeatable."""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import sys

import numpy as np
import torch

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3
KEEP_UP_TO_BYTES = 1 << 30


def keep_freed_memory_for_reuse() -> bool:
    """Let glibc's allocator reuse freed memory for the large tensors of every training step.

    A step over the 50,257-token vocabulary allocates logits and their gradients of
    (tokens x 50,257) floats, hundreds of MB. By default glibc maps each such block afresh
    and unmaps it when freed, so the kernel zeroes every page again on first touch: on a
    two-core machine that nearly doubled the time of a k-gram step at batch 32. Raising
    the mmap and trim thresholds keeps freed blocks in the heap for the next step.
    Linux with glibc only; elsewhere nothing changes. Returns whether it applied.
    """
    if not sys.platform.startswith("linux") or not ctypes.util.find_library("c"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(GLIBC_M_MMAP_THRESHOLD, KEEP_UP_TO_BYTES)
                    and libc.mallopt(GLIBC_M_TRIM_THRESHOLD, KEEP_UP_TO_BYTES))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def pick_device(requested: str | None = None) -> torch.device:
    """The device asked for if it exists, else the best one present (cuda, then mps, then cpu).

    Asking for CUDA on a machine without it falls back to the CPU with a one-line note,
    so the starter's default `--device_id cuda:0` still runs on a laptop.
    """
    if requested:
        wanted = torch.device(requested)
        if wanted.type == "cuda" and not torch.cuda.is_available():
            print(f"Note: {requested} was requested but CUDA is not available; using the CPU.")
            return torch.device("cpu")
        if wanted.type == "mps" and not torch.backends.mps.is_available():
            print(f"Note: {requested} was requested but Apple MPS is not available; using the CPU.")
            return torch.device("cpu")
        return wanted
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A short human name for the device, stored with every artefact."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a rerun draws the same batches and weights."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
