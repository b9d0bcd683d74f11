#!/usr/bin/env python3
"""The fused linear + cross-entropy loss against the plain path: training tokens/s and peak memory.

The full GPT-2 head (50,257 ids) on minGPT's design at d_model 128 and 512 (4 blocks, batch
16 x 64 tokens). On the CPU each measurement runs in a fresh process, so that its peak
resident memory is its own. Writes artefacts/fused_loss.json and prints the table; the
bundle trains with whichever path is faster on each device (FUSED_LOSS_BY_DEVICE).

    python benchmarks/fused_loss.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import picollm_helpers as h


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--timed_steps", type=int, default=5)
    parser.add_argument("--device", default=None, help="Torch device (default: the best one present).")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/fused_loss.json).")
    args = parser.parse_args(argv)
    artefact = h.fused_loss_comparison(args.widths, device=h.pick_device(args.device), timed_steps=args.timed_steps,
                                       path=args.output)
    print(h.fused_loss_table(artefact).to_string(float_format=lambda x: f"{x:,.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
