"""Section 2. Device, precision and seeds: where tensors live, in which number format, and how to
make a run repeatable; and which process of a data-parallel run this is."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import sys

import numpy as np
import torch

from .presets import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3
KEEP_UP_TO_BYTES = 1 << 30
KEEP_FREED_MEMORY_VARIABLE = "PICOLLM_KEEP_FREED_MEMORY"


def keep_freed_memory_for_reuse() -> bool:
    """Let glibc's allocator reuse freed memory for the large tensors of every training step.

    A step over the 50,257-token vocabulary allocates logits and their gradients of
    (tokens x 50,257) floats, hundreds of MB. By default glibc maps each such block afresh
    and unmaps it when freed, so the kernel zeroes every page again on first touch: on a
    two-core machine that nearly doubled the time of a k-gram step at batch 32. Raising
    the mmap and trim thresholds keeps freed blocks in the heap for the next step.
    Linux with glibc only; elsewhere nothing changes. PICOLLM_KEEP_FREED_MEMORY=0 leaves
    glibc's defaults in place (the starter's loop is timed that way, as the starter runs).
    Returns whether it applied.
    """
    if os.environ.get(KEEP_FREED_MEMORY_VARIABLE) == "0":
        return False
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


def resolve_precision(requested: str, device) -> str:
    """The number format a run computes in.

    auto: bf16 on a CUDA GPU that has it (A100, L4, H100), fp16 on one that does not (T4, V100),
    and fp32 on the CPU and on Apple's MPS. Asking for what the device cannot do is an error
    that names the flag and what to use instead.
    """
    device = torch.device(device)
    if requested not in PRECISIONS:
        raise InputError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}.")
    if requested == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; use "
                         "--precision fp16 (trained with a gradient scaler) or --precision auto.")
    if requested != "fp32" and device.type == "mps":
        raise InputError(f"--precision {requested}: mixed precision is not supported on Apple's MPS here; "
                         "use --precision fp32 (or auto).")
    if requested == "fp16" and device.type != "cuda":
        raise InputError(f"--precision fp16 needs a CUDA GPU, where a gradient scaler keeps it stable; on the "
                         f"{device.type.upper()} use --precision bf16 or fp32.")
    return requested


def autocast(device, precision: str):
    """The context that computes in `precision`: matrix products in bf16 or fp16 and the rest in fp32
    (torch's autocast), or plain fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def process_rank() -> int:
    """This process's rank in a data-parallel run (torchrun), 0 when it runs alone."""
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def process_count() -> int:
    """How many processes train together (torchrun's world size), 1 when this one runs alone."""
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process prints progress and writes artefacts and checkpoints: rank 0, or the only one."""
    return process_rank() == 0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a rerun draws the same batches and weights."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
