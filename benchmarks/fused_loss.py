#!/usr/bin/env python3
"""The fused linear + cross-entropy loss against the plain path: training tokens/s and peak memory.

The full GPT-2 head (50,257 ids) on minGPT's design at d_model 128 and 512 (4 blocks) on
batches of 16 x 64 tokens, and at d_model 128 on 64 x 64 tokens, where the fused loss works
in chunks. Peak memory is that of the tensors (the running total of the profiler's
allocations on the CPU, the CUDA allocator's peak on a GPU). Writes artefacts/fused_loss.json
and prints the table; the bundle's default on each device (FUSED_LOSS_BY_DEVICE) follows it.

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
    parser.add_argument("--timed_steps", type=int, default=10)
    parser.add_argument("--device", default=None, help="Torch device (default: the best one present).")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/fused_loss.json).")
    args = parser.parse_args(argv)
    artefact = h.fused_loss_comparison(device=h.pick_device(args.device), timed_steps=args.timed_steps,
                                       path=args.output)
    print(h.fused_loss_table(artefact).to_string(float_format=lambda x: f"{x:,.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
