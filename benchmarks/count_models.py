#!/usr/bin/env python3
"""What counting alone gets: n-gram count models of the training plays, scored on the held-out works.

Interpolated modified Kneser-Ney (picollm_helpers.count_model) of orders 1 to 5, fitted on the 25
works of the base corpus that runs train on, scored on every token of The Winter's Tale and Henry
VIII, which no run trains on: in the 64-token windows every run is scored on (each window's first
tokens see less context) and on each work as one stream, in nats per token and bits per character,
with the seconds fitting and scoring took. Then what the 3-gram model writes. Writes
artefacts/count_models.json and prints the table; the README's table is made from it.

    python benchmarks/count_models.py
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import picollm_helpers as h
from real_text import add_text_arguments

WINDOW = 64  # the benchmarks' block size: every run is scored on windows of this many tokens
PROMPT = "ROSALIND.\n"


def score_order(order: int, training, heldouts: dict, whole: dict) -> dict:
    started = time.perf_counter()
    model = h.count_model(training, order)
    fitted = time.perf_counter()
    works = {name: {"windows": asdict(h.evaluate(model, heldout)), "whole": asdict(h.evaluate(model, whole[name]))}
             for name, heldout in heldouts.items()}
    return {"order": order, "label": model.label, "fit_seconds": fitted - started,
            "score_seconds": time.perf_counter() - fitted, "works": works}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_text_arguments(parser)
    parser.add_argument("--orders", type=int, nargs="+", default=list(range(1, h.MAX_ORDER + 1)))
    args = parser.parse_args(argv)
    enc = h.get_tokenizer()
    device = h.pick_device("cpu")
    try:
        training = h.build_corpus(enc, WINDOW, h.TrainingText(base_weight=0.0, input_files=args.train_files))
        heldouts = {Path(file).name: h.standard_heldout(enc, WINDOW, work=Path(file)) for file in args.heldout_files}
        whole = {name: h.HeldOutSet(heldout.heldout, len(heldout.heldout[0].ids)) for name, heldout in heldouts.items()}
        rows = [score_order(order, training, heldouts, whole) for order in args.orders]
    except (h.InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    trigram = h.count_model(training, 3)
    samples = {setting: h.generate_text(trigram, enc, PROMPT, 40, h.Decoding(top_p=top_p), seed=0)
               for setting, top_p in (("greedy", None), ("p = 0.8", 0.8))}
    config = {"train_files": [h.file_record(file) for file in args.train_files],
              "heldout_files": [h.file_record(file) for file in args.heldout_files], "window": WINDOW,
              "train_tokens": training.num_train_tokens, "model": "interpolated modified Kneser-Ney (Chen and Goodman)",
              "prompt": PROMPT}
    artefact = h.read_artefact(h.write_artefact("count_models", preset="benchmark", config=config,
                                                results={"orders": rows, "samples": samples}, device=device))
    print(h.count_models_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    for setting, text in samples.items():
        print(f"3-gram counts, {setting}: {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
