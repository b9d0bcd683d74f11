#!/usr/bin/env python3
"""How the training recipe's defaults were chosen: a measured sweep on real text.

The `cpu` preset's Transformer, with a compact head on packed streams, trains for the same
seconds with each recipe: three peak learning rates, then the default with one of its other
choices taken away (warm-up, weight decay, clipping, the cosine decay), and the starter's
plain Adam at a constant rate. Every run is evaluated on the same held-out file. Writes
artefacts/recipe_sweep.json and prints the table, best first; the README's table is made
from it.

    python benchmarks/recipe_defaults.py                    # the shared real text, 60 s each
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import picollm_helpers as h
from real_text import add_text_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_text_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="Seconds of training for each recipe.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/recipe_sweep.json).")
    args = parser.parse_args(argv)
    try:
        artefact = h.learning_speed(args.train_file, args.heldout_file, h.recipe_runs(),
                                    model=h.RUN_PRESETS["cpu"].transformer, enc=h.get_tokenizer(),
                                    device=h.pick_device(args.device), train_seconds=args.seconds,
                                    eval_every_seconds=args.seconds, name="recipe_sweep", path=args.output)
    except h.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(h.recipe_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
