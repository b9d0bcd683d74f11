"""Shared fixtures: the bundle's root, the tokenizer, and real TinyStories text when present."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_TINYSTORIES = ROOT.parent / "shared" / "data" / "tinystories"
SHARED_REAL_TEXT = ROOT.parent / "shared" / "data" / "real_text"

# Quick runs write their artefacts and checkpoints here, never over the committed ones.
os.environ.setdefault("PICOLLM_ARTEFACTS_DIR", str(ROOT / ".pytest_cache" / "artefacts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PICOLLM_CACHE_DIR", str(ROOT / ".pytest_cache" / "tokens"))

import picollm_helpers as h  # noqa: E402


@pytest.fixture(scope="session")
def enc():
    return h.get_tokenizer()


@pytest.fixture
def tinystories_dir():
    if not SHARED_TINYSTORIES.is_dir():
        pytest.skip(f"real TinyStories samples not present at {SHARED_TINYSTORIES}")
    return SHARED_TINYSTORIES


def run_script_on_an_empty_artefacts_folder(script: str, folder: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run scripts/<script> with the artefacts it writes sent to `folder` (it reads the committed ones); the
    finished process and its seconds."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script)], capture_output=True, text=True,
                            env={**os.environ, "PICOLLM_ARTEFACTS_DIR": str(folder)}, timeout=120)
    return result, time.perf_counter() - started
