"""Section 8. Experiments: measured runs, each stored as one artefact with how it was made.

An artefact is one JSON file in artefacts/: name, created (UTC), git commit, device, torch
version, preset, config and results, written atomically so that an interrupted run never
leaves half a file behind.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from .data import InputError, write_json_atomically
from .device import describe_device
from .presets import ARTEFACTS_DIR, PROJECT_ROOT

ARTEFACT_FIELDS = ("name", "created", "git_commit", "device", "torch_version", "preset", "config", "results")


def git_commit() -> str:
    """The bundle's current commit (with '+dirty' if files changed), or 'unknown' outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "unknown"


def artefact_path(name: str, folder: str | Path | None = None) -> Path:
    return Path(folder or ARTEFACTS_DIR) / f"{name}.json"


def write_artefact(name: str, *, preset: str, config: dict, results, device, folder=None) -> Path:
    """Store a run's results with its provenance as artefacts/<name>.json."""
    payload = {
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "device": describe_device(device),
        "torch_version": torch.__version__,
        "preset": preset,
        "config": config,
        "results": results,
    }
    return write_json_atomically(artefact_path(name, folder), payload)


def read_artefact(name_or_path: str | Path) -> dict:
    """An artefact by name (looked up in artefacts/) or by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = artefact_path(str(name_or_path))
    if not path.is_file():
        raise InputError(f"No artefact at {path}: run the notebook that makes it (make run), or set REDRAW_ONLY = False.")
    return json.loads(path.read_text(encoding="utf-8"))
