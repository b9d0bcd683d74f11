"""Section 8 (part one). Artefacts: every measured result, stored as one JSON file with how it was made.

An artefact is artefacts/<name>.json: name, created (UTC), git commit, device, torch version,
the base corpus (its name and SHA-256), preset, config and results. It is written atomically
(a temporary file, then a rename), so an interrupted run never leaves half a file behind, and
in a data-parallel run only the main process writes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from .device import describe_device, is_main_process
from .models import count_parameters
from .presets import ARTEFACTS_DIR, BUNDLED_ARTEFACTS_DIR, PROJECT_ROOT, InputError
from .sources import HELDOUT_WORK, play_files

ARTEFACT_FIELDS = ("name", "created", "git_commit", "device", "torch_version", "base_corpus", "preset", "config",
                   "results")


def write_json_atomically(path: str | os.PathLike, payload) -> Path:
    """Write JSON to a temporary file beside `path`, then rename: never a half-written file.

    In a data-parallel run only the main process writes; the others return the path alone.
    """
    path = Path(path)
    if not is_main_process():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def git_commit() -> str:
    """The bundle's current commit (with '+dirty' if files changed), or 'unknown' outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--short", "HEAD")
        # Artefacts rewritten by the run itself do not make the code dirty.
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!artefacts").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "unknown"


def files_sha256(paths) -> str:
    """One SHA-256 for a set of files: of each file's name and SHA-256, in name order."""
    digest = hashlib.sha256()
    for path in sorted(map(Path, paths), key=lambda p: p.name):
        digest.update(f"{path.name}\x00{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def base_corpus_record() -> dict:
    """The bundled base corpus as every artefact names it: the works trained on and the held-out work,
    each with its SHA-256."""
    works = play_files()
    return {"name": "plays", "works": len(works), "sha256": files_sha256(works),
            "heldout_work": HELDOUT_WORK.name, "heldout_sha256": files_sha256([HELDOUT_WORK])}


def artefact_path(name: str, folder: str | Path | None = None) -> Path:
    return Path(folder or ARTEFACTS_DIR) / f"{name}.json"


def provenance(device) -> dict:
    """How a result was made: when (UTC), at which commit, on which device, with which torch, and which
    base corpus the bundle had."""
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
            "device": describe_device(device), "torch_version": torch.__version__,
            "base_corpus": base_corpus_record()}


def write_artefact(name: str, *, preset: str, config: dict, results, device, folder=None, path=None) -> Path:
    """Store a run's results with its provenance as artefacts/<name>.json (or at `path`)."""
    payload = {"name": name, **provenance(device), "preset": preset, "config": config, "results": results}
    return write_json_atomically(path or artefact_path(name, folder), payload)


def read_artefact(name_or_path: str | Path) -> dict:
    """An artefact by path, or by name: the one this run's artefacts folder holds, else the one the
    bundle ships (the committed results)."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        written, shipped = artefact_path(str(name_or_path)), artefact_path(str(name_or_path), BUNDLED_ARTEFACTS_DIR)
        path = written if written.is_file() else shipped
    if not path.is_file():
        raise InputError(f"No artefact at {path}: run the notebook that makes it (make run), "
                         "or set REDRAW_ONLY = False.")
    return json.loads(path.read_text(encoding="utf-8"))


def history_rows(history) -> list[dict]:
    """A training history as JSON rows (NaN test losses become null)."""
    return json.loads(history.to_json(orient="records"))


def corpus_size(corpus) -> dict:
    """How much text a corpus holds, for an artefact's config."""
    if corpus.packed:
        return {"packing": True, "train_tokens": corpus.num_train_tokens, "heldout_tokens": corpus.num_heldout_tokens}
    return {"packing": False, "train_sequences": corpus.num_train, "test_sequences": corpus.num_test}


def summarize_history(history, model) -> dict:
    """What a comparison table shows of one training run.

    Speed leaves out the first step, which also pays for one-off allocations (optimizer state).
    """
    tail = history["loss"].tail(max(1, len(history) // 5))
    timed = history.iloc[1:] if len(history) > 1 else history
    seconds = history["elapsed_s"].diff().fillna(history["elapsed_s"]).loc[timed.index]
    return {"final_loss": float(history["loss"].iloc[-1]), "final_loss_mean_last_fifth": float(tail.mean()),
            "average_loss": float(history["loss"].mean()),
            "tokens_per_s": float(timed["tokens"].sum() / seconds.sum()),
            "wall_s": float(history["elapsed_s"].iloc[-1]), "parameters": count_parameters(model), **history.attrs}
