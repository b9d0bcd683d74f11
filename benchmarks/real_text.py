"""What the learning-speed benchmarks share: the real text they train and evaluate on.

By default the public-domain English of ../shared/data/real_text (thirteen comedies to train
on, The Winter's Tale held out) when this checkout sits beside it; any two files otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHARED_REAL_TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real_text"


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """--train_file, --heldout_file and --device, for a benchmark on real text."""
    parser.add_argument("--train_file", type=Path, default=SHARED_REAL_TEXT / "comedies_train.txt")
    parser.add_argument("--heldout_file", type=Path, default=SHARED_REAL_TEXT / "winters_tale_heldout.txt")
    parser.add_argument("--device", default=None, help="Torch device (default: the best one present).")
