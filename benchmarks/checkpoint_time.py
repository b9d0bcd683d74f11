#!/usr/bin/env python3
"""How long a training checkpoint takes to write, at the cpu and gpu presets' model sizes.

The cpu preset's Transformer with its compact head (the ids of the base corpus, the plays, that
the preset keeps, plus a bucket) and the gpu preset's with the full 50,257-id head, each with
AdamW's state after a step (two moments beside every weight) and a history as long as the
preset's writer run: the file a run keeps with --checkpoint_every (picollm_helpers.resume). Each
is written --writes times into --folder, atomically and flushed to the disk, as training writes
it; the median seconds and the file's size, with the size of the weights alone, go to
artefacts/checkpoint_time.json, and the table is printed.

    python benchmarks/checkpoint_time.py
    python benchmarks/checkpoint_time.py --folder /content/drive/MyDrive/pico-llm   # Drive, on Colab
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

import picollm_helpers as h

PRESETS = ("cpu", "gpu")


def preset_model(run: h.RunPreset, corpus) -> torch.nn.Module:
    h.seed_everything(0)
    return h.build_model("transformer", **asdict(run.transformer),
                         vocab_ids=h.vocab_ids_for(corpus, run.vocab, run.min_count))


def training_state(model: torch.nn.Module, run: h.RunPreset, corpus) -> h.TrainingState:
    """The state of a writer run at its end: AdamW's moments after a step, and one history row per step."""
    recipe = h.Recipe()
    optimizer = h.make_optimizer(model, recipe)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    settings = h.run_settings(corpus, batch_size=run.batch_size, seed=0, recipe=recipe, max_steps=run.writer_steps,
                              train_seconds=None, steps_per_epoch=None)
    state = h.TrainingState(optimizer, torch.amp.GradScaler("cpu", enabled=False),
                            h.Schedule(recipe, max_steps=run.writer_steps), h.CountedBatches(iter(())), settings,
                            torch.device("cpu"), next_eval_s=None)
    tokens = run.batch_size * run.block_size
    state.rows = [("the writer", 1, step, math.log(50257), tokens, float(tokens), float(step), recipe.learning_rate,
                   math.nan) for step in range(1, run.writer_steps + 1)]
    return state


def measure(run: h.RunPreset, corpus, folder: Path, writes: int) -> dict:
    model = preset_model(run, corpus)
    state = training_state(model, run, corpus)
    path = folder / f"{run.name}.pt"
    seconds = []
    for _ in range(writes):
        started = time.perf_counter()
        h.save_training_checkpoint(path, model, state, steps=run.writer_steps)
        seconds.append(time.perf_counter() - started)
    checkpoint_bytes = path.stat().st_size
    weights_bytes = h.save_checkpoint(model, folder / f"{run.name}_weights.pt").stat().st_size
    return {"parameters": h.count_parameters(model), "vocabulary": h.describe_vocabulary(model),
            "bytes": checkpoint_bytes, "weights_bytes": weights_bytes, "seconds": statistics.median(seconds),
            "seconds_each": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--writes", type=int, default=5, help="Writes of each checkpoint; the median is kept.")
    parser.add_argument("--folder", type=Path, default=None,
                        help="Where to write the checkpoints (default: a temporary folder, removed afterwards).")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/checkpoint_time.json).")
    args = parser.parse_args(argv)
    enc = h.get_tokenizer()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        for name in PRESETS:
            run = h.RUN_PRESETS[name]
            corpus = h.build_corpus(enc, run.block_size)
            results[name] = measure(run, corpus, Path(folder), args.writes)
    config = {"writes": args.writes, "folder": "a temporary folder" + (f" in {args.folder}" if args.folder else ""),
              "optimizer": "adamw", "compact_head_ids_from": "the base corpus (the plays)",
              "models": {name: {**asdict(h.RUN_PRESETS[name].transformer), "vocab": h.RUN_PRESETS[name].vocab,
                                "history_rows": h.RUN_PRESETS[name].writer_steps} for name in PRESETS}}
    path = h.write_artefact("checkpoint_time", preset=", ".join(PRESETS), config=config, results=results,
                            device=torch.device("cpu"), path=args.output)
    print(f"{'preset':<8}{'parameters':>12}  {'vocabulary':<38}{'checkpoint MB':>14}{'weights MB':>12}{'seconds':>9}")
    for name, result in results.items():
        print(f"{name:<8}{result['parameters']:>12,}  {result['vocabulary']:<38}{result['bytes'] / 1e6:>14,.1f}"
              f"{result['weights_bytes'] / 1e6:>12,.1f}{result['seconds']:>9.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
