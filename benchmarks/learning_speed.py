#!/usr/bin/env python3
"""The learning-speed benchmark: held-out loss against seconds of training, on real text.

Seven ways of training, each for the same seconds on the bundle's base corpus (25 plays) and with
two seeds (a seed, and the CPU's speed from one run to the next, each move a run's loss), each
evaluated every --eval_every_seconds on the two held-out works no run trains on, in
full-vocabulary nats per token and bits per character. On minGPT's design at d_model 128, 4
blocks, 4 heads, a context of 64 tokens: the starter's way (one padded line per example, Adam
at a constant rate), packed streams with the bundle's recipe and the full GPT-2 head, the same
with a compact head. Then the `cpu` preset's own Transformer; the command line's defaults for a
model of that size (`pico-llm --models transformer --d_model 128 --n_blocks 4 --n_heads 4
--block_size 64 --train_seconds 120`, every other setting its default), and the same with
`--compile` (its compile time counted in the budget); and the reference
recipe (AdamW with warm-up and cosine decay, the full head, packed windows) on that same model.
Writes artefacts/learning_speed.json (file names and SHA-256 included) and prints the table.

The count models of the same training plays (orders 1 to 5, interpolated Kneser-Ney) are scored on the
same windows of each held-out work: every row's loss is read beside what counting alone gets. The command
line's defaults start their Transformer from the bigram counts (`--init counts`) and mix it with counts
(`--counts auto`); the table shows their Transformer alone beside them.

    python benchmarks/learning_speed.py                      # 120 s each, two seeds, about an hour
    python benchmarks/learning_speed.py --seconds 600 --ways defaults reference --name learning_speed_600
    python benchmarks/learning_speed.py --ways defaults compiled --remeasure  # these rows again, the rest kept
    python benchmarks/learning_speed.py --train_files A.txt --heldout_files B.txt C.txt --seconds 60
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import picollm_helpers as h
from real_text import add_text_arguments, command_line_defaults


def measure(args, runs: list, device, path) -> dict:
    model = h.transformer_config("minGPT", d_model=128, n_blocks=4, n_heads=4, max_seq_len=64)
    benchmark = h.SpeedBenchmark(tuple(args.train_files), tuple(args.heldout_files), model,
                                 train_seconds=args.seconds, eval_every_seconds=args.eval_every_seconds,
                                 seeds=tuple(args.seeds))
    return h.learning_speed(benchmark, runs, enc=h.get_tokenizer(), device=device, name=args.name, path=path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_text_arguments(parser)
    parser.add_argument("--seconds", type=float, default=120.0, help="Seconds of training for each way.")
    parser.add_argument("--eval_every_seconds", type=float, default=15.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="Every way runs once per seed; the curves and samples are the first seed's.")
    parser.add_argument("--ways", nargs="+", choices=list(h.BENCHMARK_WAYS), default=list(h.BENCHMARK_WAYS),
                        help="Which ways of training to measure (the 600-second benchmark: defaults reference).")
    parser.add_argument("--name", default="learning_speed", help="The artefact's name: artefacts/<name>.json.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/<name>.json).")
    parser.add_argument("--remeasure", action="store_true",
                        help="Measure only the --ways again, in place of theirs in the existing artefact (the count "
                             "models too); the other ways keep their runs and say when they were measured.")
    args = parser.parse_args(argv)
    device = h.pick_device(args.device)
    try:
        runs = h.benchmark_runs(h.RUN_PRESETS["cpu"].transformer, command_line_defaults(args.seconds, device))
        runs = [run for run in runs if run.label in {h.BENCHMARK_WAYS[way] for way in args.ways}]
        if args.remeasure:
            previous = h.read_artefact(args.output or args.name)
            with tempfile.TemporaryDirectory() as folder:
                fresh = measure(args, runs, device, Path(folder) / f"{args.name}.json")
            artefact = h.write_runs_measured_again(previous, fresh, device, path=args.output)
        else:
            artefact = measure(args, runs, device, args.output)
    except h.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(h.learning_speed_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    print(h.learning_speed_summary(artefact))
    print(f"floors: {h.learning_speed_floors(artefact)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
