"""What the learning-speed benchmarks share: the real text they train and evaluate on, and the command line
they measure.

By default the bundle's base corpus (the 25 works of data/plays that runs train on) and its two
held-out works, The Winter's Tale and Henry VIII, which no run trains on; any files otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import picollm_helpers as h

# The command line as a user would type it for a model of the benchmark's size: nothing but the model's
# size, the data (none given: the base corpus) and the time; every other setting is the command line's default.
COMMAND_LINE_SIZE = ["--models", "transformer", "--d_model", "128", "--n_blocks", "4", "--n_heads", "4",
                     "--block_size", "64"]


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """--train_files, --heldout_files and --device, for a benchmark on real text."""
    parser.add_argument("--train_files", type=Path, nargs="+", default=h.play_files())
    parser.add_argument("--heldout_files", type=Path, nargs="+", default=list(h.HELDOUT_WORKS))
    parser.add_argument("--device", default=None, help="Torch device (default: the best one present).")


def command_line_defaults(seconds: float, device) -> h.SpeedRun:
    """The command line's defaults for the benchmark's model and time, resolved by the command line itself."""
    from picollm_helpers.cli import command_line_run

    argv = [*COMMAND_LINE_SIZE, "--train_seconds", f"{seconds:g}", "--device_id", str(device)]
    return command_line_run(argv)
