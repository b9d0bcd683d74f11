"""Section 2. Device and seeds: where tensors live, and how to make a run repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch


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
