#!/usr/bin/env python3
"""How the command line's defaults were chosen: a measured sweep on real text.

The command line's defaults for a model of the benchmark's size (`pico-llm --models transformer
--d_model 128 --n_blocks 4 --n_heads 4 --block_size 64`), then the same with one choice changed
at a time: the head (all 50,257 ids), the compact head's min_count, the batch, the learning
rate, the warm-up, the decay, torch.compile and the threads; each twice, with two seeds, because
a CPU's speed and a seed each move a 60-second run's loss by a few hundredths of a nat. Every
run trains for the same seconds on the bundle's base corpus and is evaluated on both held-out
works, and every compact run also under the bucket's other prior, on the same weights (the
prior changes no training). Writes artefacts/recipe_sweep.json and prints the table, best
first; the README's table is made from it. `--remeasure` measures named rows again (when something else
ran on the machine beside them) and puts them in the artefact in place of theirs; every row records
when it was measured.

    python benchmarks/recipe_defaults.py                    # 60 s each, two seeds, about 40 minutes
    python benchmarks/recipe_defaults.py --remeasure "the defaults"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import picollm_helpers as h
from real_text import add_text_arguments, command_line_defaults


def measure(args, runs: list, device, path) -> dict:
    benchmark = h.SpeedBenchmark(tuple(args.train_files), tuple(args.heldout_files), runs[0].transformer,
                                 train_seconds=args.seconds, eval_every_seconds=args.seconds, seeds=tuple(args.seeds))
    return h.learning_speed(benchmark, runs, enc=h.get_tokenizer(), device=device, name="recipe_sweep", path=path)


def remeasure(args, runs: list, device) -> dict:
    """Measure the rows named by --remeasure again and write them into the existing artefact."""
    labels = [run.label for run in runs]
    unknown = [label for label in args.remeasure if label not in labels]
    if unknown:
        raise h.InputError(f"No row named {', '.join(map(repr, unknown))} in the sweep: --remeasure takes the "
                           f"rows' names, which are {', '.join(map(repr, labels))}.")
    previous = h.read_artefact(args.output or "recipe_sweep")
    with tempfile.TemporaryDirectory() as folder:
        fresh = measure(args, [run for run in runs if run.label in args.remeasure], device,
                        path=Path(folder) / "recipe_sweep.json")
    return h.write_runs_measured_again(previous, fresh, device, path=args.output)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_text_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="Seconds of training for each recipe.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="Every recipe runs once per seed.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/recipe_sweep.json).")
    parser.add_argument("--remeasure", nargs="+", metavar="ROW", default=None,
                        help="Measure only these rows again, in place of theirs in the existing artefact.")
    args = parser.parse_args(argv)
    device = h.pick_device(args.device)
    try:
        runs = h.recipe_runs(command_line_defaults(args.seconds, device))
        if args.remeasure:
            artefact = remeasure(args, runs, device)
        else:
            artefact = measure(args, runs, device, path=args.output)
    except h.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(h.recipe_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    effect = h.prior_effect(artefact["results"]["runs"]["the defaults"])
    print("the plays prior against the uniform one, on the defaults' weights: "
          + ", ".join(f"{gain:.3f} nats lower on {work}" for work, gain in effect.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
